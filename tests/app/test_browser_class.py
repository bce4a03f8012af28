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

    from app.presets import DEFAULT_PRESET, PRESETS
    from ham_core.analysis.analysis import analyze
    from ham_core.model.checkpoint import load_bundle

    d = browser
    d.get(f"{server}/how")
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#how-diagram .how-step"), "no layer diagram")
    assert len(d.find_elements(By.CSS_SELECTOR, "#how-diagram .how-step")) == 7
    target = d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")[30]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    until(d, lambda d: "Token #30 " in d.find_element(By.CSS_SELECTOR, "#how-diagram").text, "clicking did not pick #30")
    header = d.find_element(By.CSS_SELECTOR, "#how-diagram").text
    layer = int(header.split(" in layer ")[1].split()[0]) - 1         # the page may open on any layer
    shown = {n: json.loads(d.find_element(By.ID, f"how-step-{n}").get_attribute("data-values")) for n in (2, 3, 5, 6, 7)}
    model, tokenizer = load_bundle(tiny_model_dir)
    text = PRESETS[DEFAULT_PRESET]
    text = text[: tokenizer.tokenize(text)[159].end]                 # the server reads 160 tokens
    a = analyze(model, tokenizer, text, tau=[0.2] * model.cfg.n_layers)
    assert shown[3]["surprise"] == pytest.approx(a.surprise_heads[layer, 30].tolist(), abs=1e-5)
    assert shown[5]["cached"] == bool(a.cached[layer, 30]) and shown[5]["tau"] == pytest.approx(0.2)
    assert shown[2]["alpha"] == pytest.approx(a.steps.alpha[layer, 30].tolist(), abs=1e-5)
    assert shown[7]["gate_attn"] == pytest.approx(a.steps.gate_attn[layer, 30].tolist(), abs=1e-5)
    reads = [(i, w) for i, w in a.reads(30, layer).top(3) if w > 0]
    assert [k for k, _ in shown[6]["reads"][:len(reads)]] == [i for i, _ in reads]
    assert [w for _, w in shown[6]["reads"][:len(reads)]] == pytest.approx([w for _, w in reads], abs=1e-5)
    d.save_screenshot(str(ARTIFACTS / "how_diagram.png"))
