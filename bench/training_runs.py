"""Print the comparison table of training runs from their run folders (docs/TRAINING.md).

    python bench/training_runs.py runs/seeds/s0 runs/seeds/s1 runs/seeds/s2
    python bench/training_runs.py runs/lm3 --every 500     # one run's health over time

Per run: when the copy phase passed (the copy probe's second reading, full cache, at most the
run's copy_until), the probe at that point, and at the last attention-health line: the copy probe
with a full cache / none, each layer's mean attention gate (most open head) and top read weight,
and the last validation loss with a full cache / none. Reads train_state.json only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _health_cells(h: dict) -> list:
    """Copy probe full / none, each layer's gate (most open head), each layer's top read."""
    return [f"{h['copy_full']:.2f} / {h['copy_none']:.2f}",
            " · ".join(f"{l['attn_gate']:.2f} ({l['attn_gate_max']:.2f})" for l in h["layers"]),
            " · ".join(f"{l['top_read']:.2f}" for l in h["layers"])]


def _row(run: Path) -> str:
    state = json.loads((run / "train_state.json").read_text())
    log, settings = state["log"], state["settings"]
    health = [e for e in log if "health" in e]
    valid = [e for e in log if "valid_full" in e]
    passed = state.get("copy_passed_at")
    at_pass = next((e["health"] for e in health if e["step"] == passed), None)
    last = health[-1] if health else None
    cells = [run.name, str(settings.get("seed")), f"{state['step']:,}",
             "not yet" if passed is None else f"{passed:,}",
             "-" if at_pass is None else f"{at_pass['copy_full']:.2f} / {at_pass['copy_none']:.2f}"]
    if last:
        cells += [f"{last['step']:,} ({last['phase']})", *_health_cells(last["health"])]
    else:
        cells += ["-"] * 4
    cells.append(f"{valid[-1]['valid_full']:.3f} / {valid[-1]['valid_rnn']:.3f} @{valid[-1]['step']:,}" if valid else "-")
    return "| " + " | ".join(cells) + " |"


def _trajectory(run: Path, every: int) -> None:
    """One row per health line every `every` steps (and the last): where gates and lookups go."""
    state = json.loads((run / "train_state.json").read_text())
    valid = {e["step"]: e for e in state["log"] if "valid_full" in e}
    health = [e for e in state["log"] if "health" in e]
    print(f"{run}: health every {every} steps (copy phase passed at {state.get('copy_passed_at')})\n")
    print("| step | phase | copy probe, full / none | attention gate per layer (most open head) | "
          "top read per layer | valid loss full / none |")
    print("|" + "---|" * 6)
    for e in health:
        if e["step"] % every and e is not health[-1]:
            continue
        v = valid.get(e["step"])
        cells = [f"{e['step']:,}", e["phase"], *_health_cells(e["health"]),
                 f"{v['valid_full']:.3f} / {v['valid_rnn']:.3f}" if v else ""]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each holds train_state.json)")
    parser.add_argument("--every", type=int, default=0,
                        help="instead of the comparison: each run's health line every this many steps")
    args = parser.parse_args()
    if args.every:
        for run in args.runs:
            _trajectory(run, args.every)
        return
    print("| run | seed | steps | copy phase passed at | copy probe then, full / none | last health line | "
          "copy probe, full / none | attention gate per layer (most open head) | top read per layer | "
          "valid loss full / none |")
    print("|" + "---|" * 10)
    for run in args.runs:
        print(_row(run))


if __name__ == "__main__":
    main()
