"""`ham recall`: the recall lab's accuracy per selection policy and cache size."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ham_core.analysis.recall import RecallRow, recall_accuracy
from ham_core.analysis.thresholds import DEFAULT_FRACTIONS
from ham_core.data.recall_task import TRAIN_SEED_OFFSET, load_task
from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import default_recall_dir, load_model
from ham_core.model.policies import POLICY_NAMES

from .common import dump_json, numbers

def format_table(rows: Sequence[RecallRow]) -> str:
    lines = [f"{'policy':<8} {'target':>7} {'tau':>7} {'kv_frac':>8} {'accuracy':>9}"]
    for r in rows:
        target = "-" if r.target is None else f"{r.target:.0%}"
        tau = "-" if r.tau is None else f"{r.tau:.3f}"
        lines.append(f"{r.policy:<8} {target:>7} {tau:>7} {r.kv_fraction:>8.1%} {r.accuracy:>9.1%}")
    return "\n".join(lines)


def _recall(args) -> int:
    directory = Path(args.model) if args.model else default_recall_dir()
    task = load_task(directory)
    model = load_model(directory)
    n_pairs = args.pairs or task["n_pairs"]
    length = args.length or task["length"]
    n_queries = args.queries or (task["n_queries"] if n_pairs == task["n_pairs"] else None)
    if args.n < 1 or args.seed < 0:
        raise HAMInputError(f"--n must be >= 1 and --seed >= 0, got {args.n} and {args.seed}")
    seeds = range(args.seed, args.seed + args.n)
    if seeds[-1] >= TRAIN_SEED_OFFSET:
        print(f"note: seeds >= {TRAIN_SEED_OFFSET:,} are the ones training draws from")
    taus = numbers(args.taus, "--taus") if args.taus else None
    fractions = None if taus else numbers(args.fractions, "--fractions")
    if fractions is not None and not all(0 <= f <= 1 for f in fractions):
        raise HAMInputError(f"--fractions must lie in [0, 1], got {args.fractions}")
    if taus is not None and not all(t >= 0 for t in taus):
        raise HAMInputError(f"--taus must be >= 0, got {args.taus}")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    rows = recall_accuracy(model, policies, fractions, taus, n_pairs, length, seeds, n_queries)
    if args.json:
        print(dump_json({"model": str(directory), "n_pairs": n_pairs, "length": length,
                          "seeds": [seeds.start, seeds.stop - 1], "rows": [r.to_dict() for r in rows]}, indent=1))
    else:
        print(f"recall: {n_pairs} pairs, {length} tokens, seeds {seeds.start}..{seeds.stop - 1}, model {directory}")
        print(format_table(rows))
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("recall", help="associative-recall accuracy per selection policy and threshold")
    p.add_argument("--pairs", type=int, default=0, help="key-value pairs per text (default: the model's task)")
    p.add_argument("--length", type=int, default=0, help="tokens per text (default: the model's task)")
    p.add_argument("--queries", type=int, default=0, help="queries per text (default: the model's task)")
    p.add_argument("--seed", type=int, default=0, help="first seed (training uses seeds >= 1,000,000)")
    p.add_argument("--n", type=int, default=16, help="number of texts (seeds seed..seed+n-1)")
    p.add_argument("--fractions", default=",".join(str(f) for f in DEFAULT_FRACTIONS), help="cache fractions for HAM")
    p.add_argument("--taus", default="", help="HAM thresholds instead of fractions, e.g. 0.2,0.5")
    p.add_argument("--policies", default=",".join(POLICY_NAMES))
    p.add_argument("--model", default="", help="model folder (default: assets/recall)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=_recall)
