"""Load benchmark of the "Learning to look up" page (not a test): a class pressing Start at once.

Starts the app (load_bench's server, on 127.0.0.1) and opens N sessions on /lookups over
Streamlit's websocket protocol; each presses Start, then keeps polling as the page does. While
they train, one more session opens the Read page's default preset, and its time to the full view
is compared with the same on an idle server (load_bench's own session). Reported: how many
sessions trained live and how many waited in the queue (the page's own words), errors, the
bystander's full-view time idle and under the class, and the server's peak RSS.

    python bench/lookups_load_bench.py [--sessions 8] [--limit 1] [--watch 25]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_bench import ROOT, Session, free_port, peak_rss_mb, run_session, start_server, stop_server  # noqa: E402

LIVE, QUEUED = "Showing your live training", "Waiting for a place"


async def student(port: int, watch_s: float) -> dict:
    """Open /lookups, press Start, watch for watch_s seconds: what the page said, and errors."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    seen = {"live": False, "queued": False, "errors": []}
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                       origin=f"http://127.0.0.1:{port}", max_size=None, open_timeout=120) as ws:
        first = BackMsg()
        first.rerun_script.query_string = ""
        first.rerun_script.page_name = "lookups"
        await ws.send(first.SerializeToString())
        start_id, pressed, page_hash = None, False, ""
        end = time.time() + watch_s + 120
        while time.time() < end:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, end - time.time()))
            except asyncio.TimeoutError:
                break
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "navigation":                          # st.navigation names the page shown
                page_hash = msg.navigation.page_script_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                what = el.WhichOneof("type")
                if what == "button" and "w_lab_start" in el.button.id:
                    start_id = el.button.id
                elif what == "alert":
                    seen["live"] |= LIVE in el.alert.body
                    seen["queued"] |= QUEUED in el.alert.body
                    if el.alert.format == 1:
                        seen["errors"].append(el.alert.body[:120])
                elif what == "exception":
                    seen["errors"].append(el.exception.message[:120])
            elif kind == "script_finished" and start_id and not pressed:
                pressed, end = True, time.time() + watch_s
                click = BackMsg()
                click.rerun_script.page_script_hash = page_hash
                click.rerun_script.page_name = "lookups"
                w = click.rerun_script.widget_states.widgets.add()
                w.id, w.trigger_value = start_id, True
                await ws.send(click.SerializeToString())
        if not pressed:
            seen["errors"].append("no Start button")
    return seen


def bystander(port: int) -> float:
    s = Session(0, "preset=" + "Story%20with%20a%20rare%20name")
    asyncio.run(run_session(s, port, time.time() + 300))
    return s.full_view if not s.errors else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--limit", type=int, default=1, help="HAM_LAB_LIVE_TRAININGS of the server")
    p.add_argument("--watch", type=float, default=25, help="seconds each student watches after Start")
    args = p.parse_args()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HAM_LAB_THREADS="1", HAM_LAB_LIVE_TRAININGS=str(args.limit),
               HAM_LAB_TEXT_STORE=tempfile.mkdtemp(prefix="ham_lab_texts_"))
    log_path = Path(tempfile.mkdtemp(prefix="ham_lab_bench_")) / "server.log"
    server = start_server(port, env, log_path)
    try:
        bystander(port)                                     # warm: the model and the preset's result
        idle = bystander(port)

        async def class_and_bystander():
            students = [asyncio.create_task(student(port, args.watch)) for _ in range(args.sessions)]
            await asyncio.sleep(8)                           # the class has pressed Start
            busy = await asyncio.to_thread(bystander, port)
            return await asyncio.gather(*students), busy

        wall = time.perf_counter()
        outcomes, busy = asyncio.run(class_and_bystander())
        wall = time.perf_counter() - wall
        peak = peak_rss_mb(server.pid)
    finally:
        stop_server(server)
    print(json.dumps({
        "sessions": args.sessions, "live_limit": args.limit,
        "trained_live": sum(o["live"] for o in outcomes), "queued_first": sum(o["queued"] for o in outcomes),
        "errors": sum(len(o["errors"]) for o in outcomes),
        "error_examples": [e for o in outcomes for e in o["errors"]][:3],
        "bystander_full_view_idle_s": round(idle, 2), "bystander_full_view_during_class_s": round(busy, 2),
        "peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1),
        "server_tracebacks": log_path.read_text(errors="replace").count("Traceback"), "server_log": str(log_path)},
        indent=1))


if __name__ == "__main__":
    main()
