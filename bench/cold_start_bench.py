"""Cold-start benchmark of the app (not a test): what a class waits for, in a real browser.

Each repeat times the floor first (below), then three figures, each in headless Chromium against
`streamlit run app/server.py` on a free port (the shipped model unless --model):
  * preset: process start -> a preset's full Read view (every token, the KV readout, the
    memory-vs-quality chart with the HAM curve and the other policies);
  * recall: a fresh process -> the recall lab's first view (the token view and its readout);
  * paste: in the running app, a pasted text of about --tokens tokens, from Ctrl+Enter -> its
    first view (every token and the readout), and -> its chart with the HAM curve.

    python bench/cold_start_bench.py [--preset NAME] [--tokens 1024] [--repeats 1] [--threads N]
                                     [--script server.py] [--open-after SECONDS]
    python bench/cold_start_bench.py --floor [--repeats 3]

The floor is the same path for a page with nothing of HAM Lab in it (a title and one small
plotly chart, no model, no torch): the part of the cold start that Streamlit, plotly and the
browser take on this machine whatever the app does, measured in the same run so that both
figures see the same load. The target: the preset's full view within 1.0 s of the floor.
--floor times the floor alone.
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
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from app_bench import readout, text_of  # noqa: E402

LIMIT = 600.0          # seconds before a measurement gives up
OVER_FLOOR = 1.0       # target: a preset's full view at most this long after the floor's chart
SCRIPT = "server.py"          # the README's command


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1500,2400"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@contextmanager
def app_server(env: dict, script: str):
    """Start the app; yields (url, t0, pid) with t0 the moment the process was started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / script),
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("the app did not start")
                time.sleep(0.05)
        yield url, t0, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants so far, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            pass
    return total


def quietly(condition):
    """A condition that counts a page changing under it (a stale element) as not yet."""
    def check() -> bool:
        try:
            return condition()
        except WebDriverException:
            return False
    return check


def wait_for(what: str, condition, t0: float) -> float:
    """Seconds from t0 until condition() holds (polled every 50 ms)."""
    condition = quietly(condition)
    while not condition():
        if time.perf_counter() - t0 > LIMIT:
            raise SystemExit(f"gave up waiting for {what} after {LIMIT:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - t0


def n_tokens(d, view: str = "ham-view") -> int:
    return d.execute_script(f"const v = document.getElementById('{view}'); return v ? v.children.length : 0;")


def chart_has(d, *names: str) -> bool:
    """Whether a chart with these trace names is drawn. When the page says the cache makes no
    measurable difference on the text, the chart waits in a closed expander: open it."""
    for summary in d.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"] summary'):
        if "measurements anyway" in summary.text and not summary.find_element(By.XPATH, "..").get_attribute("open"):
            d.execute_script("arguments[0].click();", summary)
    return any(all(n in c.text for n in names) for c in d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))


def preset_and_paste(env: dict, script: str, preset: str, expected: int, paste: str, paste_tokens: int,
                     open_after: float = 0.0) -> dict:
    d = chromium()
    try:
        with app_server(env, script) as (url, t0, pid):
            out = {"server": time.perf_counter() - t0}
            browser = d.service.process.pid
            if open_after:                      # the page is opened this long after the server answers
                time.sleep(open_after)
                t0 = time.perf_counter()
            d.get(f"{url}/?preset={urllib.parse.quote(preset)}")
            out["view"] = wait_for("the preset's token view", lambda: n_tokens(d) >= expected and readout(d), t0)
            out["chart"] = wait_for("the HAM curve", lambda: chart_has(d, "HAM surprise"), t0)

            def policies() -> bool:
                for b in d.find_elements(By.CSS_SELECTOR, ".st-key-w_compare button"):   # when they wait for a click
                    b.click()
                    out["clicked"] = 1.0
                return chart_has(d, "HAM surprise", "recent window", "HOLA residual")

            out["policies"] = wait_for("the other policies in the chart", policies, t0)
            out["cpu_server_view"], out["cpu_browser_view"] = cpu_seconds(pid), cpu_seconds(browser)
            # Paste: set the text area's value as typing would (React listens for input events),
            # then submit with Ctrl+Enter, which starts the clock.
            area = d.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea')
            d.execute_script("const set = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set;"
                             "set.call(arguments[0], arguments[1]);"
                             "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", area, paste)
            area.send_keys(Keys.END)
            out["cpu_server_start"], out["cpu_browser_start"] = cpu_seconds(pid), cpu_seconds(browser)
            t1 = time.perf_counter()
            c_server, c_browser = cpu_seconds(pid), cpu_seconds(browser)
            area.send_keys(Keys.CONTROL, Keys.ENTER)
            out["paste_view"] = wait_for("the pasted text's view", lambda: n_tokens(d) >= paste_tokens - 8
                                         and readout(d), t1)
            out["paste_chart"] = wait_for("the pasted text's chart", lambda: n_tokens(d) >= paste_tokens - 8
                                          and chart_has(d, "HAM surprise") and not d.find_elements(
                                              By.CSS_SELECTOR, '[data-testid="stProgress"]'), t1)
            out["cpu_server_paste"] = cpu_seconds(pid) - c_server
            out["cpu_browser_paste"] = cpu_seconds(browser) - c_browser
        return out
    finally:
        d.quit()


def recall_first_view(env: dict, script: str) -> dict:
    d = chromium()
    try:
        with app_server(env, script) as (url, t0, _):
            d.get(f"{url}/recall")

            def shown() -> bool:
                return n_tokens(d, "recall-view") > 16 and any(
                    "keys cached" in m.text for m in d.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'))

            return {"recall": wait_for("the recall lab's view", shown, t0)}
    finally:
        d.quit()


FLOOR_PAGE = """import streamlit as st
import plotly.graph_objects as go
st.title("floor")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name="HAM surprise", showlegend=True)))
"""


def floor(env: dict) -> dict:
    """Process start -> a bare Streamlit page with one plotly chart drawn."""
    page = Path(tempfile.mkdtemp()) / "floor.py"
    page.write_text(FLOOR_PAGE)
    d = chromium()
    try:
        with app_server(env, str(page)) as (url, t0, pid):
            out = {"server": time.perf_counter() - t0}
            d.get(url)
            out["floor_chart"] = wait_for("the floor page's chart", lambda: chart_has(d, "HAM surprise"), t0)
            out["cpu_server"], out["cpu_browser"] = cpu_seconds(pid), cpu_seconds(d.service.process.pid)
        return out
    finally:
        d.quit()


def main() -> None:
    from app.settings.presets import DEFAULT_PRESET, PRESETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "assets" / "lm"))
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))
    p.add_argument("--tokens", type=int, default=1024, help="length of the pasted text")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="HAM_LAB_THREADS (0: torch's default)")
    p.add_argument("--script", default=SCRIPT, help="the app script under app/ that `streamlit run` starts")
    p.add_argument("--open-after", type=float, default=0.0,
                   help="open the page this many seconds after the server answers, and time from then")
    p.add_argument("--floor", action="store_true", help="time a bare Streamlit page with one chart instead")
    args = p.parse_args()
    if args.floor:
        runs = [floor(dict(os.environ)) for _ in range(args.repeats)]
        for r in runs:
            print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in r.items()), flush=True)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"bare page with one plotly chart, median of {len(runs)}, load average {os.getloadavg()[0]:.1f}: "
              f"server up {med['server']:.1f} s, chart drawn {med['floor_chart']:.1f} s after process start "
              f"(CPU: server {med['cpu_server']:.1f} s, browser {med['cpu_browser']:.1f} s)")
        return
    from ham_core.model.tokenizer import HAMTokenizer

    model_dir = Path(args.model)
    tok = HAMTokenizer.from_file(model_dir / "tokenizer.json")
    expected = len(tok.encode(PRESETS[args.preset]))
    paste = text_of(args.tokens, model_dir)
    paste = paste[: tok.tokenize(paste)[args.tokens - 1].end]     # exactly --tokens tokens
    env = dict(os.environ, HAM_LAB_MODEL=str(model_dir), HAM_LAB_MAX_TOKENS=str(max(args.tokens, 1024)),
               HAM_LAB_TEXT_STORE=tempfile.mkdtemp())
    if args.threads:
        env["HAM_LAB_THREADS"] = str(args.threads)
    runs = []
    for _ in range(args.repeats):
        bare = floor(dict(os.environ))
        r = {"floor": bare["floor_chart"], "cpu_server_floor": bare["cpu_server"], "cpu_browser_floor": bare["cpu_browser"]}
        r.update(preset_and_paste(env, args.script, args.preset, expected, paste, args.tokens, args.open_after))
        r.update(recall_first_view(env, args.script))
        r["over_floor"] = r["policies"] - r["floor"]
        runs.append(r)
        print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in r.items()), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"model {model_dir}, threads {args.threads or 'default'}, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores, median of {len(runs)}")
    start = f"opening the page {args.open_after:g} s after the server answered" if args.open_after else "process start"
    print(f"preset {args.preset!r} ({expected} tokens): server up {med['server']:.1f} s; from {start} to "
          f"token view + readout {med['view']:.1f} s, HAM curve {med['chart']:.1f} s, other policies (full view) "
          f"{med['policies']:.1f} s")
    over = med["over_floor"]
    print(f"floor (a bare Streamlit page with one plotly chart, same run): chart {med['floor']:.1f} s after process "
          f"start; the preset's full view {med['policies']:.1f} s, {over:+.1f} s over the floor (median of the runs' "
          f"differences) "
          f"(target <= {OVER_FLOOR:+.1f} s: {'met' if over <= OVER_FLOOR else 'missed'})")
    print(f"CPU time from process start to that chart: server {med['cpu_server_view']:.1f} s (floor "
          f"{med['cpu_server_floor']:.1f} s), browser {med['cpu_browser_view']:.1f} s (floor {med['cpu_browser_floor']:.1f} s)")
    print(f"recall lab, fresh process to its first view: {med['recall']:.1f} s (target <= 5 s)")
    print(f"pasted text of {args.tokens} tokens in the running app: first view {med['paste_view']:.1f} s "
          f"(target <= 2 s), chart {med['paste_chart']:.1f} s (target <= 8 s)")
    print(f"CPU time (a stand-in for an idle machine): server {med['cpu_server_start']:.1f} s and browser "
          f"{med['cpu_browser_start']:.1f} s from process start to the preset's full view and the paste (process "
          f"start and page load included); paste to its chart: server {med['cpu_server_paste']:.1f} s, browser "
          f"{med['cpu_browser_paste']:.1f} s")


if __name__ == "__main__":
    main()
