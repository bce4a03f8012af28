"""Class-ready checks in a real browser: the step-through under fast clicks, the tour, the layer
diagram, presenter mode at 1280 x 720 and the copy-link button (headless Chromium, tiny model).

Uses the server and browser fixtures of test_browser (a second server for this module)."""
from __future__ import annotations

import time

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
