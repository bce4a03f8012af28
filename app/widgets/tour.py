"""The guided tour: eight short steps for a first-time user, each of which sets the view it talks
about (page, threshold, layer, token), outlines the part of the page it means and scrolls to
it. Skippable at any step, restartable from the sidebar.

It keeps the text on screen (a teacher's own text stays), and offers its example text: the
preset whose cache matters most, chosen by measurement on the model in use, as the threshold it
moves to is (one that keeps about half as much), so the tour stays right when the model is
retrained.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional

import streamlit as st

from app.drawing.layer_steps import cached_when
from app.engine import curves, models, results, shipped
from app.session import page_state, state
from app.session.state import Key
from app.settings import DEFAULT_TAU, DEFAULT_TAU_INDEX, TAU_GRID, tau_label
from app.settings.presets import DEFAULT_PRESET, PRESETS

_SCROLL_JS = """
export default function(component) {
  const { data } = component;
  if (!data || window.hamTourShown === data.step) return;
  window.hamTourShown = data.step;
  let tries = 0;
  const timer = setInterval(() => {
    const el = document.querySelector(data.target);
    if (el || ++tries > 60) {
      clearInterval(timer);
      if (el) el.scrollIntoView({behavior: 'smooth', block: 'center'});
    }
  }, 200);
}
"""


# "No thanks" is remembered by the browser (its local storage), not by the server: one visitor's
# choice never hides the offer from another, and a reload or a new session keeps it.
_MEMORY_JS = """
export default function(component) {
  const { data } = component;
  const KEY = 'hamLab.tourDeclined';
  try {
    if (data && data.declined) window.localStorage.setItem(KEY, '1');
    if (window.localStorage.getItem(KEY) === '1') document.documentElement.classList.add('ham-tour-declined');
  } catch (e) {}
}
"""
MEMORY_CSS = ".ham-tour-declined .st-key-tour_offer{display:none !important}"


@dataclass(frozen=True)
class Step:
    title: str
    page: str                                   # url path of the page it shows
    target: str                                 # CSS selector of what it talks about
    text: Callable[[], str]                     # markdown, written when shown (it may quote the view)


def _tau_now() -> str:
    return tau_label(state.tau())


STEPS = [
    Step("Surprise", "read", f".st-key-{Key.W_VIEW}", lambda: (
        "Each token is coloured by the **RNN's surprise**: how badly its fixed-size memory predicted the token "
        "before reading it. Bright tokens were news to the RNN; dark ones it saw coming. Hover over a token for "
        "its numbers.")),
    Step("What entered the cache", "read", f".st-key-{Key.W_VIEW}", lambda: (
        f"A token enters the **KV cache** only when {cached_when(models.get_bundle().cfg.head_rule)} the threshold "
        f"τ = {_tau_now()}. Those tokens are outlined in the text; the table above counts them per layer and "
        "gives their bytes, beside the RNN's state, which never grows.")),
    Step("A later token reads the cache", "read", f".st-key-{Key.W_VIEW}", lambda: (
        "The selected token (dashed box) was chosen because its attention reads an earlier **cached** token: "
        "the arcs go to what it read, thicker for more weight. The sentence under the text says what it read "
        "and why that token was kept. Hover over other tokens to see theirs.")),
    Step("Move the threshold", "read", f".st-key-{Key.W_TAU}", lambda: (
        f"The threshold is now **τ = {_tau_now()}**: only tokens at least this surprising are kept, so the "
        "cache is smaller (compare the table). τ = 0 keeps every token, like a Transformer; above 2 keeps none, "
        "like a pure RNN. Drag the slider yourself.")),
    Step("The chart", "read", ".st-key-mq_chart", lambda: (
        "**Memory against quality**: each point of the blue curve is one threshold, with the cache as a share "
        "of a full cache (x) and the loss in nats per token (y, lower is better). The star is the current "
        "threshold. When the page says the cache makes no measurable difference on a text, every point lies "
        "within the noise: that is a result too.")),
    Step("Other policies at equal memory", "read", ".st-key-mq_chart", lambda: (
        "The dotted curves keep **the same number of tokens**, chosen another way: at random, the most recent "
        "ones, the first four plus the most recent (as StreamingLLM does), or by HOLA's residual. Every curve "
        "runs from no cache to a full cache; where HAM's is lower, keeping what surprised the RNN was the "
        "better use of the same memory.")),
    Step("The recall lab", "recall", ".st-key-recall_chart", lambda: (
        "A task where the choice is stark: predictable filler with **key–value pairs** hidden in it, then "
        "questions about the keys. The RNN predicts the filler, so HAM keeps the pairs; the chart gives each "
        "policy's share of right answers at the same memory.")),
    Step("How one layer does it", "how", "#how-diagram", lambda: (
        "One HAM layer, step by step, for the selected token: what the RNN predicted, how surprised it was, "
        "whether the token entered the cache, what attention read and how the two paths are mixed. **Click any "
        "token** in the text to follow it. This is the end of the tour: open it again from the sidebar.")),
]


def tour_text(bundle: models.Bundle) -> str:
    """The preset on which a full cache and no cache differ most (from the shipped sweeps for
    this model); the default preset when none was shipped for it."""
    best, gap = DEFAULT_PRESET, float("-inf")
    for name, text in PRESETS.items():
        rows = shipped.lookup_sweep(bundle.directory, results.text_entry(bundle, text).read_text, TAU_GRID) \
            if bundle.trained else None
        if rows is None:
            continue
        by_tau = {r["tau"]: r["loss"] for r in rows.ham}
        if TAU_GRID[0] in by_tau and TAU_GRID[-1] in by_tau and by_tau[TAU_GRID[-1]] - by_tau[TAU_GRID[0]] > gap:
            best, gap = name, by_tau[TAU_GRID[-1]] - by_tau[TAU_GRID[0]]
    return best


def smaller_cache(bundle: models.Bundle, text: str) -> int:
    """Index of the first grid threshold above the default that keeps at most half the cache
    the default keeps on this text (measured from its sweep), else two stops above it."""
    start = DEFAULT_TAU_INDEX
    entry = results.text_entry(bundle, text)
    curves.prepare(bundle, entry)                      # the shipped sweep for a preset: no forward
    fraction = {r["tau"]: r["kv_fraction"] for r in curves.ham_rows(bundle, entry)}
    base = fraction.get(DEFAULT_TAU)
    if base:
        for i in range(start + 1, len(TAU_GRID)):
            if fraction.get(TAU_GRID[i], 1.0) <= base / 2:
                return i
    return min(start + 2, len(TAU_GRID) - 1)


def _show_text(name: str) -> None:
    """The preset on every page, as the preset box would set it."""
    state.set_text(PRESETS[name], name, box=True)
    state.set_notices(page=[], upload=[])


def enter(n: Optional[int]) -> None:
    """Go to step n (None ends the tour): set the view it talks about. A button callback."""
    if n is None or not 0 <= n < len(STEPS):
        page_state.set_tour_step(None)
        return
    page_state.set_tour_step(n, STEPS[n].page)
    bundle = models.get_bundle()
    if n == 0 or page_state.tour_preset() not in PRESETS:
        page_state.set_tour_preset(tour_text(bundle))
    # The tour shows the text on screen (the teacher's own, perhaps); its example text only when
    # asked for (use_example).
    text = state.text()
    state.set_tau_index(smaller_cache(bundle, text) if n == 3 and text.strip() else DEFAULT_TAU_INDEX, sliders=True)
    state.set_metric("min")
    if n in (0, 2, 7):                      # the page chooses the layer and token where the cache is at work
        state.choose_view_again()
    if STEPS[n].page == "recall":           # the lab's own settings (those its results were shipped for)
        state.forget(*state.RECALL_WIDGETS)


def use_example() -> None:
    """Show the tour on its example text (the preset where the cache matters most), which the
    card offers whenever another text is on screen. A button callback."""
    _show_text(page_state.tour_preset())
    state.choose_view_again()
    enter(page_state.tour_step())


def decline() -> None:
    """'No thanks': end the offer here, and have the browser remember it (see _MEMORY_JS)."""
    page_state.set_tour_declined()
    enter(None)


def card() -> None:
    """The tour's card at the top of the sidebar (the part of the page it talks about is outlined
    and scrolled into view), or the offer to a first-time visitor, in the same place and hidden
    at once in a browser that said "No thanks" before."""
    _component("memory", _MEMORY_JS, {"declined": page_state.tour_declined()}, st.sidebar)
    n = page_state.tour_step()
    if n is None:
        if not page_state.tour_offered():
            # In the sidebar, at its top: the page's first screen is left to the text.
            st.markdown(f"<style>{MEMORY_CSS}</style>", unsafe_allow_html=True)
            with st.sidebar, st.container(key="tour_offer", border=True):
                st.markdown(f"**New here?** A three-minute tour in {len(STEPS)} steps.")
                with st.container(horizontal=True, gap="small"):
                    st.button("Start the tour", key="w_tour_start", type="primary", on_click=enter, args=(0,))
                    st.button("No thanks", key="w_tour_skip", on_click=decline)
        return
    step = STEPS[n]
    # In the sidebar, at its top: beside the page, so it never covers what it points at.
    with st.sidebar, st.container(key="tour_card", border=True):
        st.markdown(f"**Tour {n + 1} of {len(STEPS)}: {step.title}**")
        st.markdown(step.text())
        with st.container(horizontal=True, gap="small"):
            st.button("Back", key="w_tour_back", icon=":material/chevron_left:", on_click=enter, args=(n - 1,),
                      disabled=n == 0)
            last = n == len(STEPS) - 1
            st.button("Finish" if last else "Next", key="w_tour_next", type="primary",
                      icon=":material/check:" if last else ":material/chevron_right:",
                      on_click=enter, args=(None if last else n + 1,))
            st.button("End tour", key="w_tour_end", on_click=enter, args=(None,))
        name = page_state.tour_preset()
        if name in PRESETS and state.text() != PRESETS[name]:
            st.button(f"Show it on the tour's example text ({name})", key="w_tour_example", on_click=use_example,
                      help="The tour uses the text on screen; this example is the one where the cache matters most.")
        _scroll(n, step.target)
    st.markdown(f"<style>{step.target}{{outline:3px solid #D81B60;outline-offset:6px;border-radius:6px}}</style>",
                unsafe_allow_html=True)


def showing(key: str) -> bool:
    """Whether the tour's current step talks about the element with this widget key."""
    n = page_state.tour_step()
    return n is not None and STEPS[n].target == f".st-key-{key}"


_components: dict = {}


def _component(name: str, js: str, data: dict, where=None) -> None:
    """Run one of the tour's small scripts in the page (`where`: a container, default here)."""
    try:
        if name not in _components:
            _components[name] = st.components.v2.component(f"ham_lab.tour_{name}", js=js)
        with where if where is not None else nullcontext():
            _components[name](data=data, key=f"w_tour_{name}")
    except Exception:          # without v2 components the page simply does without it
        pass


def _scroll(n: int, target: str) -> None:
    """Scroll the step's target into view once, when the step is first shown."""
    _component("scroll", _SCROLL_JS, {"step": n, "target": target})


def follow(pages: dict, current: str) -> None:
    """After a step change, open the page the step shows (pages: url path -> st.Page)."""
    goto = page_state.take_tour_page()
    if goto and goto != current and goto in pages:
        st.switch_page(pages[goto])
