"""Widgets stay live while the curves are computed (headless Chromium, the shipped model, a pasted
text of 1,024 tokens, whose sweep and policy comparison take the server many seconds): a
threshold move made while they run redraws the token view, the readout and the chart's current
point, the computation goes on, and a reload shows the threshold last chosen."""
from __future__ import annotations

import os
import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from app.engine.models import model_dir
from test_browser import ARTIFACTS, app_server, browser, metric, paste, until, view_text  # noqa: F401 - fixtures

PROGRESS = '[data-testid="stProgress"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = dict(os.environ, HAM_LAB_MODEL=str(model_dir()), HAM_LAB_THREADS="1", HAM_LAB_MAX_TOKENS="1024",
               HAM_LAB_TEXT_STORE=str(tmp_path_factory.mktemp("texts")),
               HAM_LAB_RECALL_MODEL=str(tmp_path_factory.mktemp("no_recall")))
    with app_server("streamlit_app.py", env, tmp_path_factory.mktemp("log")) as url:
        yield url


def long_text() -> str:
    from app.settings.presets import PRESETS

    body = " ".join(PRESETS.values())
    return "Wenceslas Ombrage wrote this for the class. " + body * (7000 // len(body) + 1)


def star_x(d):
    """The chart's current point (the last trace: app.drawing.memory_chart.with_current), or None."""
    return d.execute_script(
        "const p = document.querySelector('.js-plotly-plot'); if (!p || !p.data) return null;"
        "const t = p.data[p.data.length - 1]; return t && t.x ? t.x[0] : null;")


def test_a_threshold_move_during_the_sweep_redraws_the_view_and_is_kept(server, browser):
    d = browser
    d.get(server)
    paste(d, long_text())
    until(d, lambda d: "Ombrage" in view_text(d), "pasted text not in the token view")
    until(d, lambda d: star_x(d) is not None, "no chart with the current point")
    assert d.find_elements(By.CSS_SELECTOR, PROGRESS), "the curves were already complete: nothing ran"
    before = (metric(d, "of a full cache"), star_x(d), len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-cached")))

    thumb = d.find_element(By.CSS_SELECTOR, '.st-key-w_tau input[type="range"]')
    d.execute_script("arguments[0].focus();", thumb)
    moved = time.perf_counter()
    ActionChains(d).send_keys(Keys.HOME).perform()                # threshold 0: cache everything
    until(d, lambda d: metric(d, "of a full cache") == "100.0%", f"the readout did not follow (was {before[0]})")
    readout_s = time.perf_counter() - moved
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-cached"))
          == len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")), "the token view did not follow")
    until(d, lambda d: star_x(d) is not None and star_x(d) > before[1], "the chart's current point did not move")
    chart_s = time.perf_counter() - moved
    print(f"threshold move during the sweep: readout {readout_s:.2f} s, chart point {chart_s:.2f} s")
    assert d.find_elements(By.CSS_SELECTOR, PROGRESS), "the computation did not go on after the move"
    until(d, lambda d: "tau=0" in d.current_url, "the address bar does not hold the new threshold")

    d.get(d.current_url)                                          # a reload, still during the sweep
    until(d, lambda d: metric(d, "of a full cache") == "100.0%", "the reload lost the threshold")
    assert "Ombrage" in view_text(d)
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "read_live_during_sweep.png"))
    # and the curves arrive in the end, the other policies with them
    until(d, lambda d: not d.find_elements(By.CSS_SELECTOR, PROGRESS), "the curves never finished", timeout=600)
    until(d, lambda d: any("recent window" in c.text for c in d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")),
          "no other policies on the chart")
    d.save_screenshot(str(ARTIFACTS / "read_live_after_sweep.png"))
