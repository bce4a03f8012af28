"""Architectures: the paper's claim, each architecture trained for the way it remembers.

A Transformer (every token cached), GDN (the RNN alone), a window hybrid (the last W tokens) and
HAM (the tokens its RNN was surprised by), of one size and trained alike (docs/DESIGN.md
section 7), read on the page's text: loss against KV cache, and the cache's size as the text
is read. The models live in assets/compare/<architecture>/ (HAM_LAB_COMPARE); the page says
so when they are not there.
"""
from __future__ import annotations

import streamlit as st

from app import common, engine, shared
from app.architecture_charts import ARCHITECTURE_STYLE, architectures_quality_figure, cache_position_figure
from ham_core.analysis.compare import COMPARE_FRACTIONS, cache_by_position, compare_losses, same_tokens
from ham_core.errors import HAMInputError

ss = st.session_state


def _ids(models: dict, text: str):
    """The text's tokens, the same for every model, cut to the app's token limit."""
    limit = min(engine.max_tokens(model.cfg) for model, _ in models.values())
    return same_tokens(models, [text])[0][:limit]


def losses(models: dict, key: str, text: str) -> list:
    """compare_losses on the text, once per server (the shared store)."""
    def compute():
        with shared.compute_gate().slot(urgent=True):
            return compare_losses(models, [_ids(models, text)])

    return shared.results_store().get_or_compute(("architectures", key, shared.text_key(text)), compute)


def cache_curves(models: dict, key: str, text: str, fraction: float) -> dict:
    """{architecture: keys held after each token} at `fraction` for the window and HAM."""
    def compute():
        with shared.compute_gate().slot(urgent=True):
            ids = _ids(models, text)
            return {name: cache_by_position(model, ids, fraction).tolist() for name, (model, _) in models.items()}

    return shared.results_store().get_or_compute(("architecture-cache", key, shared.text_key(text), fraction), compute)


def body() -> None:
    st.title("Architectures")
    st.markdown("The paper's claim: HAM comes close to a Transformer of the same size while keeping only part "
                "of its KV cache, and beats the pure RNN. Here each architecture is **trained for the way it "
                "remembers** (same size, text, tokens and schedule), not HAM's weights run with other rules.")
    try:
        models, key = engine.get_comparison()
    except HAMInputError as exc:
        st.info("The comparison models are not here yet, so there is nothing to compare. "
                + common.md(str(exc)))
        return
    st.caption(f"Models from {common.md(str(engine.compare_dir()))}: " + ", ".join(
        f"{ARCHITECTURE_STYLE[name][0].split(' (')[0]} {engine.format_params(model.num_parameters())} parameters"
        for name, (model, _) in models.items()) + ".")
    missing = [ARCHITECTURE_STYLE[a][0] for a in ARCHITECTURE_STYLE if a not in models]
    if missing:
        st.caption("No model for: " + ", ".join(missing) + ".")
    text = ss.text
    if not text.strip():
        st.info("The text is empty: paste one on the Read page.")
        return
    rows = losses(models, key, text)
    scale = common.chart_scale()
    st.plotly_chart(architectures_quality_figure(rows, font_scale=scale), key="arch_quality")
    st.table([{"architecture": ARCHITECTURE_STYLE[r["model"]][0], "KV cache (% of full)": f"{r['kv_fraction']:.1%}",
               "loss (nats/token)": f"{r['loss']:.3f}"} for r in rows], hide_index=True)
    fraction = st.select_slider("Cache of the window and HAM", list(COMPARE_FRACTIONS), value=0.25,
                                format_func=lambda f: f"{f:.0%}", key="w_arch_fraction")
    st.plotly_chart(cache_position_figure(cache_curves(models, key, text, fraction), fraction, font_scale=scale),
                    key="arch_cache")
    st.caption("The Transformer keeps every token (a diagonal), GDN none (its fixed RNN state instead), the window "
               "its last W, and HAM the tokens its RNN could not predict: its line climbs where the text is new "
               "and flattens where it repeats.")


common.guard(body)
