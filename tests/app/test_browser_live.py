"""Widgets stay live while the curves are computed (headless Chromium, the shipped model, a pasted
text of 1,024 tokens, whose sweep and policy comparison take the server many seconds): a
threshold move made while they run redraws the token view, the readout and the chart's current
point, the computation goes on, and a reload shows the threshold last chosen."""
from __future__ import annotations

import os

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


# Installed just before the key press: the page itself notes (every 20 ms, without the test's
# own round trips) when the readout, the token view and the chart's current point follow.
WATCH_MOVE = """
const w = window.__hamMove = {t0: performance.now(), readout: null, view: null, star: null};
const starBefore = arguments[0];
w.timer = setInterval(() => {
  const now = performance.now() - w.t0;
  if (w.readout === null) {
    for (const box of document.querySelectorAll('[data-testid="stMetric"]')) {
      const label = box.querySelector('[data-testid="stMetricLabel"]'), value = box.querySelector('[data-testid="stMetricValue"]');
      if (label && value && label.innerText.trim() === 'of a full cache' && value.innerText.trim() === '100.0%') w.readout = now;
    }
  }
  if (w.view === null) {
    const n = document.querySelectorAll('#ham-view .ham-tok').length;
    if (n && document.querySelectorAll('#ham-view .ham-cached').length === n) w.view = now;
  }
  if (w.star === null) {
    const p = document.querySelector('.js-plotly-plot'), t = p && p.data && p.data[p.data.length - 1];
    if (t && t.x && t.x[0] > starBefore) w.star = now;
  }
  if (w.readout !== null && w.view !== null && w.star !== null) clearInterval(w.timer);
}, 20);
"""


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
    d.execute_script(WATCH_MOVE, before[1])
    ActionChains(d).send_keys(Keys.HOME).perform()                # threshold 0: cache everything
    until(d, lambda d: metric(d, "of a full cache") == "100.0%", f"the readout did not follow (was {before[0]})")
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-cached"))
          == len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")), "the token view did not follow")
    until(d, lambda d: star_x(d) is not None and star_x(d) > before[1], "the chart's current point did not move")
    seen = until(d, lambda d: d.execute_script("const w = window.__hamMove; return w.star !== null && w.view !== null"
                                               " && w.readout !== null ? w : null;"), "the page's own timer saw nothing")
    print(f"threshold move during the sweep: readout {seen['readout'] / 1000:.2f} s, token view "
          f"{seen['view'] / 1000:.2f} s, chart point {seen['star'] / 1000:.2f} s")
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
