"""Timing benchmark of the app (not a test): cold start to first view, and slider updates.

Starts `streamlit run app/streamlit_app.py` on a free port with a text of about 1,024 tokens
(stored in a temporary text store and opened by its hash link), drives headless Chromium, and
reports:
  * cold start: process start -> the token view shows every token and the KV readout (model
    load + one analysis + render), and -> the memory-vs-quality chart (+ the HAM sweep over the
    slider's thresholds, which runs after the view is drawn);
  * slider update: an arrow key on the threshold slider -> the KV readout shows the new value,
    the token view has re-rendered and the chart's current-threshold star sits at the new cache
    size (between precomputed points, end to end in the browser);
  * hover to arcs: a mouse-over on a token -> its arcs are in the page (the handler's time) and
    painted (the next frame), from the reads shipped with the view, with the count of messages
    the page sent to the server meanwhile (0: no rerun).

    python bench/app_bench.py [--model DIR] [--tokens 1024] [--moves 12] [--hovers 40] [--threads N]
    python bench/app_bench.py --server-side      # the same script runs in-process (AppTest), wall + CPU
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402


def text_of(tokens: int, model_dir: Path) -> str:
    """Presets joined until the text has at least `tokens` tokens."""
    from app.settings.presets import PRESETS
    from ham_core.model.tokenizer import HAMTokenizer

    tok = HAMTokenizer.from_file(model_dir / "tokenizer.json")
    text, parts = "", list(PRESETS.values())
    while len(tok.encode(text)) < tokens:
        text += parts[len(text) % len(parts)] + "\n"
    return text


def readout(d) -> str:
    for box in d.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        if "of a full cache" in box.text:
            return box.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text
    return ""


# Watches the page from inside (no polling from Python, which would itself load the page's
# main thread): after each key press, records when the KV readout shows a new value, when the
# token view is replaced, and when the chart's current-threshold star sits at the new size.
WATCH_JS = """
window.hamMoves = [];
const readoutText = () => {
  for (const box of document.querySelectorAll('[data-testid="stMetric"]'))
    if (box.textContent.includes('of a full cache'))
      return box.querySelector('[data-testid="stMetricValue"]').textContent.trim();
  return '';
};
const starText = () => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const star = (gd.data || []).find((t) => t.name === 'current threshold');
    if (star) return star.x[0].toFixed(1) + '%';
  }
  return '';
};
document.addEventListener('keydown', () => {
  const view = document.getElementById('ham-view');
  if (view) view.dataset.old = '1';
  window.hamMoves.push({start: performance.now(), before: readoutText()});
}, true);
new MutationObserver(() => {
  const m = window.hamMoves[window.hamMoves.length - 1];
  if (!m) return;
  const now = performance.now() - m.start, value = readoutText();
  if (m.readout === undefined && value && value !== m.before) m.readout = now;
  const view = document.getElementById('ham-view');
  if (m.view === undefined && view && !view.dataset.old) m.view = now;
  if (m.readout !== undefined && m.chart === undefined && starText() === value) m.chart = now;
}).observe(document.body, {childList: true, subtree: true, attributes: true, characterData: true});
"""


# Counts the page's websocket messages (a rerun starts with one); installed before the page loads.
COUNT_SENDS = """
window.hamSends = 0;
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (...args) { window.hamSends += 1; return send.apply(this, args); };
"""

# Hovers n tokens spread over the text, one at a time: time to arcs in the DOM, and to the next
# painted frame; the number of arcs drawn and of messages sent to the server.
HOVER_JS = """
const [n, done] = arguments;
(async () => {
  const toks = [...document.querySelectorAll('#ham-view .ham-tok')];
  const sends = window.hamSends, out = [];
  for (let j = 0; j < n; j++) {
    const el = toks[Math.floor((j + 0.5) * toks.length / n)];
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
    const t1 = performance.now();
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    out.push({handler: t1 - t0, painted: performance.now() - t0,
              arcs: document.querySelectorAll('.ham-arc[data-from="' + el.dataset.i + '"]').length});
  }
  done({moves: out, sends: window.hamSends - sends});
})();
"""


def chart_drawn(d) -> bool:
    """The memory-vs-quality chart is in the page (also when it sits in a closed expander)."""
    return bool(d.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].some((gd) => (gd.data || [])"
        ".some((t) => t.name === 'HAM surprise'));"))


def server_side(model_dir: Path, tokens: int, moves: int, threads: int) -> None:
    """The same in one process with streamlit.testing.v1.AppTest: each script run's wall and
    CPU time (what the server does per slider move, without the browser)."""
    from streamlit.testing.v1 import AppTest

    os.environ.update(HAM_LAB_MODEL=str(model_dir), HAM_LAB_MAX_TOKENS=str(tokens))
    if threads:
        os.environ["HAM_LAB_THREADS"] = str(threads)
    from app.session.text_store import remember_text
    from app.settings import TAU_GRID

    h = remember_text(text_of(tokens, model_dir))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=3600)
    at.query_params["text"] = h
    w, c = time.perf_counter(), time.process_time()
    at.run()
    print(f"AppTest cold run (model load + sweep of {len(TAU_GRID)} thresholds + render): "
          f"{time.perf_counter() - w:.1f} s wall, {time.process_time() - c:.1f} s CPU")
    walls, cpus = [], []
    start = at.select_slider(key="w_tau").value
    for i in range(moves):
        target = start - 1 - i % 4 if (i // 4) % 2 == 0 else start - 3 + i % 4
        w, c = time.perf_counter(), time.process_time()
        at.select_slider(key="w_tau").set_value(max(0, target)).run()
        walls.append(1000 * (time.perf_counter() - w))
        cpus.append(1000 * (time.process_time() - c))
    assert not at.exception, at.exception
    print(f"AppTest slider move ({moves} moves between precomputed points): median {statistics.median(walls):.0f} ms "
          f"wall / {statistics.median(cpus):.0f} ms CPU, max {max(walls):.0f} ms wall")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_model = ROOT / "assets" / "lm"
    p.add_argument("--model", default=str(default_model if (default_model / "model.safetensors").exists()
                                          else Path("/work/runs/lm")))
    p.add_argument("--tokens", type=int, default=1024)
    p.add_argument("--moves", type=int, default=12)
    p.add_argument("--hovers", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="HAM_LAB_THREADS (0: torch's default)")
    p.add_argument("--server-side", action="store_true", help="time AppTest script runs instead of a browser")
    args = p.parse_args()
    model_dir = Path(args.model)
    if args.server_side:
        os.environ["HAM_LAB_TEXT_STORE"] = tempfile.mkdtemp()
        server_side(model_dir, args.tokens, args.moves, args.threads)
        return
    store = Path(tempfile.mkdtemp())
    os.environ["HAM_LAB_TEXT_STORE"] = str(store)
    from app.session.text_store import remember_text

    text = text_of(args.tokens, model_dir)
    h = remember_text(text)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HAM_LAB_MODEL=str(model_dir), HAM_LAB_MAX_TOKENS=str(args.tokens),
               HAM_LAB_TEXT_STORE=str(store))
    if args.threads:
        env["HAM_LAB_THREADS"] = str(args.threads)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1500,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SENDS})
    driver.set_script_timeout(120)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        t_server = time.perf_counter() - t0
        driver.get(f"{url}/?text={h}")
        n, t_view = 0, None
        while True:
            n = driver.execute_script("const v = document.getElementById('ham-view'); return v ? v.children.length : 0;")
            if t_view is None and n >= args.tokens - 8 and readout(driver):
                t_view = time.perf_counter() - t0
            if t_view is not None and chart_drawn(driver):
                break
            if time.perf_counter() - t0 > 1800:
                driver.save_screenshot("/tmp/app_bench_stuck.png")
                raise SystemExit(f"no chart after 1800 s ({n} tokens shown); see /tmp/app_bench_stuck.png")
            time.sleep(0.05)
        t_first = time.perf_counter() - t0
        for box in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"] summary'):
            if "measurements anyway" in box.text:         # the chart behind "no measurable difference"
                box.click()
                time.sleep(1.0)
        time.sleep(2.0)
        hovers = driver.execute_async_script(HOVER_JS, args.hovers)
        thumb = driver.find_element(By.CSS_SELECTOR, '.st-key-w_tau input[type="range"]')
        driver.execute_script(WATCH_JS)
        for i in range(args.moves):
            key = Keys.ARROW_LEFT if (i // 4) % 2 == 0 else Keys.ARROW_RIGHT
            driver.execute_script("arguments[0].focus();", thumb)
            ActionChains(driver).send_keys(key).perform()
            waited = time.perf_counter()
            while not driver.execute_script("const m = window.hamMoves[window.hamMoves.length - 1];"
                                            "return !!m && m.chart !== undefined && m.view !== undefined;"):
                if time.perf_counter() - waited > 30:
                    raise SystemExit(f"move {i}: readout, view and chart not all updated within 30 s")
                time.sleep(0.1)
            time.sleep(0.5)
        moves = driver.execute_script("return window.hamMoves;")
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=20)
    rd = sorted(m["readout"] for m in moves)
    vw = sorted(m["view"] for m in moves)
    ms = sorted(max(m["readout"], m["view"], m["chart"]) for m in moves)
    print(f"model {model_dir}, {n} tokens in view, threads {args.threads or 'default'}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"server up: {t_server:.1f} s; cold start to first view (model load, one analysis, token view and "
          f"readout): {t_view:.1f} s; to the memory-vs-quality chart (+ the sweep): {t_first:.1f} s")
    hd = sorted(h["handler"] for h in hovers["moves"])
    hp = sorted(h["painted"] for h in hovers["moves"])
    drawn = sum(h["arcs"] > 0 for h in hovers["moves"])
    print(f"hover to arcs ({len(hp)} tokens, {drawn} with arcs): in the page after median {statistics.median(hd):.1f} ms "
          f"(max {hd[-1]:.1f}); painted after median {statistics.median(hp):.1f} ms, p90 {hp[int(0.9 * (len(hp) - 1))]:.1f} ms, "
          f"max {hp[-1]:.1f} ms; messages sent to the server while hovering: {hovers['sends']}")
    print(f"slider update ({len(ms)} moves, browser end to end): KV readout updated after median "
          f"{statistics.median(rd):.0f} ms (max {rd[-1]:.0f}); token view re-rendered after median "
          f"{statistics.median(vw):.0f} ms (max {vw[-1]:.0f}); chart's current point moved (everything "
          f"updated) after median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, "
          f"max {ms[-1]:.0f} ms")


if __name__ == "__main__":
    main()
