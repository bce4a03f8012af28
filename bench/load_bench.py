"""Load benchmark of the app (not a test): a classroom of sessions on one server, over
Streamlit's own websocket protocol, on 127.0.0.1.

Starts the app as the README does (`streamlit run app/server.py`) on a free port and opens N
sessions at once, each a
websocket client speaking Streamlit's protobuf messages (BackMsg / ForwardMsg), as a browser tab
does. Two runs, each on a fresh server:

  own:   every session opens the app, then pastes a text of its own (a widget change, as typing
         does): thirty students, thirty texts. Every session must get its full view (the KV
         readout, the token view and the memory-vs-quality chart), with no error, and no session
         may ever receive another session's text (each own text carries a marker word).
  mixed: the same, but half the sessions open one preset by its link instead.
  same:  every session opens the same preset: the server must run its threshold sweep once,
         whatever the number of sessions (forwards counted from the server's own log).

The presets' sweeps shipped in assets/precomputed are turned off (HAM_LAB_PRECOMPUTED points at
an empty folder) so that the sweeps are computed and counted; --precomputed keeps them.

Reported per run: sessions with their full view, errors, cross-session texts, the server's peak
RSS (VmHWM), the CPU seconds the server used (all of it, and its main thread's: the event
loop that sends every message), the machine's load average at the start and end, the time from
asking for a text to its first view (readout + token view), to the full view (the chart drawn with its HAM curve, in whichever message it comes) and to the chart
with the other policies on it, each as median, p90 and max, and the forwards the server ran.
Bounded: N sessions, a deadline per run; the server is stopped in any case.

    python bench/load_bench.py [--sessions 30] [--deadline 900] [--threads 1] [--runs own,mixed,same] [--precomputed]
    python bench/load_bench.py --runs own --sessions 1 --repeat 3    # one pasted 1,024-token text
"""
from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POLICIES_WAIT = 120        # seconds a session waits, after its chart, for the other policies on it
READOUT = ("KV cache", "of a full cache", "RNN state", "loss")     # label prefixes of the KV readout


def has_readout(labels: set) -> bool:
    return all(any(label.startswith(p) for label in labels) for p in READOUT)


def serve(port: int) -> None:
    """The server process: the app, with the shared store's log lines (one per computation) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logger = logging.getLogger("ham_lab")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "app" / "server.py"), "--server.port", str(port),
                "--server.address", "127.0.0.1", "--server.headless", "true"]
    cli.main()


@dataclass
class Session:
    index: int
    query: str                    # the link it opens
    own_text: str = ""            # "" for a preset session
    marker: str = ""
    started: float = 0.0
    asked: float = 0.0            # when the text it waits for was asked for
    first_view: float = -1.0      # readout and token view of that text drawn (s after asked)
    full_view: float = -1.0       # ... and the chart with its HAM curve
    policies_view: float = -1.0   # ... and the chart with the other policies on it
    errors: list = field(default_factory=list)
    seen_text: str = ""           # what its token view showed last
    received: bytearray = field(default_factory=bytearray)
    ws: object = None             # its websocket, while open


def _view_text(view_html: str) -> str:
    """The text of a token view's HTML (tokens joined, the visible marks removed)."""
    text = html.unescape(re.sub(r"<sup[^>]*>.*?</sup>|<[^>]+>", "", view_html))
    return text.replace("\u21b5", "").replace("\u25e6", "").replace("\u2192", "")


async def run_session(s: Session, port: int, deadline: float) -> None:
    """One browser tab: open the link, paste its own text if it has one, wait for the chart."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    widgets: list = []                 # what the page's widgets hold, sent with every rerun

    def rerun(fragment: str = "") -> bytes:
        msg = BackMsg()
        msg.rerun_script.query_string = s.query
        msg.rerun_script.page_script_hash = ""
        if fragment:                                   # a fragment's own rerun, as a browser timer sends it
            msg.rerun_script.fragment_id, msg.rerun_script.is_auto_rerun = fragment, True
        for wid, value in widgets:
            w = msg.rerun_script.widget_states.widgets.add()
            w.id, w.string_value = wid, value
        return msg.SerializeToString()

    timers: dict = {}                  # fragment id -> (interval, task): the page's polling parts

    async def poll(fragment: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await s.ws.send(rerun(fragment))

    try:
        await _session(s, port, deadline, rerun, widgets, timers, poll)
    finally:
        for _, task in timers.values():
            task.cancel()


async def _session(s: Session, port: int, deadline: float, rerun, widgets: list, timers: dict, poll) -> None:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect


    s.started = s.asked = time.perf_counter()
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                       origin=f"http://127.0.0.1:{port}", max_size=None, open_timeout=120) as ws:
        s.ws = ws
        await ws.send(rerun())
        text_area, waiting_for_own = None, bool(s.own_text)
        metrics, has_view, has_chart = set(), False, False
        while True:
            left = deadline - time.time()
            if left <= 0:
                if s.full_view < 0:
                    s.errors.append("deadline reached before the full view")
                return
            if s.full_view >= 0 and time.perf_counter() - s.asked - s.full_view > POLICIES_WAIT:
                return                                         # the chart came; its policies did not
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=left if s.full_view < 0 else min(left, 2.5))
            except asyncio.TimeoutError:
                if s.full_view >= 0:
                    return                                     # the page went quiet without the policies
                raise
            s.received += raw
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "auto_rerun":                           # the browser's fragment timers
                fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
                if fid not in timers or timers[fid][0] != interval:
                    if fid in timers:
                        timers[fid][1].cancel()
                    timers[fid] = (interval, asyncio.create_task(poll(fid, interval)))
            elif kind == "stop_auto_rerun":
                for fid in msg.stop_auto_rerun.fragment_ids:
                    if fid in timers:
                        timers.pop(fid)[1].cancel()
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                what = el.WhichOneof("type")
                if what == "text_area":
                    text_area = el.text_area.id
                elif what == "metric":
                    metrics.add(el.metric.label)
                elif what == "bidi_component" and el.bidi_component.json:
                    data = json.loads(el.bidi_component.json)
                    if isinstance(data, str) and data.startswith("{"):
                        data = json.loads(data)         # the token view's data is one JSON text
                    view = data.get("html", "") if isinstance(data, dict) else data
                    if isinstance(view, str) and "ham-view" in view:
                        s.seen_text = _view_text(view)
                        has_view = not s.marker or s.marker in s.seen_text
                elif what == "plotly_chart" and has_view and not waiting_for_own:
                    has_chart = True
                    if s.policies_view < 0 and "recent window" in el.plotly_chart.spec:
                        s.policies_view = time.perf_counter() - s.asked
                elif what == "exception":
                    s.errors.append(f"exception: {el.exception.type}: {el.exception.message[:120]}")
                elif what == "alert" and el.alert.format == 1:          # st.error
                    s.errors.append(f"error box: {el.alert.body[:120]}")
                if not waiting_for_own and has_view and has_readout(metrics):
                    if s.first_view < 0:
                        s.first_view = time.perf_counter() - s.asked
                    if has_chart and s.full_view < 0:
                        s.full_view = time.perf_counter() - s.asked
            elif kind == "script_finished":
                if msg.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY or not waiting_for_own:
                    continue                  # a rerun cut this run short, or a part of the page redrawn
                if text_area is None:         # the app is open: now paste the session's text
                    s.errors.append("no text box in the first view")
                    return
                waiting_for_own = False
                metrics, has_view, has_chart = set(), False, False
                s.asked = time.perf_counter()
                widgets.append((text_area, s.own_text))
                await ws.send(rerun())
            if s.policies_view >= 0:
                return


def own_texts(n: int, repeat: int = 1) -> list[tuple[str, str]]:
    """n different texts of a few hundred tokens (`repeat` times that), each with a marker word
    no other text has."""
    from app.settings.presets import PRESETS

    parts = list(PRESETS.values())
    out = []
    for i in range(n):
        marker = f"Zephyrine{i:02d}x{(i * 7919) % 1000:03d}"
        body = (parts[i % len(parts)] + parts[(i + 3) % len(parts)]) * repeat
        out.append((marker, f"Session note by {marker}. " + body + f"\nSigned, {marker}.\n"))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int, thread: int = 0) -> float:
    """CPU seconds (user + system) the process (or one of its threads) has used so far: the
    server's work under the load, whatever else the machine runs."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    """The app (serve() in a child process) on 127.0.0.1:port, once it answers its health check."""
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(port)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"the server did not start; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def spread(name: str, times: list) -> dict:
    """Median, p90 (nearest rank) and max of some times, in seconds (None when there are none)."""
    ordered = sorted(times)
    p90 = ordered[max(0, -(-9 * len(ordered) // 10) - 1)] if ordered else None
    return {f"{name}_{what}_s": None if value is None else round(value, 2) for what, value in
            (("median", statistics.median(ordered) if ordered else None), ("p90", p90),
             ("max", ordered[-1] if ordered else None))}


def one_run(name: str, n: int, preset: str, deadline_s: float, threads: int, precomputed: bool,
            repeat: int = 1) -> dict:
    port = free_port()
    store = tempfile.mkdtemp(prefix="ham_lab_texts_")
    log_path = Path(tempfile.mkdtemp(prefix="ham_lab_bench_")) / "server.log"
    env = dict(os.environ, HAM_LAB_TEXT_STORE=store, PYTHONPATH=str(ROOT))
    if not precomputed:
        env["HAM_LAB_PRECOMPUTED"] = tempfile.mkdtemp(prefix="ham_lab_no_precomputed_")
    if threads:
        env["HAM_LAB_THREADS"] = str(threads)
    server = start_server(port, env, log_path)
    cpu_at_start, loop_at_start = cpu_s(server.pid), cpu_s(server.pid, server.pid)     # after the model's load
    load = [os.getloadavg()[0]]
    try:
        link = "preset=" + urllib.parse.quote(preset)
        texts = own_texts({"own": n, "mixed": n // 2}.get(name, 0), repeat)
        sessions = [Session(i, link) for i in range(n - len(texts))]
        sessions += [Session(len(sessions) + j, "", text, marker) for j, (marker, text) in enumerate(texts)]
        deadline = time.time() + deadline_s
        wall = time.perf_counter()

        async def all_sessions():
            return await asyncio.gather(*(run_session(s, port, deadline) for s in sessions), return_exceptions=True)

        outcomes = asyncio.run(all_sessions())
        load.append(os.getloadavg()[0])
        wall = time.perf_counter() - wall
        for s, outcome in zip(sessions, outcomes):
            if isinstance(outcome, BaseException):
                s.errors.append(f"{type(outcome).__name__}: {outcome}")
        peak = peak_rss_mb(server.pid)
        cpu, loop_cpu = cpu_s(server.pid) - cpu_at_start, cpu_s(server.pid, server.pid) - loop_at_start
    finally:
        stop_server(server)
    log_text = log_path.read_text(errors="replace")
    computed = {kind: len(re.findall(rf"computed {kind} ", log_text)) for kind in ("text", "result", "context", "steps", "reads", "policy_at")}
    markers = [s.marker for s in sessions if s.marker]
    leaks = 0
    for s in sessions:
        others = [m for m in markers if m != s.marker]
        blob = bytes(s.received)
        leaks += sum(1 for m in others if m.encode() in blob or m in s.seen_text)
        if s.own_text and s.marker not in s.seen_text:
            s.errors.append("its own text is not in its token view")
    firsts = [s.first_view for s in sessions if s.first_view >= 0]
    fulls = [s.full_view for s in sessions if s.full_view >= 0 and not s.errors]
    policies = [s.policies_view for s in sessions if s.policies_view >= 0 and not s.errors]
    return {
        "run": name, "sessions": n, "own_text_sessions": len(texts), "preset": preset,
        "full_views": sum(1 for s in sessions if s.full_view >= 0 and not s.errors),
        "errors": sum(len(s.errors) for s in sessions), "error_examples": [e for s in sessions for e in s.errors][:5],
        "cross_session_texts": leaks, "peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1),
        **spread("first_view", firsts), **spread("full_view", fulls), **spread("policies_view", policies),
        "server_cpu_s": round(cpu, 1), "event_loop_cpu_s": round(loop_cpu, 1),
        "load_average": f"{min(load):.1f}-{max(load):.1f}",
        "forwards": computed["result"] + computed["context"] + computed["steps"], "computed": computed,
        "server_tracebacks": log_text.count("Traceback"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--deadline", type=float, default=900, help="seconds each run may take before it is stopped")
    p.add_argument("--threads", type=int, default=1, help="HAM_LAB_THREADS of the server (0: torch's default)")
    p.add_argument("--preset", default="Story with a rare name")
    p.add_argument("--runs", default="own,mixed,same")
    p.add_argument("--precomputed", action="store_true", help="keep the presets' shipped sweeps")
    p.add_argument("--repeat", type=int, default=1,
                   help="each own text's body this many times (3: past the 1,024-token limit)")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    for name in args.runs.split(","):
        report = one_run(name, args.sessions, args.preset, args.deadline, args.threads, args.precomputed, args.repeat)
        print(json.dumps(report, indent=1), flush=True)


if __name__ == "__main__":
    main()
