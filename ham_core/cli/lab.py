"""`ham lookups-lab`: a tiny HAM learns to read its cache on a copying task (ham_core.training.lookups_lab).

    python -m ham_core lookups-lab                       # seed 0, 600 steps, a summary of the jump
    python -m ham_core lookups-lab --seed 3 --json       # [{"step", "loss", "attn_gate"}, ...]
    python -m ham_core lookups-lab --tau 3               # nothing cached: the RNN alone stays on the plateau
    python -m ham_core lookups-lab --record assets/lookups_lab/run.json   # the app's recorded run
"""
from __future__ import annotations

import sys

from ham_core.errors import HAMInputError
from ham_core.progress import Progress
from ham_core.training.lookups_lab import LabSettings, find_jump, save_run, train_lookups

from .common import dump_json


def _gates(gates) -> str:
    return ", ".join(f"{g:.2f}" for g in gates)


def summary(steps, settings: LabSettings) -> str:
    """A few lines: the plateau, the jump (or its absence), the gates and temperatures."""
    first, last = steps[0], steps[-1]
    lines = [f"lookups lab: seed {settings.seed}, {settings.steps} steps, threshold {settings.tau:g}, "
             f"cache share at the end {last.cache_share:.0%}",
             f"second-reading loss: {first.loss:.3f} at step 0, {last.loss:.3f} at step {last.step}"]
    jump = find_jump(steps)
    if jump is None:
        lines.append("no jump: the loss never fell halfway from its plateau (no lookup formed)")
    else:
        lines.append(f"jump at step {jump.step}: loss {jump.loss_before:.3f} at the end of the plateau "
                     f"(step {jump.plateau_end}) -> {jump.loss_after:.3f}")
    lines.append(f"attention gate per head: {_gates(first.attn_gate)} at step 0"
                 + ("" if jump is None else f", {_gates(jump.gate_before)} at step {jump.plateau_end}")
                 + f", {_gates(last.attn_gate)} at the end")
    lines.append(f"temperature per head: {_gates(first.temperature)} at step 0, {_gates(last.temperature)} at the end")
    return "\n".join(lines)


def _lab(args) -> int:
    import torch

    if args.threads < 1:
        raise HAMInputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)     # one thread: the run reproduces from its seed
    settings = LabSettings(seed=args.seed, steps=args.steps, tau=args.tau)
    bar = Progress(settings.steps, "lookups lab", unit="steps")
    steps = []
    for record in train_lookups(settings):
        steps.append(record)
        bar(record.step, note=f"loss {record.loss:.3f} gate {record.mean_gate:.2f}")
    if args.record:
        print(f"recorded run: {save_run(args.record, settings, steps)}", file=sys.stderr)
    if args.json:
        print(dump_json([{"step": s.step, "loss": s.loss, "attn_gate": round(s.mean_gate, 4)} for s in steps]))
    else:
        print(summary(steps, settings))
    return 0


def add_cli(subparsers) -> None:
    defaults = LabSettings()
    p = subparsers.add_parser("lookups-lab", help="watch a tiny HAM learn to read its cache (a copying task, ~15 s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the weights and the batches (default: 0)")
    p.add_argument("--steps", type=int, default=defaults.steps, help=f"optimizer steps (default: {defaults.steps})")
    p.add_argument("--tau", type=float, default=defaults.tau,
                   help="training threshold: 0 caches every token, above 2 nothing (default: 0)")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"step", "loss", "attn_gate"} (the mean gate of the reading layer)')
    p.add_argument("--record", metavar="PATH", default=None, help="also write the whole run (the app's replay format)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.set_defaults(func=_lab)
