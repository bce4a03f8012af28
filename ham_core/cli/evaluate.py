"""`ham evaluate`: the tables of assets/MODEL_CARD.md (held-out loss, recall accuracy), reproducible by anyone."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ham_core.analysis.evaluate import RECALL_EVAL_SEEDS, SLICE_FILE, heldout_windows, lm_table, recall_table, slice_loss
from ham_core.analysis.thresholds import DEFAULT_FRACTIONS
from ham_core.model.checkpoint import default_model_dir, default_recall_dir, load_bundle
from ham_core.model.policies import COMPARED
from ham_core.progress import Progress

from .common import dump_json


def _markdown(rows: List[dict], fractions: Sequence[float], value: str, fmt: str) -> str:
    """One line per policy, one column per target fraction."""
    head = "| policy | " + " | ".join(f"{f:.0%} cache" for f in fractions) + " |"
    lines = [head, "|" + "---|" * (len(fractions) + 1)]
    by_policy: Dict[str, Dict[float, dict]] = defaultdict(dict)
    for r in rows:
        by_policy[r["policy"]][r["target"]] = r
    for policy, cells in by_policy.items():
        lines.append(f"| {policy} | " + " | ".join(fmt.format(**cells[f]) if f in cells else "" for f in fractions) + " |")
    return "\n".join(lines)


def _evaluate(args) -> int:
    fractions = [float(f) for f in args.fractions.split(",")]
    policies = args.policies.split(",")
    model_dir = Path(args.model) if args.model else default_model_dir()
    model, tokenizer = load_bundle(model_dir)
    torch.manual_seed(0)
    report: dict = {"model": str(model_dir), "fractions": fractions}
    report["valid_slice_loss"] = round(slice_loss(model, tokenizer, model_dir), 6)
    windows, source = heldout_windows(tokenizer, model_dir, args.windows, args.length, args.source)
    report["heldout"] = {"source": source, "windows": len(windows), "length": args.length}
    bar = None if args.json else Progress(len(windows), "held-out", unit="window")
    report["lm"] = lm_table(model, windows, fractions, policies, bar)
    if not args.no_recall:
        recall_dir = Path(args.recall_model) if args.recall_model else default_recall_dir()
        report["recall"] = recall_table(recall_dir, fractions, policies)
        report["recall_seeds"] = [RECALL_EVAL_SEEDS.start, RECALL_EVAL_SEEDS.stop - 1]
    if args.json:
        print(dump_json(report, indent=1))
        return 0
    print(f"Fixed validation slice ({SLICE_FILE}), full cache: loss {report['valid_slice_loss']:.6f} nats/token\n")
    print(f"Held-out English, {len(windows)} windows x {args.length} tokens from the {source}:")
    print("loss in nats/token (perplexity), and the KV cache actually used\n")
    print(_markdown(report["lm"], fractions, "loss", "{loss:.4f} ({perplexity:.2f}) @{kv_fraction:.1%}"))
    if "recall" in report:
        seeds = report["recall_seeds"]
        print(f"\nRecall lab, accuracy on seeds {seeds[0]}..{seeds[1]} (not used in training):\n")
        print(_markdown(report["recall"], fractions, "accuracy", "{accuracy:.1%} @{kv_fraction:.1%}"))
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="held-out loss and recall accuracy per policy and cache fraction")
    p.add_argument("--model", help="English model folder (default: assets/lm)")
    p.add_argument("--recall-model", help="recall model folder (default: assets/recall)")
    p.add_argument("--windows", type=int, default=32, help="held-out windows")
    p.add_argument("--length", type=int, default=512, help="tokens per held-out window")
    p.add_argument("--source", help="held-out documents of one corpus only, e.g. brown (continuous prose; "
                                     "nlp-corpus documents are groups of unrelated sentences)")
    p.add_argument("--fractions", default=",".join(str(f) for f in DEFAULT_FRACTIONS))
    p.add_argument("--policies", default=",".join(COMPARED))
    p.add_argument("--no-recall", action="store_true", help="skip the recall table")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_evaluate)
