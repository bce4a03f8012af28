"""Class-ready checks in a real browser: the step-through under fast clicks, the tour, the layer
diagram, presenter mode at 1280 x 720 and the copy-link button (headless Chromium, tiny model).

Uses the server and browser fixtures of test_browser (a second server for this module)."""
from __future__ import annotations

import time

import pytest

from selenium.webdriver.common.by import By

from test_browser import ARTIFACTS, browser, metric, server, until  # noqa: F401 - fixtures

APP_SCRIPT = "server.py"          # the README's command: the app with its start-up warm-up
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def button(d, key: str):
    return d.find_element(By.CSS_SELECTOR, f".st-key-{key} button")


def body_text(d) -> str:
    return d.find_element(By.TAG_NAME, "body").text


def test_step_through_survives_fast_clicks(server, browser):
    d = browser
    d.get(f"{server}/step")
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-w_step button"), "step page did not render")
    keys = ["w_step", "w_step10", "w_back", "w_play", "w_step", "w_back", "w_step10", "w_back", "w_play", "w_step"] * 3
    for key in keys:                       # 30 clicks, no waiting for the page between them
        d.execute_script("arguments[0].click();", button(d, key))
        time.sleep(0.03)
    time.sleep(2.0)
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "step_fast_clicks.png"))
    assert not [e.text for e in d.find_elements(By.CSS_SELECTOR, ERRORS)]
    # The state is still consistent: each click now does exactly what it says.
    total = until(d, lambda d: metric(d, "Tokens read").split(" / ")[-1], "no token counter")
    for key, expected in (("w_reset", "0"), ("w_step", "1"), ("w_step10", "11"), ("w_back", "10")):
        button(d, key).click()
        until(d, lambda d: metric(d, "Tokens read") == f"{expected} / {total}",
              f"after {key}: {metric(d, 'Tokens read')}, expected {expected} / {total}")
    assert len(d.find_elements(By.CSS_SELECTOR, "#step-view .ham-cached")) <= 10    # only tokens read are marked
    assert not [e.text for e in d.find_elements(By.CSS_SELECTOR, ERRORS)]


def test_layer_diagram_shows_the_clicked_tokens_numbers(server, browser, tiny_model_dir):
    import json

    from app.settings import DEFAULT_TAU
    from app.settings.presets import DEFAULT_PRESET, PRESETS
    from ham_core.analysis.analysis import analyze
    from ham_core.model.checkpoint import load_bundle

    d = browser
    d.get(f"{server}/how")
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#how-diagram .how-step"), "no layer diagram")
    assert len(d.find_elements(By.CSS_SELECTOR, "#how-diagram .how-step")) == 7
    target = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")[30:], "no token view")[0]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    until(d, lambda d: "Token #30 " in d.find_element(By.CSS_SELECTOR, "#how-diagram").text, "clicking did not pick #30")
    header = d.find_element(By.CSS_SELECTOR, "#how-diagram").text
    layer = int(header.split(" in layer ")[1].split()[0]) - 1         # the page may open on any layer
    shown = {n: json.loads(d.find_element(By.ID, f"how-step-{n}").get_attribute("data-values")) for n in (2, 3, 5, 6, 7)}
    model, tokenizer = load_bundle(tiny_model_dir)
    text = PRESETS[DEFAULT_PRESET]
    text = text[: tokenizer.tokenize(text)[159].end]                 # the server reads 160 tokens
    a = analyze(model, tokenizer, text, tau=[DEFAULT_TAU] * model.cfg.n_layers)
    assert shown[3]["surprise"] == pytest.approx(a.surprise_heads[layer, 30].tolist(), abs=1e-5)
    assert shown[5]["cached"] == bool(a.cached[layer, 30]) and shown[5]["tau"] == pytest.approx(DEFAULT_TAU)
    assert shown[2]["alpha"] == pytest.approx(a.steps.alpha[layer, 30].tolist(), abs=1e-5)
    assert shown[7]["gate_attn"] == pytest.approx(a.steps.gate_attn[layer, 30].tolist(), abs=1e-5)
    reads = [(i, w) for i, w in a.reads(30, layer).top(3, shown[6]["head"]) if w > 0]   # whose reads: the page says
    assert [k for k, _ in shown[6]["reads"][:len(reads)]] == [i for i, _ in reads]
    assert [w for _, w in shown[6]["reads"][:len(reads)]] == pytest.approx([w for _, w in reads], abs=1e-5)
    d.save_screenshot(str(ARTIFACTS / "how_diagram.png"))


CHART_TEXT = {"title": ".gtitle", "tick": ".xtick text", "legend": ".legendtext", "annotation": ".annotation-text"}

MEASURE_JS = """
const px = (el) => el ? parseFloat(getComputedStyle(el).fontSize) : null;
const chart = document.querySelector('.st-key-mq_chart .js-plotly-plot');
const out = {h1: px(document.querySelector('h1')), caption: px(document.querySelector('[data-testid=stCaptionContainer]')),
             token: px(document.querySelector('#ham-view .ham-tok')), chart: {}, cut: []};
for (const [name, css] of Object.entries(arguments[0])) out.chart[name] = px(chart && chart.querySelector(css));
for (const el of document.querySelectorAll('[data-testid=stMetricValue], [data-testid=stMetricLabel]')) {
  const box = el.querySelector('.stMarkdownEllipsis') || el;
  if (box.scrollWidth > box.clientWidth + 1 || getComputedStyle(box).textOverflow === 'ellipsis' || el.textContent.includes('\\u2026'))
    out.cut.push(el.textContent.trim());
}
return out;
"""


def open_chart(d) -> None:
    """The chart may sit in a closed expander (when the cache makes no measurable difference)."""
    for summary in d.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"] summary'):
        if "measurements anyway" in summary.text and not summary.find_element(By.XPATH, "..").get_attribute("open"):
            d.execute_script("arguments[0].click();", summary)
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-mq_chart .js-plotly-plot .xtick text"), "chart not drawn")


def test_presenter_mode_at_1280_by_720(server, browser):
    d = browser
    d.set_window_size(1280, 720)
    try:
        d.get(server)
        until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")) > 10, "no token view")
        open_chart(d)
        before = d.execute_script(MEASURE_JS, CHART_TEXT)
        d.execute_script("arguments[0].click();", d.find_element(By.CSS_SELECTOR, ".st-key-presenter input"))
        until(d, lambda d: d.execute_script(MEASURE_JS, CHART_TEXT)["h1"] > before["h1"] * 1.2, "presenter mode did not grow the title")
        open_chart(d)
        until(d, lambda d: (d.execute_script(MEASURE_JS, CHART_TEXT)["chart"]["tick"] or 0) > before["chart"]["tick"] * 1.3,
              "chart ticks did not grow")
        time.sleep(1.0)
        after = d.execute_script(MEASURE_JS, CHART_TEXT)
        for name in ("h1", "caption", "token"):
            assert after[name] > 1.2 * before[name], (name, before[name], after[name])
        for name in CHART_TEXT:
            if before["chart"][name] is not None:        # the chart may have no annotation on this text
                assert after["chart"][name] >= 1.3 * before["chart"][name], (name, before["chart"], after["chart"])
        assert before["chart"]["tick"] and before["chart"]["title"] and before["chart"]["legend"]
        assert after["cut"] == [], after["cut"]
        assert not d.find_elements(By.CSS_SELECTOR, ERRORS)
        d.save_screenshot(str(ARTIFACTS / "presenter_1280x720.png"))
        for name, css in (("readout", '[data-testid="stMetric"]'), ("chart", ".st-key-mq_chart")):
            # found and scrolled in one call: the chart's watcher may redraw the page in between
            d.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});", css)
            time.sleep(0.5)
            d.save_screenshot(str(ARTIFACTS / f"presenter_1280x720_{name}.png"))
    finally:
        d.execute_script("arguments[0].click();", d.find_element(By.CSS_SELECTOR, ".st-key-presenter input"))
        d.set_window_size(1500, 2600)


def test_copy_link_button_copies_the_view(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": server, "permissions": ["clipboardReadWrite",
                                                                                     "clipboardSanitizedWrite"]})
    d.get(f"{server}/?preset=Code+snippet")
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")) > 10, "no token view")
    thumb = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, '.st-key-w_tau input[type="range"]'), "no slider")[0]
    d.execute_script("arguments[0].focus();", thumb)
    ActionChains(d).send_keys(Keys.HOME).perform()                  # threshold 0: a view that is not the default
    until(d, lambda d: "tau=0&" in d.current_url, "the address does not hold the threshold")
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".ham-link-copy"), "no copy-link button")[0].click()
    until(d, lambda d: d.find_element(By.CSS_SELECTOR, ".ham-link-note").text.startswith("Copied: "), "no copy")
    copied = d.execute_async_script("const done = arguments[0]; navigator.clipboard.readText().then(done, () => done(''));")
    assert copied == d.current_url and "preset=Code+snippet" in copied and "tau=0&" in copied
    d.get(copied)                                                   # a new session opens the same view
    until(d, lambda d: metric(d, "of a full cache") == "100.0%", "the copied link did not restore the threshold")
    assert "def moving_average" in d.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea').get_attribute("value")
    # A link to a pasted text this server does not hold says so plainly.
    d.get(f"{server}/?text={'0' * 64}")
    until(d, lambda d: "not stored on this server" in body_text(d), "no message for an unknown text")
    assert not d.find_elements(By.CSS_SELECTOR, ERRORS)


def test_guided_tour_sets_and_shows_each_steps_view(server, browser):
    from app.widgets.tour import STEPS

    titles = {"read": "Read a text", "recall": "Recall lab", "how": "How it works"}
    d = browser
    d.get(server)
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-w_tour_start button"), "no tour offer")[0].click()
    for n, step in enumerate(STEPS):
        until(d, lambda d: f"Tour {n + 1} of {len(STEPS)}" in d.find_element(By.CSS_SELECTOR, ".st-key-tour_card").text,
              f"step {n + 1} not shown")
        until(d, lambda d: d.find_element(By.TAG_NAME, "h1").text == titles[step.page], f"step {n + 1}: wrong page")
        target = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, step.target), f"step {n + 1}: {step.target} missing")[0]
        until(d, lambda d: d.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return r.bottom > 0 && r.top < window.innerHeight;", target),
            f"step {n + 1}: {step.target} was not scrolled into view")
        assert d.execute_script("return getComputedStyle(arguments[0]).outlineStyle;", target) == "solid"
        assert not d.find_elements(By.CSS_SELECTOR, ERRORS), f"step {n + 1}"
        if n == 3:                                  # "move the threshold" moved it
            assert d.find_element(By.CSS_SELECTOR, ".st-key-w_tau").text.split()[-1] != "0.20"
        d.save_screenshot(str(ARTIFACTS / f"tour_{n + 1}.png"))
        if n < len(STEPS) - 1:
            d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_next button").click()
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_back button").click()          # back one step
    until(d, lambda d: f"Tour {len(STEPS) - 1} of" in d.find_element(By.CSS_SELECTOR, ".st-key-tour_card").text,
          "back did not go back")
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_end button").click()           # skippable
    until(d, lambda d: not d.find_elements(By.CSS_SELECTOR, ".st-key-tour_card"), "the tour did not end")
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_restart button").click()       # restartable
    until(d, lambda d: "Tour 1 of" in d.find_element(By.CSS_SELECTOR, ".st-key-tour_card").text, "no restart")
    d.find_element(By.CSS_SELECTOR, ".st-key-w_tour_end button").click()
