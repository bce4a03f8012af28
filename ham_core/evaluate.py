"""`python -m ham_core evaluate`: the tables of assets/MODEL_CARD.md, reproducible by anyone.

- Held-out English: mean loss (nats/token) and perplexity of each selection policy at cache
  fractions 0, 5, 10, 25, 50 and 100%, over fixed windows of the validation split (HAM's
  threshold is found per window to hit each fraction; the other policies keep as many keys).
- The fixed validation slice shipped in assets/lm/valid_slice.txt: full-cache loss, which a
  test reproduces to 1e-4.
- Recall lab: accuracy of each policy at the same fractions, on seeds not used in training.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from .checkpoint import default_model_dir, load_bundle, load_model
from .errors import HAMInputError
from .progress import Progress
from .sweep import COMPARED, DEFAULT_FRACTIONS, fraction_sweep
from .train import evaluate_loss

SLICE_FILE = "valid_slice.txt"
SLICE_LENGTH = 256          # tokens per window of the fixed slice
RECALL_EVAL_SEEDS = range(10_000, 10_016)   # training draws seeds far below these


def slice_windows(tokenizer, text: str, length: int = SLICE_LENGTH) -> torch.Tensor:
    """Non-overlapping windows [N, length] of a text's tokens (the tail that does not fill one is dropped)."""
    ids = torch.tensor(tokenizer.encode(text))
    n = len(ids) // length
    if n == 0:
        raise HAMInputError(f"validation slice has {len(ids)} tokens, fewer than one window of {length}")
    return ids[: n * length].view(n, length)


def slice_loss(model, tokenizer, model_dir: Path) -> float:
    """Full-cache loss on the shipped fixed validation slice."""
    path = Path(model_dir) / SLICE_FILE
    if not path.is_file():
        raise HAMInputError(f"validation slice not found: {path}")
    return evaluate_loss(model, slice_windows(tokenizer, path.read_text(encoding="utf-8")), tau=0.0)


def heldout_windows(tokenizer, model_dir: Path, n_windows: int, length: int,
                    source: Optional[str] = None) -> tuple[torch.Tensor, str]:
    """Validation windows: from the built corpus's valid split if present (only `source`'s
    documents when given, e.g. "brown"), else the shipped slice."""
    from .corpus import default_corpus_dir, load_documents
    from .data import encode_documents, fixed_windows

    try:
        docs = load_documents("valid", default_corpus_dir(), source=source)
        which = f"{source} documents of the " if source else ""
        described = f"{which}corpus valid split ({len(docs)} documents)"
    except HAMInputError:
        if source:
            raise
        docs = [(Path(model_dir) / SLICE_FILE).read_text(encoding="utf-8")]
        described = f"{SLICE_FILE} (corpus not built)"
    return fixed_windows(encode_documents(tokenizer, docs), length, n_windows), described


def lm_table(model, windows: torch.Tensor, fractions: Sequence[float], policies: Sequence[str],
             progress: Optional[Progress] = None) -> List[dict]:
    """Mean over windows of each (policy, target fraction): kv_fraction and loss; policy-major."""
    sums: Dict[tuple, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for i, ids in enumerate(windows):
        rows = fraction_sweep(model, ids, fractions, policies)   # policy-major, fraction order
        for k, row in enumerate(rows):
            acc = sums[(row.policy, fractions[k % len(fractions)])]
            acc[0] += row.kv_fraction
            acc[1] += row.loss
        if progress:
            progress(i + 1)
    n = len(windows)
    return [{"policy": p, "target": f, "kv_fraction": kv / n, "loss": loss / n,
             "perplexity": math.exp(loss / n)} for (p, f), (kv, loss) in sums.items()]


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


def recall_table(recall_dir: Path, fractions: Sequence[float], policies: Sequence[str]) -> List[dict]:
    from .recall import load_task, recall_accuracy

    model = load_model(recall_dir)
    task = load_task(recall_dir)
    rows = recall_accuracy(model, policies=policies, fractions=list(fractions),
                           n_pairs=task["n_pairs"], length=task["length"], seeds=RECALL_EVAL_SEEDS)
    return [{"policy": r.policy, "target": r.target, "kv_fraction": r.kv_fraction,
             "accuracy": r.accuracy} for r in rows if r.target is not None]


def _cli(args) -> int:
    from .recall import default_recall_dir

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
        print(json.dumps(report, indent=1))
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
    p.set_defaults(func=_cli)
