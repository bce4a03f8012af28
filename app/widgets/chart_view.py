"""The Read page's curves part: what the cache bought (full and no cache) and the chart of memory
against quality, drawn from whatever the server's background queue (app.engine.background) has
computed for the text, with a progress bar and an estimate for what is still coming.

Nothing here waits for the model: a threshold move must never queue behind a sweep, and a
pasted text's first view is its one forward. A whole-page run (a preset opened, a text pasted)
waits a moment when the first curve is that close (a preset's shipped results). A small polling fragment
(`watch`) asks the queue every POLL_S seconds how far the text is and redraws the page when a
stage is complete (the first curve, the other policies, the refined grid), so the chart, which
costs far more to send than a progress bar, is drawn once per stage rather than on every poll.
"""
from __future__ import annotations

import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app.drawing import charts, memory_chart, tables
from app.engine import background, curves, models, results, store
from app.session import page_state, state
from app.settings import TAU_GRID
from app.widgets import page, panels, tour

POLL_S = 2.0            # how often a page asks how far its text's curves are, while they are computed
WAIT_IN_RUN = 0.5       # a whole-page run waits for the curves only when they are this close (presets)
STAGES = (store.CURVE, store.POLICIES, store.REFINE_POLICIES)   # each redraws the chart once done



def chart_panel(bundle: models.Bundle, entry: results.TextEntry, r: results.TextResult,
                full: results.TextResult, none: results.TextResult) -> str:
    """The memory-vs-quality chart and its buttons; returns its headline (what it says, in words)."""
    others = curves.stored_policy_rows(entry)
    rows = curves.ham_rows(bundle, entry) + (others or [])
    current = dict(kv_fraction=r.kv_fraction, kv_bytes_peak=r.kv_bytes_peak, loss=r.loss)
    noise = memory_chart.paired_noise(none.lm_surprisal.tolist(), full.lm_surprisal.tolist())
    span = memory_chart.range_sentence([row["loss"] for row in rows], noise)
    scale = state.chart_scale()
    # The figure without the current point is kept per text (and rows, noise, type size); a
    # slider move only adds the star to it.
    base = none.memo(("memory-quality chart", len(rows), len(others or ()), noise, scale),
                     lambda: memory_chart.memory_quality_figure(rows, None, title=span[:1].upper() + span[1:],
                                                          noise=noise, font_scale=scale).to_dict())
    verdict = memory_chart.cache_verdict(full.loss, none.loss, noise, len(r.tokens))
    tau = float(r.tau[0]) if len(set(r.tau)) == 1 else None
    said = verdict.split(":")[0] + "." if verdict else memory_chart.headline(r.loss, r.kv_fraction, none.loss, full.loss, rows, tau)
    fig = memory_chart.checked_figure(memory_chart.with_current(base, current, scale, title=said))
    config = {"toImageButtonOptions": {"format": "png", "filename": "ham_memory_quality"}}
    if verdict:
        st.info(verdict)
        with st.expander("Show the measurements anyway (every difference on it is within the noise)",
                         expanded=tour.showing("mq_chart")):
            draw_chart(fig, config)
    else:
        st.caption(f"Memory against quality on this text: {span}. The grey band is the noise around the "
                   "RNN-only loss; hover a point for its perplexity and bytes.")
        draw_chart(fig, config)
        compared = memory_chart.equal_memory_sentence(rows, tau, noise) if others and tau is not None else None
        if compared:
            st.markdown(compared)
    c = st.columns([2, 1, 1, 1])
    c[1].download_button("Per-token CSV", data=lambda: tables.csv_text(r), file_name="ham_tokens.csv",
                         mime="text/csv", key="w_csv", on_click="ignore")
    c[2].download_button("Chart (HTML)", data=lambda: charts.figure_html(fig), file_name="ham_memory_quality.html",
                         mime="text/html", key="w_html", on_click="ignore")
    if models.kaleido_available():
        c[3].download_button("Chart (PNG)", data=lambda: charts.figure_png(fig) or b"", file_name="ham_memory_quality.png",
                             mime="image/png", key="w_png", on_click="ignore")
    else:                # without kaleido on the server (docs/DESIGN.md, section 4) the browser draws it
        c[3].caption("PNG: the camera icon on the chart saves one.")
    return said


def draw_chart(fig, config: dict, key: str = "mq_chart") -> None:
    """The chart in a box sized to its figure, with its layout contained: Plotly measures its text
    many times while drawing, and each measurement otherwise lays out the whole Read page around
    it (the browser's largest cost before the first view; docs/PERFORMANCE.md)."""
    st.html(f'<style>.st-key-{key}{{contain:size layout style;height:{int(fig["layout"]["height"])}px}}</style>')
    st.plotly_chart(fig, key=key, config=config)


def _wait_note(what: str, seconds: float) -> str:
    return f"{what}: about {max(1, round(seconds))} s" if seconds >= 1 else f"{what}…"


def want_curves(bundle: models.Bundle, entry: results.TextEntry) -> background.Progress:
    """Ask the background queue for this text's curves on behalf of this session."""
    return background.curve_queue().want(bundle, entry, state.token(), state.layer(), get_script_run_ctx().session_id)


def stage(progress: background.Progress) -> int:
    """How many of STAGES are complete."""
    return sum(progress.done(s) for s in STAGES)


def curves_part(bundle: models.Bundle, entry: results.TextEntry, r: results.TextResult, headline) -> None:
    """The bought table and the chart as far as they are computed (its headline, in words, into
    the `headline` placeholder near the top); the watcher for the rest."""
    whole_page = not get_script_run_ctx().fragment_ids_this_run
    # The bought table's two reads (full and no cache) are the first curve's ends: computed by the
    # queue with it, never here, so a pasted text's first view costs one forward and this run
    # ends at once; a preset's shipped ones are read now, before the queue is asked.
    ends = [results.grid_taus(bundle, tau) for tau in (0.0, TAU_GRID[-1])]
    if whole_page:
        for taus in ends:
            results.ready_result(bundle, entry, taus)
    progress = want_curves(bundle, entry)
    give_up = time.monotonic() + (WAIT_IN_RUN if whole_page else 0)
    while not progress.done(store.CURVE) and progress.seconds(store.CURVE) < WAIT_IN_RUN \
            and time.monotonic() < give_up:
        time.sleep(0.05)
        progress = want_curves(bundle, entry)
    full, none = (results.stored_result(bundle, entry, taus) for taus in ends)
    if full is not None and none is not None:
        panels.show_bought(r, full, none)
    st.subheader("Memory vs quality")
    if progress.error:
        st.warning("Part of the memory-quality curve could not be computed; the chart shows the rest "
                   "(the details are in the server log).")
    if full is not None and none is not None and progress.done(store.CURVE):
        said = chart_panel(bundle, entry, r, full, none)
        headline.markdown(f"**Memory vs quality:** {said} [See the chart ↓](#memory-vs-quality)")
    page_state.set_curve_stage((entry.key, stage(progress)))
    if not progress.finished:
        watch(bundle, entry)


@st.fragment(run_every=POLL_S)
def watch(bundle: models.Bundle, entry: results.TextEntry) -> None:
    """A progress bar with an estimate for the next stage of the text's curves; when a stage is
    complete, the page is drawn again with it."""
    page.guard(lambda: _watch(bundle, entry))


def _watch(bundle: models.Bundle, entry: results.TextEntry) -> None:
    progress = want_curves(bundle, entry)
    done = stage(progress)
    drawn = page_state.curve_stage()
    if drawn != (entry.key, done) and (drawn or (None,))[0] == entry.key:
        st.rerun()                                   # a stage is complete: draw it
    ham, others = len(curves.ham_rows(bundle, entry)), len(curves.stored_policy_rows(entry) or ())
    first = len(curves.FIRST_TAUS) + 2
    if not progress.done(store.CURVE):
        what, share = "The memory-quality curve, first from a few thresholds", min(ham / first, 1.0)
    elif not progress.done(store.POLICIES):
        n = len(curves.FIRST_TAUS) * len(curves.EQUAL_MEMORY)
        what, share = "The other policies at equal memory, at a few thresholds", min(others / n, 1.0)
    else:
        total = len(TAU_GRID) + len(curves.POLICY_TAUS) * len(curves.EQUAL_MEMORY)
        what = (f"Refining the curves while the server has time ({ham} of {len(TAU_GRID)} thresholds, "
                f"{others} of {total - len(TAU_GRID)} policy points)")
        share = min((ham + others) / total, 1.0)
    next_stage = next(s for s in STAGES if not progress.done(s))
    st.progress(share, _wait_note(what, progress.seconds(next_stage)))
