"""The app in a real browser: `streamlit run` on a free port, driven by headless Chromium.

Needs Debian's chromium and chromium-driver (.ci/run installs them); it fails, not skips, when
they are missing, so CI cannot pass without having run it. Saves a screenshot under
test-artifacts/.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASTE = ("Captain Ysolde Marchbank sailed the Quillon north in 1911. The crew trusted Ysolde Marchbank, "
         "and when the ice closed in, it was Ysolde who found the channel. ")
WAIT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(script: str, env: dict, log_dir: Path):
    """`streamlit run app/<script>` on a free port of 127.0.0.1 with the environment `env`; yields
    its address and stops it in any case."""
    port = free_port()
    log = open(log_dir / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / script),
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def server(request, tiny_model_dir, tmp_path_factory):
    """The app on a free port; a test module may name the script to run in APP_SCRIPT, and ask
    for the shipped models (whose presets' results are shipped too) with SHIPPED_MODELS = True."""
    env = dict(os.environ, HAM_LAB_THREADS="1", HAM_LAB_TEXT_STORE=str(tmp_path_factory.mktemp("texts")))
    if not getattr(request.module, "SHIPPED_MODELS", False):
        env.update(HAM_LAB_MODEL=str(tiny_model_dir), HAM_LAB_MAX_TOKENS="160",
                   HAM_LAB_RECALL_MODEL=str(tmp_path_factory.mktemp("no_recall")))
    else:
        for name in ("HAM_LAB_MODEL", "HAM_LAB_MAX_TOKENS", "HAM_LAB_RECALL_MODEL", "HAM_LAB_PRECOMPUTED"):
            env.pop(name, None)
    with app_server(getattr(request.module, "APP_SCRIPT", "streamlit_app.py"), env, tmp_path_factory.mktemp("log")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                 "--window-size=1500,2600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver, condition, message: str, timeout: float = WAIT):
    def safe(d):
        try:
            return condition(d)
        except (StaleElementReferenceException, WebDriverException):
            return False
    return WebDriverWait(driver, timeout, poll_frequency=0.3).until(safe, message)


def quiet(driver, timeout: float = 180) -> None:
    """Wait until the page's curves are in and its last run ended: the page redraws once per
    curve stage, and an element found before a redraw is stale after it."""
    until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stProgress"], [data-testid="stStatusWidget"]'),
          "the page kept computing", timeout)
    time.sleep(1.0)


def metric(driver, label: str) -> str:
    for box in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        if box.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip() == label:
            return box.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
    return ""


TEXT_BOX = '[data-testid="stTextArea"] textarea'


def paste(d, text: str) -> None:
    """Wait for the first view, then replace the text box's text as a paste does (send_keys drops
    emoji and is slow for long texts) and submit it (Ctrl+Enter)."""
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")) > 10, "token view never appeared")
    # the shipped first view can paint before the page's run has drawn the inputs row
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, TEXT_BOX), "the text box never appeared")
    area = d.find_element(By.CSS_SELECTOR, TEXT_BOX)
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    d.execute_script("arguments[0].focus();", area)
    d.execute_cdp_cmd("Input.insertText", {"text": text})
    area.send_keys(Keys.CONTROL, Keys.ENTER)


def view_text(driver) -> str:
    return "".join(t.text for t in driver.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok"))


def test_paste_threshold_select_in_a_real_browser(server, browser):
    d = browser
    d.get(server)
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")) > 10, "token view never appeared")
    until(d, lambda d: metric(d, "of a full cache").endswith("%"), "no KV readout")

    # Paste a text (Ctrl+Enter submits the text area) and wait for it in the token view.
    area = d.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea')
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys(PASTE)
    area.send_keys(Keys.CONTROL, Keys.ENTER)
    until(d, lambda d: "Marchbank" in view_text(d).replace("\u21b5", ""), "pasted text not in the token view")
    assert "Marchbank" not in d.find_element(By.CSS_SELECTOR, "#ham-view").get_attribute("innerHTML").split(">")[0]

    # Move the threshold to 0 (cache everything): the readout must say 100%.
    before = metric(d, "of a full cache")
    thumb = d.find_element(By.CSS_SELECTOR, '.st-key-w_tau input[type="range"]')
    d.execute_script("arguments[0].focus();", thumb)
    ActionChains(d).send_keys(Keys.HOME).perform()
    until(d, lambda d: metric(d, "of a full cache") == "100.0%", f"threshold move did not reach 100% (was {before})")
    until(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-cached"))
          == len(d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")), "at tau 0 not every token is marked cached")
    assert metric(d, "KV cache (all layers)").endswith("B") and metric(d, "RNN state (fixed)")

    # Select a late token by clicking it: it is marked, and the tokens it read are highlighted.
    target = d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")[-5]
    target_id = target.get_attribute("id")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    until(d, lambda d: d.find_element(By.CSS_SELECTOR, "#ham-view .ham-selected").get_attribute("id") == target_id,
          "clicking a token did not select it")
    # (the click also reruns the page, which redraws the view: read the marks in one go, retrying)
    weights = until(d, lambda d: [float(r.get_attribute("data-read"))
                                  for r in d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-read")],
                    "no attention reads highlighted")
    assert all(0 < w <= 1 for w in weights) and len(weights) >= 1
    assert f"#{target_id.split('-t')[-1]}" in d.find_element(By.TAG_NAME, "body").text   # reads panel title

    # The memory-vs-quality chart is drawn (Plotly SVG with the HAM curve and current point); when
    # the cache makes no measurable difference on the text, the page says so and the chart waits
    # behind an expander.
    def chart(d):
        for summary in d.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"] summary'):
            if "measurements anyway" in summary.text and "HAM surprise" not in d.find_element(By.TAG_NAME, "body").text:
                summary.click()
        return any("HAM surprise" in c.text for c in d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))
    until(d, chart, "memory vs quality chart missing")
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    ARTIFACTS.mkdir(exist_ok=True)
    time.sleep(1.0)                       # let the chart finish its transition
    assert d.save_screenshot(str(ARTIFACTS / "app_read_view.png"))


# Counts the messages the page sends to the server over its websocket (every rerun starts with one).
COUNT_SENDS = """
window.hamSends = 0;
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (...args) { window.hamSends += 1; return send.apply(this, args); };
"""


def arcs(d) -> list[tuple[int, int, float]]:
    return [(int(a.get_attribute("data-from")), int(a.get_attribute("data-to")), float(a.get_attribute("data-w")))
            for a in d.find_elements(By.CSS_SELECTOR, ".ham-arcs .ham-arc")]


def index(el) -> int:
    return int(el.get_attribute("data-i"))


def test_first_view_arcs_hover_and_cache_bought_in_a_real_browser(server, browser):
    d = browser
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SENDS})
    d.get(server)                                     # the default preset, no click
    until(d, lambda d: arcs(d), "no arcs drawn on the first view")
    selected = index(d.find_element(By.CSS_SELECTOR, "#ham-view .ham-selected"))
    first = arcs(d)
    assert all(src == selected for src, _, _ in first)
    src, dst, weight = max(first, key=lambda a: a[2])
    assert dst < selected and 0 < weight <= 1                  # the strongest read points back ...
    assert "ham-cached" in d.find_element(By.ID, f"ham-t{dst}").get_attribute("class")   # ... at a cached token
    assert "What you see:" in d.find_element(By.TAG_NAME, "body").text
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "read_first_view.png"))

    # Hover another token: its arcs appear from data already in the page, with no message to the server.
    tokens = d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok")
    other = next(t for t in reversed(tokens) if index(t) not in (selected, len(tokens) - 1) and t.text.strip())
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", other)
    time.sleep(1.0)
    sends = d.execute_script("return window.hamSends")
    ActionChains(d).move_to_element(other).perform()
    until(d, lambda d: arcs(d) and all(a[0] == index(other) for a in arcs(d)), "hovering drew no arcs", timeout=5)
    assert all(dst <= index(other) for _, dst, _ in arcs(d))
    tip = d.find_element(By.CSS_SELECTOR, ".ham-tip")
    assert tip.is_displayed() and f"#{index(other)}" in tip.text and "RNN surprise" in tip.text
    time.sleep(1.0)
    assert d.execute_script("return window.hamSends") == sends, "hovering sent a message to the server"
    d.save_screenshot(str(ARTIFACTS / "read_hover.png"))
    ActionChains(d).move_to_element(d.find_element(By.TAG_NAME, "h1")).perform()
    until(d, lambda d: arcs(d) and all(a[0] == selected for a in arcs(d)), "leaving did not restore the locked token")

    # The "what the cache bought" colour mode.
    box = d.find_element(By.CSS_SELECTOR, ".st-key-w_metric")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.click()
    option = until(d, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, '[role="option"]')
                                 if "cache bought" in o.text], "no 'cache bought' option")[0]
    option.click()
    until(d, lambda d: "what the cache bought" in d.find_element(By.ID, "ham-legend").text, "cache-bought mode not shown")
    assert "What the cache bought on this text" in d.find_element(By.TAG_NAME, "body").text
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    time.sleep(0.5)
    d.execute_script("arguments[0].scrollIntoView({block: 'start'});", d.find_element(By.ID, "ham-legend"))
    d.save_screenshot(str(ARTIFACTS / "read_cache_bought.png"))


HOSTILE = ("<script>window.hamPwned = 1</script> <img src=x onerror=\"window.hamPwned = 2\"> "
           "\"quoted\" 'single' AT&T &amp; \u05e9\u05dc\u05d5\u05dd \U0001f408\u200d\u2b1b and <b>bold</b> again. ") * 2


def test_hostile_paste_renders_as_text_in_view_and_tooltips(server, browser):
    d = browser
    d.get(server)
    paste(d, HOSTILE)
    until(d, lambda d: "onerror" in view_text(d), "pasted text not in the token view")
    quiet(d)
    shown = view_text(d).replace("\u21b5", "")
    for piece in ("<script>", "onerror=", "\"quoted\"", "'single'", "AT&T", "&amp;", "\u05e9", "<b>bold</b>"):
        assert piece in shown.replace("\u25e6", ""), piece
    assert not d.find_elements(By.CSS_SELECTOR, "#ham-view script, #ham-view img, #ham-view b")
    # Hover every token that holds markup-like text: its tooltip shows the text, nothing runs.
    for tok in d.find_elements(By.CSS_SELECTOR, "#ham-view .ham-tok"):
        if "<" in tok.text or "&" in tok.text:
            ActionChains(d).move_to_element(tok).perform()
            tip = d.find_element(By.CSS_SELECTOR, ".ham-tip")
            until(d, lambda d: tip.is_displayed() and tok.text.strip() in tip.text, "tooltip does not show the token", 5)
            assert not tip.find_elements(By.CSS_SELECTOR, "script, img, b")
    assert d.execute_script("return window.hamPwned === undefined"), "a pasted script ran"
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "read_hostile_paste.png"))


def test_other_pages_render_in_a_real_browser(server, browser):
    d = browser
    for path, marker in (("step", "Step through"), ("how", "How it works"), ("recall", "Recall lab")):
        d.get(f"{server}/{path}")
        until(d, lambda d: marker in d.find_element(By.TAG_NAME, "body").text, f"{path} page did not render")
        until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".ham-tok") or path == "how", f"{path}: no tokens")
        assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "app_recall_lab.png"))


def test_a_two_megabyte_paste_is_cut_with_a_notice_not_dropped(server, browser):
    """The text box sets no character limit of its own (the browser would discard a longer value
    without a word): the paste reaches the app, which reads its start and says so."""
    d = browser
    d.get(server)
    paste(d, "Ottoline Brackwater kept the lighthouse log. " + "x" * (2_000_000 - 45))
    until(d, lambda d: "Brackwater" in view_text(d).replace("\u21b5", ""), "a 2 MB paste did not reach the view")
    notice = until(d, lambda d: [a.text for a in d.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]')
                                 if "2,000,000 characters" in a.text], "no notice that the paste was cut")
    assert "only the first" in notice[0]
    kept = d.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea').get_attribute("value")
    assert kept.startswith("Ottoline") and len(kept) < 200_000          # the box shows what is read
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "read_big_paste.png"))
