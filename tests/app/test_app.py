"""The Streamlit app, page by page, through streamlit.testing.v1.AppTest on the tiny model."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import settings
from app.engine.store import reset_results_store
from app.settings import DEFAULT_TAU, TAU_GRID
from app.settings.presets import PRESETS
from tests.conftest import broken_model_copy

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGES = ["views/read.py", "views/step.py", "views/recall.py", "views/how.py"]
TIMEOUT = 180
K = "KV cache (all layers)"        # the readout's headline: bytes over all layers


@pytest.fixture
def app_env(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_TEXT_STORE", str(tmp_path / "texts"))
    monkeypatch.setenv("HAM_LAB_RECALL_MODEL", str(tmp_path / "no_recall_model"))
    monkeypatch.setenv("HAM_LAB_THREADS", "1")
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "128")     # keeps the suite fast; the limit is what is tested
    reset_results_store()                                # no curves of an earlier test still being computed
    return tmp_path


def start(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def open_options(at: AppTest) -> AppTest:
    """Open the Read page's folded options, as a click on the expander does (its widgets are drawn
    only when it is open)."""
    at.session_state["w_options"] = True
    return at.run()


def clean(at: AppTest) -> None:
    """No uncaught exception and no error box (the guard turns crashes into st.error)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def readout(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def settle(at: AppTest, timeout: float = 120) -> AppTest:
    """Run the page again until no progress bar is left: the curves are computed by the server's
    background queue, which a browser sees through the chart part's polling (AppTest does not
    poll, so the test reruns)."""
    deadline = time.time() + timeout
    while at.get("progress") and time.time() < deadline:
        time.sleep(0.2)
        at.run()
    assert not at.get("progress"), "the curves were still being computed"
    return at


def set_text(at: AppTest, text: str) -> AppTest:
    return at.text_area(key="w_text").input(text).run()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(app_env, page):
    at = start()
    clean(at)
    at.switch_page(page).run()
    clean(at)
    assert at.title and at.title[0].value
    assert any("Device" in m.value for m in at.sidebar.markdown)


def test_read_view_shows_readout_chart_and_token_view(app_env):
    at = settle(start())
    clean(at)
    values = readout(at)
    for label in ("KV cache (all layers)", "of a full cache", "RNN state (fixed)", "loss"):
        assert label in values
    assert values["KV cache (all layers)"].endswith("B") and values["of a full cache"].endswith("%")
    charts = at.get("plotly_chart")
    assert len(charts) == 1 and "HAM surprise" in str(charts[0].proto)   # memory vs quality
    assert any("token_view" in str(el.proto) for el in at.get("bidi_component")) or at.get("bidi_component")


def test_threshold_slider_changes_kv_readout(app_env):
    at = start()
    before = readout(at)
    at.select_slider(key="w_tau").set_value(TAU_GRID.index(0.0)).run()
    clean(at)
    full = readout(at)
    assert full["of a full cache"] == "100.0%"
    at.select_slider(key="w_tau").set_value(len(TAU_GRID) - 1).run()
    clean(at)
    none = readout(at)
    assert none["of a full cache"] == "0.0%" and none["KV cache (all layers)"] == "0 B"
    assert len({before[K], full[K], none[K]}) >= 2
    assert none["RNN state (fixed)"] == full["RNN state (fixed)"]      # the state does not grow


def test_per_layer_override_changes_readout(app_env):
    at = start()
    at.select_slider(key="w_tau").set_value(len(TAU_GRID) - 1).run()
    assert readout(at)[K] == "0 B"
    open_options(at).select_slider(key="w_over_0").set_value(TAU_GRID.index(0.0)).run()
    clean(at)
    assert readout(at)[K] != "0 B"
    at.session_state["w_options"] = False                 # folded again: the layer keeps its own threshold
    at.run()
    clean(at)
    assert readout(at)[K] != "0 B" and not [s for s in at.select_slider if s.key == "w_over_0"]


def test_presets_load(app_env):
    assert len(PRESETS) >= 6
    at = start()
    seen = set()
    for name in PRESETS:
        at.selectbox(key="w_preset").select(name).run()
        clean(at)
        assert at.text_area(key="w_text").value == PRESETS[name]
        seen.add(readout(at)["loss"])
    assert len(seen) > 1                                               # each preset is really read


def test_metric_layer_head_and_token_selection(app_env):
    at = start()
    at.selectbox(key="w_metric").select("head").run()
    at.selectbox(key="w_head").select(1).run()
    at.selectbox(key="w_layer").select(1).run()
    at.number_input(key="w_token").set_value(5).run()
    clean(at)
    assert any("#5" in m.value for m in at.markdown)
    at.selectbox(key="w_metric").select("lm").run()
    clean(at)


def test_truncation_notice_for_long_text(app_env):
    at = start()
    set_text(at, PRESETS["Technical paragraph"] * 12)
    clean(at)
    assert any("only its first 128 tokens" in w.value and "token limit" in w.value for w in at.warning)


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_text_is_a_friendly_message(app_env, text):
    at = start()
    set_text(at, "A text about the harbour, pasted before the box was emptied.")
    assert "text" in at.query_params
    set_text(at, text)
    clean(at)
    assert any("Paste some text" in i.value for i in at.info)
    assert "text" not in at.query_params and "preset" not in at.query_params   # no link to the old text
    set_text(at, "Back to a real text about the sea.")                 # and it keeps working
    clean(at)
    assert readout(at)["of a full cache"].endswith("%")


BAD = {
    "190 KB paste": "The sea is wide. " * 11_000,
    "control characters": "bell\x07 null\x00 escape\x1b[31m red\x1b[0m end\x7f",
    "right-to-left": "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd and \u0645\u0631\u062d\u0628\u0627 \u202eevil\u202c done",
    "emoji": "Cats 🐈‍⬛ and dogs 🐕 share a 🏠; flags 🇳🇴 and skin tones 👍🏽.",
    "10,000-character word": "a" * 10_000,
    "markup": "<script>alert(1)</script> <img src=x onerror=alert(1)> \"q\" & 'a'",
    "one character": "a",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_a_notice_not_a_traceback(app_env, name):
    at = start()
    set_text(at, BAD[name])
    clean(at)
    assert readout(at)["of a full cache"].endswith("%")
    if name == "190 KB paste":
        assert any("characters; only the first" in w.value for w in at.warning)
        # no limit in the box (the browser would drop a longer paste silently); it shows what is read
        assert at.text_area(key="w_text").proto.max_chars == 0
        assert 0 < len(at.text_area(key="w_text").value) < len(BAD[name])
    if name == "control characters":
        assert any("control character" in w.value for w in at.warning)
    if name == "right-to-left":
        assert any("right-to-left" in w.value for w in at.warning)
    if name == "10,000-character word":
        assert any("only the first" in w.value for w in at.warning)     # 10,000 tokens > the limit
    at.selectbox(key="w_preset").select("Code snippet").run()          # the next input still works
    clean(at)


def test_url_restores_view(app_env):
    at = start(preset="Code snippet", tau="0.2", layer="2", metric="lm")
    clean(at)
    assert at.text_area(key="w_text").value == PRESETS["Code snippet"]
    assert at.select_slider(key="w_tau").value == TAU_GRID.index(0.2)
    assert at.selectbox(key="w_layer").value == 1 and at.selectbox(key="w_metric").value == "lm"
    assert at.query_params["preset"] == ["Code snippet"] or at.query_params["preset"] == "Code snippet"
    heads = start(preset="Code snippet", tok="5", reads="2")             # one head's reads, as the link says
    clean(heads)
    assert open_options(heads).radio(key="w_reads").value == "head 2"
    assert heads.query_params["reads"] in ("2", ["2"])


def test_pasted_text_gets_a_hash_link(app_env):
    at = start()
    set_text(at, "A text only this test has written, about lighthouses.")
    clean(at)
    h = at.query_params["text"]
    h = h[0] if isinstance(h, list) else h
    again = start(text=h)
    clean(again)
    assert again.text_area(key="w_text").value.startswith("A text only this test")
    assert len(h) == 64                                                  # the full SHA-256
    missing = start(text="0" * 64)
    assert any("not stored on this server" in w.value for w in missing.warning)
    short = start(text=h[:12])                                           # an old short key opens nothing
    assert short.text_area(key="w_text").value != again.text_area(key="w_text").value


def test_other_policies_join_the_chart_by_themselves(app_env):
    """No button: the background queue adds the other policies to the chart, then refines it."""
    at = settle(set_text(start(), "A text pasted to see the policies: the keeper lit the lamp, and the lamp lit the bay."))
    clean(at)
    fig = [el for el in at.get("plotly_chart") if "Memory" in str(el.proto) or "recent window" in str(el.proto)]
    assert fig and "recent window" in str(fig[0].proto) and "HOLA residual" in str(fig[0].proto)
    assert not [b for b in at.button if b.key == "w_compare"]


def test_step_through_buttons(app_env):
    at = start()
    at.switch_page("views/step.py").run()
    clean(at)
    first = int(readout(at)["Tokens read"].split(" /")[0])
    assert 1 <= first <= 16                  # it opens on the first tokens read, coloured, not on 0 of 0
    at.button(key="w_reset").click().run()
    assert readout(at)["Tokens read"].startswith("0 /")
    at.button(key="w_step").click().run()
    assert readout(at)["Tokens read"].startswith("1 /")
    at.button(key="w_step10").click().run()
    assert readout(at)["Tokens read"].startswith("11 /")
    at.button(key="w_back").click().run()
    assert readout(at)["Tokens read"].startswith("10 /")
    at.button(key="w_play").click().run()
    clean(at)
    assert at.button(key="w_play").label == "Pause"
    at.button(key="w_reset").click().run()
    assert readout(at)["Tokens read"].startswith("0 /")


def test_recall_lab_runs_every_policy(app_env):
    at = start()
    at.switch_page("views/recall.py").run()
    clean(at)
    at.slider(key="w_pairs").set_value(6).run()
    at.slider(key="w_length").set_value(96).run()
    clean(at)
    assert "keys cached" in readout(at)
    at.slider(key="w_recall_n").set_value(4).run()
    at.button(key="w_recall_run").click().run()
    clean(at)
    # the policies' chart, whether or not the four architectures' chart (shipped models) follows it
    chart = [str(c.proto) for c in at.get("plotly_chart") if "recall_architectures_chart" not in str(c.proto)][-1]
    for name in ("HAM surprise", "random", "recent window", "sinks + window", "HOLA residual"):
        assert name in chart


def test_how_it_works_draws_the_layer_for_the_selected_token(app_env):
    import json
    import re

    from app.engine import models, results
    from app.settings.presets import DEFAULT_PRESET

    at = start()
    at.switch_page("views/how.py").run()
    clean(at)
    svg = next(m.value for m in at.markdown if m.value.startswith("<svg"))
    boxes = dict(re.findall(r'id="how-step-(\d)" class="how-step" data-values="([^"]*)"', svg))
    assert sorted(boxes) == [str(n) for n in range(1, 8)]
    # The numbers in the boxes are the analysis' numbers for the token and layer shown.
    token, layer = at.session_state["token"], at.session_state["layer"]
    bundle = models.get_bundle()
    r = results.result_for(bundle, results.text_entry(bundle, PRESETS[DEFAULT_PRESET]), results.grid_taus(bundle, settings.DEFAULT_TAU))
    values = lambda n: json.loads(boxes[str(n)].replace("&quot;", '"'))  # noqa: E731
    assert values(3)["surprise"] == pytest.approx(r.surprise[layer, token].tolist(), abs=1e-6)
    assert values(5)["cached"] == bool(r.cached[layer, token])
    assert f"Token #{token} " in svg
    live = [m.value for m in at.markdown if m.value.startswith(":blue-badge[live]")]
    assert len(live) == 7 and all(any(ch.isdigit() for ch in v) for v in live)
    assert any(m.value.startswith("**Surprise**") for m in at.markdown)
    at.selectbox(key="w_layer_how").set_value(1).run()
    clean(at)
    assert "in layer 2 of" in next(m.value for m in at.markdown if m.value.startswith("<svg"))


def test_presenter_mode(app_env):
    at = start()
    at.sidebar.toggle(key="presenter").set_value(True).run()
    clean(at)
    assert any("font-size:130%" in m.value for m in at.markdown)


def _broken_model(tiny_model_dir, tmp_path, fault: str):
    fault_of = {"tensor": ("embed.weight", (0, 0), float("nan"))} if fault == "nan" else {"config": (fault, 10 ** 9)}
    return broken_model_copy(tiny_model_dir, tmp_path / f"broken_{fault}", **fault_of)


@pytest.mark.parametrize("fault", ["d_model", "chunk_size", "nan"])
def test_a_broken_model_is_one_message_in_the_sidebar_and_on_every_page(app_env, tiny_model_dir, monkeypatch, fault):
    broken = _broken_model(tiny_model_dir, app_env, fault)
    monkeypatch.setenv("HAM_LAB_MODEL", str(broken))
    at = start()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        side = [e.value for e in at.sidebar.error]
        if page == "views/recall.py":           # the recall lab has its own model, and its sidebar shows that one
            assert not side and any("Recall model" in m.value for m in at.sidebar.markdown)
            continue
        assert len(side) == 1 and "could not be loaded" in side[0]
        named = "model.safetensors" if fault == "nan" else f"config.json: {fault} = "
        assert named in side[0] and "\n" not in side[0]
        assert any(named in e.value for e in at.main.error)


def test_guided_tour_walks_every_step(app_env):
    from app.widgets.tour import STEPS

    at = start()
    clean(at)
    at.button(key="w_tour_start").click().run()
    for n in range(len(STEPS)):
        clean(at)
        card = " ".join(m.value for m in at.markdown)
        assert f"Tour {n + 1} of {len(STEPS)}: {STEPS[n].title}" in card
        if n == 3:
            assert at.session_state["tau_index"] > TAU_GRID.index(DEFAULT_TAU)        # the step moved the threshold
        if n < len(STEPS) - 1:
            at.button(key="w_tour_next").click().run()
    at.button(key="w_tour_next").click().run()                               # Finish
    clean(at)
    assert not [b for b in at.button if b.key == "w_tour_next"]
    assert not [b for b in at.button if b.key == "w_tour_start"]             # not offered again
    at.button(key="w_tour_restart").click().run()
    assert "Tour 1 of" in " ".join(m.value for m in at.markdown)
