"""Which selection rule recovers the most of the no-cache / full-cache gap at equal memory?

    python -m ham_core heldout --corpus runs/corpus_tech --out runs/heldout   # held-out texts
    python bench/selection_probe.py --texts runs/heldout [--model DIR] [--fractions 0.1,0.25,0.5]

For a model and a folder of .txt files (each read up to --tokens tokens): the share of each
text's gap that every row of ham_core.analysis.selection recovers, every layer keeping the same
W = f x T keys; the mean and standard error over texts; HAM's lead over the best of random,
window and sinks (paired over texts); per layer, how many of the keys the attention reads most
the model's own rule also keeps; and the same by kind of text (files named <kind>-<nn>.txt).
A policy the model never trained with is marked so (read from the run's train_state.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ham_core.analysis import selection                                # noqa: E402
from ham_core.cli.common import numbers                                # noqa: E402
from ham_core.model.checkpoint import load_bundle                      # noqa: E402


def trained_with(model_dir: Path) -> str:
    """What the model's training routed with, as far as its run folder says."""
    state = model_dir / "train_state.json"
    if not state.is_file():
        return "unknown (no train_state.json beside the model)"
    s = json.loads(state.read_text())["settings"]
    share = s.get("policy_share", 0.0)
    return (f"HAM routing only: random, window, sinks and hola never seen in training" if share == 0
            else f"HAM routing and, in {share:.0%} of batches, random / window / sinks / hola")


def pct(mean_se) -> str:
    m, se = mean_se
    return f"{m:6.0%} ± {se:.0%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=Path, required=True, help="folder of .txt files")
    p.add_argument("--model", type=Path, default=ROOT / "assets" / "lm")
    p.add_argument("--fractions", default="0.1,0.25,0.5")
    p.add_argument("--tokens", type=int, default=1024, help="longest text read (default 1024)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print every text's losses as JSON instead")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    fractions = numbers(args.fractions, "--fractions")
    model, tok = load_bundle(args.model)
    files = sorted(args.texts.glob("*.txt"))
    if not files:
        raise SystemExit(f"error: no .txt files in {args.texts}")
    probes = []
    for path in files:
        ids = torch.tensor([tok.encode(path.read_text(encoding="utf-8"))[: min(args.tokens, model.cfg.max_tokens)]])
        if ids.shape[1] < 64:
            continue
        probes.append(selection.probe_text(model, ids, fractions, path.stem))
        pr = probes[-1]
        if not args.json:
            print(f"{pr.name:14s} T={pr.tokens:5d} gap {pr.gap:.3f} | " + " ".join(
                f"{row}@{f:g} {pr.share(row, f):.0%}" for f in fractions for row in ("threshold", "max", "window")),
                file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps([vars(pr) for pr in probes], indent=1))
        return
    rule = model.cfg.head_rule
    print(f"model {args.model} (heads combine by {rule}); {len(probes)} texts from {args.texts}, "
          f"at most {args.tokens} tokens each; training: {trained_with(args.model)}\n")
    gaps = selection.mean_se([pr.gap for pr in probes])
    kept = selection.worth(probes)
    print(f"no cache - full cache: {gaps[0]:.3f} ± {gaps[1]:.3f} nats/token; shares are averaged over the "
          f"{len(kept)} texts whose gap is >= {selection.MIN_GAP} (pooled: every text, weighted by its gap)\n")
    table = selection.summary(probes, fractions)
    print("| rule (share of the gap: mean ± SE over texts; pooled) | " + " | ".join(f"f = {f:g}" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for row in selection.ROWS:
        label = row + (" (the model's own rule)" if row == rule else "") + (
            " (uses the future)" if row == "read-most" else "") + (
            " (HAM's per-layer memory)" if row.endswith("@tau") else "")
        print(f"| {label} | " + " | ".join(f"{pct(table[row][f])}; {selection.pooled(probes, row, f):.0%}"
                                            for f in fractions) + " |")
    print("\nthreshold row's mean cache share: " + ", ".join(
        f"{sum(pr.memory[f] for pr in probes) / len(probes):.1%} at f = {f:g}" for f in fractions))
    print("\n| lead over the best of random / window / sinks (paired) | " + " | ".join(f"f = {f:g}" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for row, at_tau in (("threshold", True), ("threshold", False), (rule, False)):
        cells = []
        for f in fractions:
            other = selection.best_other(probes, f, at_tau)
            m, se = selection.lead_over(probes, row, other, f)
            cells.append(f"{m:+.0%} ± {se:.0%} vs {other}")
        print(f"| {row}{' (rivals at its per-layer memory)' if at_tau else ''} | " + " | ".join(cells) + " |")
    L = len(probes[0].overlap[fractions[0]])
    print("\n| overlap of the model's rule with read-most's keys, per layer (chance = f) | "
          + " | ".join(f"f = {f:g}" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for layer in range(L):
        print(f"| layer {layer + 1} | " + " | ".join(
            f"{sum(pr.overlap[f][layer] for pr in probes) / len(probes):.0%}" for f in fractions) + " |")
    kinds = sorted({pr.name.split("-")[0] for pr in probes})
    kind_rows = ("threshold", "window@tau", "sinks@tau", rule, "random", "window", "sinks", "read-most")
    f = 0.25 if 0.25 in fractions else fractions[0]
    print(f"\n| kind (texts) at f = {f:g} | gap | " + " | ".join(kind_rows) + " |")
    print("|---|---|" + "---|" * len(kind_rows))
    for kind in kinds:
        group = [pr for pr in kept if pr.name.split("-")[0] == kind]
        if not group:
            continue
        sub = selection.summary(group, [f])
        g = sum(pr.gap for pr in group) / len(group)
        print(f"| {kind} ({len(group)}) | {g:.3f} | " + " | ".join(
            f"{sub[row][f][0]:.0%}" for row in kind_rows) + " |")


if __name__ == "__main__":
    main()
