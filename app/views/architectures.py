"""Architectures: the paper's claim, each architecture trained for the way it remembers.

A Transformer (every token cached), GDN (the RNN alone), a window hybrid (the last W tokens) and
HAM (the tokens its RNN was surprised by), of one size and trained alike (docs/DESIGN.md
section 7), read on the page's text: loss against KV cache, and the cache's size as the text
is read. The models live in assets/compare/<architecture>/ (HAM_LAB_COMPARE); the page says
so when they are not there. The presets' results are shipped (app.engine.architectures).
"""
from __future__ import annotations

import streamlit as st

from app.drawing.architecture_charts import ARCHITECTURE_STYLE, architectures_quality_figure, cache_position_figure
from app.drawing.text import md
from app.engine import architectures, models
from app.engine.models import HAMInputError
from app.session import state
from app.widgets import page





def differences_table(rows: list) -> None:
    """The tokens where a full cache pays most, and whether HAM kept what they read."""
    st.subheader("Where a full cache pays: the Transformer against GDN")
    st.table([{"token": f"{r['token']!r} (#{r['position']})", "Transformer": f"{r['transformer']:.2f}",
               "GDN": f"{r['gdn']:.2f}", "HAM": f"{r['ham']:.2f}",
               "the Transformer read": f"{r['read']!r} (#{r['read_key']}, layer "
               f"{r['read_layer'] + 1}, weight {r['read_weight']:.2f})",
               "in HAM's cache": "yes" if r["ham_cached"] else "no"} for r in rows], hide_index=True)
    kept = sum(r["ham_cached"] for r in rows)
    st.caption(f"Loss in nats on each token. For these {len(rows)} tokens, HAM's cache held {kept} of the tokens "
               "the Transformer's strongest read landed on.")


def body() -> None:
    st.title("Architectures")
    st.markdown("The paper's claim: HAM comes close to a Transformer of the same size while keeping only part "
                "of its KV cache, and beats the pure RNN. Here each architecture is **trained for the way it "
                "remembers** (same size, text, tokens and schedule), not HAM's weights run with other rules.")
    try:
        compared, key = models.get_comparison()
    except HAMInputError as exc:
        st.info("The comparison models are not here yet, so there is nothing to compare. "
                + md(str(exc)))
        return
    st.caption(f"Models from {md(str(models.compare_dir()))}: " + ", ".join(
        f"{ARCHITECTURE_STYLE[name][0].split(' (')[0]} {models.format_params(model.num_parameters())} parameters"
        for name, (model, _) in compared.items()) + ".")
    missing = [ARCHITECTURE_STYLE[a][0] for a in ARCHITECTURE_STYLE if a not in compared]
    if missing:
        st.caption("No model for: " + ", ".join(missing) + ".")
    text = state.text()
    if not text.strip():
        st.info("The text is empty: paste one on the Read page.")
        return
    found = architectures.page_results(compared, key, text, state.preset())
    rows = found["rows"]
    scale = state.chart_scale()
    st.plotly_chart(architectures_quality_figure(rows, font_scale=scale), key="arch_quality")
    st.table([{"architecture": ARCHITECTURE_STYLE[r["model"]][0], "KV cache (% of full)": f"{r['kv_fraction']:.1%}",
               "loss (nats/token)": f"{r['loss']:.3f}"} for r in rows], hide_index=True)
    fraction = st.select_slider("Cache of the window and HAM", list(architectures.COMPARE_FRACTIONS), value=0.25,
                                format_func=lambda f: f"{f:.0%}", key="w_arch_fraction")
    st.plotly_chart(cache_position_figure(found["curves"][str(fraction)], fraction, font_scale=scale),
                    key="arch_cache")
    st.caption("The Transformer keeps every token (a diagonal), GDN none (its fixed RNN state instead), the window "
               "its last W, and HAM the tokens its RNN could not predict: its line climbs where the text is new "
               "and flattens where it repeats.")
    if str(fraction) in found["differ"]:
        differences_table(found["differ"][str(fraction)])


page.guard(body)
