"""The "Learning to look up" page in a real browser: the recorded run's replay slider draws every
view; Start trains live and the loss curve grows; Pause holds it; Reset returns to the replay.

Uses the server and browser fixtures of test_browser (a server of its own for this module);
screenshots go to test-artifacts/."""
from __future__ import annotations

import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from test_browser import ARTIFACTS, browser, metric, server, until  # noqa: F401 - fixtures

CHARTS = ("lab_loss", "lab_gates", "lab_temps", "lab_cache", "lab_arcs", "lab_grid")
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def button(d, key: str):
    return d.find_element(By.CSS_SELECTOR, f".st-key-{key} button")


def step_shown(d) -> int:
    value = metric(d, "step")
    return int(value.split()[0]) if value else -1


def points(d, chart: str) -> int:
    """How many points the first curve of a chart has, as the browser drew it."""
    return d.execute_script(
        "const all = document.querySelectorAll(arguments[0] + ' .js-plotly-plot'), p = all[all.length - 1];"
        "return p && p.data && p.data.length ? p.data[0].x.length : -1;", f".st-key-{chart}")


def all_charts_drawn(d) -> bool:
    return all(d.find_elements(By.CSS_SELECTOR, f".st-key-{c} .js-plotly-plot .main-svg") for c in CHARTS)


def steady(d, read):
    """read(d), retried while a rerun replaces the elements it reads."""
    return until(d, lambda d: (read(d),), "could not read the page")[0]


def press(d, key) -> None:
    """A key on the replay slider (found again each time: a rerun may replace it)."""
    thumb = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, '.st-key-w_lab_replay input[type="range"]'),
                  "no replay slider")[0]
    d.execute_script("arguments[0].focus();", thumb)
    ActionChains(d).send_keys(key).perform()


def page_says(d, words: str) -> bool:
    return words in d.find_element(By.TAG_NAME, "body").text


def test_replay_then_start_pause_reset(server, browser):
    d = browser
    d.get(f"{server}/lookups")
    until(d, lambda d: page_says(d, "Showing the recorded run") and all_charts_drawn(d), "the replay did not draw")
    for skip in d.find_elements(By.CSS_SELECTOR, ".st-key-w_tour_skip button"):
        skip.click()                                                  # the tour's offer to a first visit
    ARTIFACTS.mkdir(exist_ok=True)
    until(d, lambda d: step_shown(d) == 600, "the replay does not open at its last step")
    # the replay slider: to the start, then a few logged steps on; every view is drawn each time
    press(d, Keys.HOME)
    until(d, lambda d: step_shown(d) == 0 and all_charts_drawn(d) and points(d, "lab_loss") == 1, "replay at step 0")
    for _ in range(30):
        press(d, Keys.ARROW_RIGHT)
    until(d, lambda d: step_shown(d) == 150 and all_charts_drawn(d) and points(d, "lab_loss") == 31, "replay at 150")
    d.save_screenshot(str(ARTIFACTS / "lookups_replay_150.png"))
    # live, at a pace the test can watch: the curve grows
    box = d.find_element(By.CSS_SELECTOR, ".st-key-w_lab_speed input")
    box.click()
    box.send_keys("3 steps/s")
    box.send_keys(Keys.ENTER)
    until(d, lambda d: d.find_element(By.CSS_SELECTOR, ".st-key-w_lab_speed input").get_attribute("value")
          == "3 steps/s", "speed not set")
    button(d, "w_lab_start").click()
    until(d, lambda d: page_says(d, "Showing your live training") and step_shown(d) >= 5, "the live run never began")
    # the replay's chart (121 points) may linger in the page while the live one replaces it
    first = until(d, lambda d: (lambda n: (n,) if 0 < n < 60 else None)(points(d, "lab_loss")), "no live curve")[0]
    until(d, lambda d: points(d, "lab_loss") > first + 2 and all_charts_drawn(d), "the loss curve did not grow")
    d.save_screenshot(str(ARTIFACTS / "lookups_live.png"))
    # pause: the step holds
    button(d, "w_lab_pause").click()
    until(d, lambda d: page_says(d, "training): paused") or page_says(d, "steps): paused"), "pause never showed")
    held = steady(d, step_shown)
    time.sleep(4)
    assert steady(d, step_shown) == held < 600
    # reset: back to the recorded run
    button(d, "w_lab_reset").click()
    until(d, lambda d: page_says(d, "Showing the recorded run") and all_charts_drawn(d), "reset did not return")
    assert not [e.text for e in d.find_elements(By.CSS_SELECTOR, ERRORS)]
