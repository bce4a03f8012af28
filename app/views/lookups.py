"""Learning to look up: a tiny HAM trains on a copying task while the page watches (or a recorded
run replays), and the loss, the gates, the temperatures, the cache share and one example's reads
show a lookup forming: a plateau with the reads a smear, then a jump when one head's reads lock
onto the right key (ham_core.training.lookups_lab; the live trainings: app.engine.lookups_live).
"""
from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from app.drawing import lookup_charts
from app.engine import lookups_live
from app.engine.lookups_live import SYMBOLS, LabSettings, find_jump, lab_config, load_run, right_key, symbols
from app.session import page_state, state
from app.session.state import Key
from app.widgets import page

RECORDED = Path(__file__).resolve().parents[2] / "assets" / "lookups_lab" / "run.json"
THRESHOLDS = {0.0: "0: every token cached", 0.25: "0.25", 0.5: "0.5", 1.0: "1",
              3.0: "3: nothing cached (the RNN alone)"}
SPEEDS = {"as fast as it goes": None, "10 steps/s": 10.0, "3 steps/s": 3.0}
POLL_S = {lookups_live.QUEUED: 1.0, lookups_live.RUNNING: 1.0, lookups_live.PAUSED: 3.0}   # keeps a paused run alive
CHANCE = math.log(len(SYMBOLS))
CHART_CONFIG = {"displayModeBar": False}     # its buttons would cover the small charts' titles


@st.cache_resource(show_spinner=False)
def recorded_run():
    return load_run(RECORDED)


def start() -> None:
    seed, tau, speed = page_state.lab_choice()
    page_state.set_lab_trainer(lookups_live.LiveTraining(LabSettings(seed=seed, tau=tau), SPEEDS.get(speed, None)))


def reset() -> None:
    trainer = page_state.lab_trainer()
    page_state.set_lab_trainer(None)
    if trainer is not None:
        trainer.stop()


def last_reads(steps):
    """The latest logged step that carries the example's reads."""
    return next(s for s in reversed(steps) if s.reads is not None)


def draw(steps, settings: LabSettings, example, current=None) -> None:
    """Every view of a run's logged steps (all of them, or up to index `current` of a replay)."""
    shown = steps if current is None else steps[:current + 1]
    now, scale, total = shown[-1], state.chart_scale(), settings.steps
    lookup = max(range(len(now.attn_gate)), key=now.attn_gate.__getitem__)
    c = st.columns(5)
    c[0].metric("step", f"{now.step} of {total}")
    c[1].metric("loss (second reading)", f"{now.loss:.2f} nats")
    c[2].metric(f"attention gate, head {lookup + 1}", f"{now.attn_gate[lookup]:.2f}",
                help="The most open head's mean gate g^A: how much of its cache read-out the layer uses.")
    c[3].metric(f"temperature, head {lookup + 1}", f"{now.temperature[lookup]:.1f}",
                help="The logit scale of that head's reads: higher is sharper.")
    c[4].metric("tokens cached", f"{100 * now.cache_share:.0f}%")
    jump = find_jump(shown)
    mark = None if current is None else now.step
    st.plotly_chart(lookup_charts.loss_figure(shown, CHANCE, current=mark, jump=jump and jump.step, total=total,
                                              font_scale=scale),
                    key="lab_loss", config=CHART_CONFIG)
    g = st.columns(3)
    g[0].plotly_chart(lookup_charts.heads_figure(shown, "attn_gate", "Attention gate per head", "mean g^A",
                                                 current=mark, total=total, y_range=[0, 1], font_scale=scale),
                      key="lab_gates", config=CHART_CONFIG)
    g[1].plotly_chart(lookup_charts.heads_figure(shown, "temperature", "Temperature per head", "logit scale",
                                                 current=mark, total=total, font_scale=scale),
                      key="lab_temps", config=CHART_CONFIG)
    g[2].plotly_chart(lookup_charts.cache_share_figure(shown, current=mark, total=total, font_scale=scale),
                      key="lab_cache", config=CHART_CONFIG)
    seen = last_reads(shown)
    half, text = settings.half, symbols(example)
    st.subheader(f"One example's reads at step {seen.step}")
    st.caption("The sequence below is read twice. In the second reading a query can predict the next symbol "
               "only by reading, in the cache, the symbol that followed it the first time (green, or a key or "
               "two later: the layer's short convolution blends neighbours). A smear of thin arcs is a head that has not "
               "learned where to look; one thick arc is a lookup.")
    r = st.columns([1, 3])
    heads = [None, *range(len(seen.reads.weights))]      # None: whichever head's gate is the most open now
    choice = r[0].radio("Head", heads, format_func=lambda h: f"most open (head {lookup + 1})" if h is None
                        else f"head {h + 1}", key="w_lab_head", horizontal=True)
    head = lookup if choice is None else choice
    query = r[1].slider("Query position (second reading)", half + 1, 2 * half - 1, half + half // 2,
                        key="w_lab_query")
    weights = seen.reads.weights[head]
    st.plotly_chart(lookup_charts.reads_arcs_figure(text, weights[query - half], query, right_key(query, half),
                                                    head=head, font_scale=scale),
                    key="lab_arcs", config=CHART_CONFIG)
    st.plotly_chart(lookup_charts.reads_grid_figure(text, weights, head=head, font_scale=scale), key="lab_grid",
                    config=CHART_CONFIG)


def about(settings: LabSettings) -> str:
    return (f"seed {settings.seed}, threshold {THRESHOLDS.get(settings.tau, settings.tau)}, "
            f"{settings.steps} steps")


def replay(run) -> None:
    st.info(f"**Showing the recorded run** ({about(run.settings)}), shipped with the app in "
            f"`assets/lookups_lab/run.json` (`python -m ham_core lookups-lab --seed {run.settings.seed} --record "
            "PATH` trains it again). Move the slider to replay it; press **Start** to train one live here.")
    index = st.slider("Replay: step", 0, len(run.steps) - 1, len(run.steps) - 1, key="w_lab_replay",
                      format="%d", help="Logged steps of the recorded run (every 5th optimizer step).")
    st.caption(f"Step {run.steps[index].step} of the recorded run.")
    draw(run.steps, run.settings, run.example, current=index)


def live(trainer, run) -> None:
    state, steps, ahead = trainer.snapshot()
    settings = trainer.settings
    if state == lookups_live.QUEUED:
        st.warning(f"**Waiting for a place**: {lookups_live.slots().limit} live training(s) run at once on this "
                   f"server and {ahead} more are waiting ahead of yours. It starts by itself; meanwhile the page "
                   "shows the end of the **recorded run**.")
    elif state == lookups_live.TURNED_AWAY:
        st.warning("The server is too busy to queue another live training: the page shows the **recorded run**. "
                   "Press Reset and try again in a minute.")
    elif state == lookups_live.FAILED:
        st.error(f"The live training stopped with an error ({trainer.error}). Press Reset to start again.")
    elif state == lookups_live.STOPPED:
        st.warning("The live training was stopped (the page stopped watching it). Press Reset to start again.")
    else:
        words = {lookups_live.RUNNING: "training", lookups_live.PAUSED: "paused",
                 lookups_live.DONE: f"finished in {trainer.compute_s:.0f} s of training"}[state]
        st.success(f"**Showing your live training** ({about(settings)}): {words}.")
    if steps:
        draw(steps, settings, trainer.example)
    else:
        draw(run.steps, run.settings, run.example)


def controls(trainer) -> None:
    c = st.columns([1, 2, 1.3, 0.8, 0.8, 0.8])
    busy = trainer is not None
    c[0].number_input("Seed", 0, 10_000, 0, key=Key.W_LAB_SEED, disabled=busy)
    c[1].select_slider("Training threshold τ", list(THRESHOLDS), value=0.0, key=Key.W_LAB_TAU,
                       format_func=lambda t: THRESHOLDS[t], disabled=busy,
                       help="Which tokens the layer caches while it trains: 0 all, above 2 none (then only the "
                            "RNN can copy, and its 16 × 16 state per head cannot hold 24 symbols).")
    c[2].selectbox("Speed", list(SPEEDS), key=Key.W_LAB_SPEED, disabled=busy)
    state = trainer.state if busy else None
    c[3].button("▶ Start", key="w_lab_start", type="primary", on_click=start, disabled=busy)
    if state == lookups_live.PAUSED:
        c[4].button("▶ Resume", key="w_lab_pause", on_click=trainer.resume)
    else:
        c[4].button("⏸ Pause", key="w_lab_pause", disabled=state != lookups_live.RUNNING,
                    on_click=trainer.pause if busy else None)
    c[5].button("⏮ Reset", key="w_lab_reset", on_click=reset, disabled=not busy)


def body() -> None:
    st.title("Learning to look up")
    cfg = lab_config(LabSettings().half)
    st.caption(f"A tiny HAM ({cfg.n_layers} layer, {cfg.n_heads} heads of {cfg.head_dim}, {cfg.vocab_size} symbols) "
               "learns to copy: each training sequence is 24 random symbols read twice. Nothing in the first "
               "reading can be predicted; in the second, a lookup in the cache predicts every symbol. Watch the "
               "loss sit on a plateau, then jump down when one head learns where to look, its gate opening.")
    run = recorded_run()
    trainer = page_state.lab_trainer()
    controls(trainer)
    if trainer is None:
        replay(run)
        return
    poll = POLL_S.get(trainer.state)
    page_state.set_lab_polling(poll is not None)

    @st.fragment(run_every=poll)
    def watch() -> None:
        page.guard(lambda: live(trainer, run))     # a fragment rerun skips the page's guard
        if page_state.lab_polling() and POLL_S.get(trainer.state) != poll:
            st.rerun(scope="app")                      # the state changed: redraw the controls, new polling

    watch()


page.guard(body)
