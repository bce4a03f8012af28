"""Recall lab: a synthetic associative-recall task (app.engine.recall) where what to cache matters.

Filler cycles predictably (the RNN predicts it: low surprise); each key-value pair is new
information (high surprise), so HAM should cache the pairs and skip the filler. After `?` the
queries ask for the values; accuracy vs cache size per policy shows the gap. Below it, the
paper's comparison on the same task: a Transformer, GDN, a window hybrid and HAM, each trained
on it (app.engine.architectures; the models in HAM_LAB_COMPARE's recall/ folder).
"""
from __future__ import annotations

import streamlit as st

from app.drawing import charts, viewdata
from app.drawing.architecture_charts import ARCHITECTURE_STYLE, architectures_quality_figure, recall_in_words
from app.drawing.text import md
from app.drawing.token_view import CSS, TokenCell, bins_legend, render_view
from app.engine import architectures, models, recall
from app.engine.models import HAMInputError
from app.session import page_state, state
from app.session.state import Key
from app.widgets import page, tour



ENDS = {"full": "full cache", "none": "no cache (RNN only)"}


def joined(rows: list) -> list:
    """Rows for the chart: every policy's curve runs from the no-cache point to the full-cache
    point (all policies share them), which are also drawn on their own, labelled."""
    ends = [r for r in rows if r["policy"] in ENDS]
    out = [dict(r, policy=ENDS[r["policy"]]) for r in ends]
    for policy in dict.fromkeys(r["policy"] for r in rows if r["policy"] not in ENDS):
        out += [r for r in rows if r["policy"] == policy] + [dict(r, policy=policy) for r in ends]
    return out


def accuracy_table(rows: list) -> list:
    """The rows in words and percentages, in the order of the legend."""
    names = {**{p: style[0] for p, style in charts.POLICY_STYLE.items()}, **ENDS}
    return [{"policy": names.get(r["policy"], r["policy"]),
             "cache target": "–" if r.get("target") is None else f"{r['target']:.0%}",
             "KV cache (% of full)": f"{100 * r['kv_fraction']:.1f}%",
             "recall accuracy": f"{100 * r['accuracy']:.1f}%",
             "HAM threshold τ": "–" if r.get("tau") is None or r["policy"] != "ham" else f"{r['tau']:.3f}"}
            for r in rows]


def sequence_view(seen: recall.RecallInspection, layer: int) -> None:
    """Draw one inspected sequence (app.engine.recall.inspect) in one layer."""
    surprise, cached = seen.surprise, seen.cached
    cells = [TokenCell(f" {tok}" if i else tok, float(surprise[layer, i]), int(cached[layer, i]),
                       f"#{i} {tok} ({seen.roles[i]}): surprise {surprise[layer, i]:.3f}, "
                       f"cached in {int(cached[:, i].sum())} of {cached.shape[0]} layers")
             for i, tok in enumerate(seen.tokens)]
    # The colour scale the other pages use (palette and mode), over this sequence's surprise.
    bins = viewdata.colour_bins(surprise[layer], "min", f"RNN surprise, layer {layer + 1} (heads combined as it routes)",
                                *state.colour_scale())
    st.html(f"<style>{CSS}</style>" + bins_legend(bins, cache_label=f"in layer {layer + 1}'s cache", prefix="recall")
            + render_view(cells, bins=bins, prefix="recall"))
    share = seen.cached_share[layer]
    c = st.columns(4)
    c[0].metric("KV cache", f"{100 * seen.kv_fraction:.1f}% of full")
    c[1].metric("keys cached", f"{100 * share['key']:.0f}%")
    c[2].metric("values cached", f"{100 * share['value']:.0f}%")
    c[3].metric("filler cached", f"{100 * share['filler']:.0f}%")
    table = [{"query": a.query, "expected": a.expected, "model says": a.predicted, "right": "✓" if a.right else "✗"}
             for a in seen.answers]
    # Folded: a row per query (32 and more) would push the accuracy chart a screen or two down.
    with st.expander(f"Answers at this threshold: {seen.n_right} of {len(table)} right"):
        st.table(table, hide_index=True)


def body() -> None:
    st.title("Recall lab")
    st.caption("A text of predictable filler (a b c d …) with key–value pairs such as `k17 v42` hidden in it, "
               "then `?` and queries: the model must recall each queried key's value. The pairs are what the "
               "RNN cannot predict, so HAM should cache them and skip the filler.")
    model, task, trained = models.get_recall_bundle()
    if not trained:
        st.warning(f"No trained recall model in {models.recall_dir()}: a random, untrained model stands in, "
                   "so the cache pattern is noise and accuracy is at chance.")
    c = st.columns(4)
    n_pairs = c[0].slider("Pairs", 1, recall.N_KEYS, int(task.get("n_pairs", 16)), key=Key.W_PAIRS)
    length = c[1].slider("Length (tokens)", 16, 1024, int(task.get("length", 256)), step=16, key=Key.W_LENGTH)
    seed = c[2].number_input("Seed", 0, recall.HELD_OUT_SEEDS - 1, 0, key=Key.W_SEED,
                             help=f"Training used seeds ≥ {recall.HELD_OUT_SEEDS:,}, so these are held out.")
    target = c[3].select_slider("Cache target", list(recall.TARGETS), value=0.25, key=Key.W_TARGET,
                                format_func=lambda f: f"{f:.0%}")
    layer = st.radio("Layer", list(range(model.cfg.n_layers)), format_func=lambda l: f"layer {l + 1}",
                     horizontal=True, key="w_recall_layer")
    seen = recall.inspect(model, n_pairs, length, int(seed), target)
    st.caption(f"HAM threshold for a {target:.0%} cache on this sequence: τ = {seen.tau:.3f}.")
    sequence_view(seen, layer)
    policies_section(model, trained, n_pairs, length, int(seed))
    architectures_section()


def policies_section(model, trained: bool, n_pairs: int, length: int, seed: int) -> None:
    """Every selection policy on the recall model's weights at equal memory: shipped for the
    first-view settings, else run on request."""
    st.subheader("Accuracy vs cache, every policy")
    n = st.slider("Sequences to average over", 4, 32, 8, step=4, key=Key.W_RECALL_N)
    settings = dict(n_pairs=n_pairs, length=length, first_seed=seed, n=n)
    ready = trained and recall.shipped_rows(settings) is not None
    args = (models.recall_key(), n_pairs, length, seed, n)
    if not ready and page_state.recall_done() != args and not (
            tour.showing("recall_chart") or st.button("Run every policy", key="w_recall_run", type="primary")):
        st.caption("Runs HAM, random, recent window, sinks + window and HOLA at the same memory, plus a full "
                   "cache and none.")
        return
    bar = st.empty()
    rows = recall.accuracy_rows(model, **settings, progress=lambda f, msg: bar.progress(f, msg))
    bar.empty()
    page_state.set_recall_done(args)
    st.plotly_chart(charts.recall_figure(joined(rows), font_scale=state.chart_scale()), key="recall_chart")
    st.table(accuracy_table(rows), hide_index=True)   # a table, not a canvas grid: its type scales in presenter mode
    if ready:
        st.caption("Computed ahead of time for these settings, so it shows at once.")   # how: README, app.engine.shipped


def architectures_section() -> None:
    """The paper's comparison on this task: four models, each trained on it for the way it
    remembers (docs/DESIGN.md section 7), on the task's held-out sequences."""
    st.subheader("Four architectures on the recall task")
    try:
        compared, key = models.get_comparison(recall=True)
    except HAMInputError as exc:
        st.info("The four recall models (Transformer, GDN, window hybrid, HAM) are not here yet, so there is "
                "nothing to compare. docs/TRAINING.md, \"The paper's comparison\", says how to train them. "
                + md(str(exc)))
        return
    task = architectures.recall_task()
    st.caption(f"Above, other rules run on one model's weights; here each architecture has its own model, "
               f"trained on this task for the way it remembers, all read on the same {len(task['seeds'])} "
               f"held-out sequences of {task['n_pairs']} pairs in {task['length']} tokens.")
    with st.spinner("Reading the recall task with the four models (once per server)..."):
        rows, shipped = architectures.recall_page_rows(compared, key)
    st.plotly_chart(architectures_quality_figure(rows, measure="accuracy", font_scale=state.chart_scale()),
                    key="recall_architectures_chart")
    st.markdown(recall_in_words(rows))
    st.table([{"architecture": ARCHITECTURE_STYLE[r["model"]][0], "KV cache (% of full)": f"{r['kv_fraction']:.1%}",
               "recall accuracy": f"{r['accuracy']:.1%}"} for r in rows], hide_index=True)
    if shipped:
        st.caption("Computed ahead of time for these models, so it shows at once.")


page.guard(body)
