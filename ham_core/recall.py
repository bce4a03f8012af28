"""The recall lab: a synthetic associative-recall task where the choice of what to cache is stark.

A sequence is a predictable filler (the cycle a b c d e f g h, from a random phase) with
key-value pairs (`k17 v42`) inserted at random places, then a `?` and queries: a key from the
text followed by its value, which the model must recall. The filler is what an RNN predicts
well (low surprise); each pair is new information. There are more pairs than the small RNN
state can hold, so a model that reads only its state recalls some of them (about 46% for the
shipped model, assets/recall), and one that caches the right tokens recalls them all. Sequences come from a seed; training draws seeds >= TRAIN_SEED_OFFSET,
so every smaller seed is held out.

    python -m ham_core recall                       # the shipped model on held-out seeds
    python -m ham_core recall --pairs 16 --length 256 --seed 5 --json
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from .errors import HAMInputError

TRAIN_SEED_OFFSET = 1_000_000
N_FILLER, N_KEYS, N_VALUES = 8, 64, 64
BOS, SEP = 0, 1
FILLER0 = 2
KEY0 = FILLER0 + N_FILLER
VALUE0 = KEY0 + N_KEYS
VOCAB_SIZE = VALUE0 + N_VALUES                                   # 138
TOKENS = (["<s>", "?"] + [chr(ord("a") + i) for i in range(N_FILLER)]
          + [f"k{i:02d}" for i in range(N_KEYS)] + [f"v{i:02d}" for i in range(N_VALUES)])
POLICIES = ("ham", "random", "window", "sinks", "hola", "full", "none")
FRACTIONS = (0.0, 0.05, 0.10, 0.25, 0.50, 1.0)
TAU_OFF = 2.5                  # any tau > 2 caches nothing: the pure RNN
TASK_FILE = "task.json"


@dataclass
class RecallSequence:
    """One recall text of T tokens and where its parts are (positions index `ids`)."""

    ids: torch.Tensor          # [T] token ids < VOCAB_SIZE
    tokens: List[str]          # readable token strings
    keys: torch.Tensor         # [n_pairs] positions of the keys in the text
    values: torch.Tensor       # [n_pairs] positions of their values (keys + 1)
    queries: torch.Tensor      # [n_queries] positions of the queried keys after `?`
    answers: torch.Tensor      # [n_queries] positions of the expected values (queries + 1)
    seed: int


def check_task(n_pairs: int, length: int, n_queries: int) -> None:
    if not 1 <= n_pairs <= N_KEYS:
        raise HAMInputError(f"pairs must be in 1..{N_KEYS} (keys are unique), got {n_pairs}")
    if not 1 <= n_queries <= n_pairs:
        raise HAMInputError(f"queries must be in 1..pairs ({n_pairs}), got {n_queries}")
    need = 2 + 2 * n_pairs + 2 * n_queries
    if length < need:
        raise HAMInputError(f"length {length} is too short for {n_pairs} pairs and {n_queries} queries "
                            f"(need at least {need})")


def make_recall(n_pairs: int, length: int, seed: int, n_queries: Optional[int] = None) -> RecallSequence:
    """A seeded recall sequence: <s>, filler with n_pairs `k v` pairs, `?`, n_queries `k v` queries.

    n_queries defaults to every pair (in a new order). Keys are distinct; values may repeat.
    """
    n_queries = n_pairs if n_queries is None else n_queries
    check_task(n_pairs, length, n_queries)
    rng = random.Random(seed)
    keys = rng.sample(range(N_KEYS), n_pairs)
    values = [rng.randrange(N_VALUES) for _ in range(n_pairs)]
    n_fill = length - 2 - 2 * n_pairs - 2 * n_queries
    # The body is n_fill filler items and n_pairs pair items in random order.
    pair_slots = sorted(rng.sample(range(n_fill + n_pairs), n_pairs))
    phase = rng.randrange(N_FILLER)
    ids, key_pos, filled, slots = [BOS], [], 0, set(pair_slots)
    pair_index = 0
    for item in range(n_fill + n_pairs):
        if item in slots:
            key_pos.append(len(ids))
            ids += [KEY0 + keys[pair_index], VALUE0 + values[pair_index]]
            pair_index += 1
        else:
            ids.append(FILLER0 + (phase + filled) % N_FILLER)
            filled += 1
    ids.append(SEP)
    query_pos = []
    for i in rng.sample(range(n_pairs), n_queries):
        query_pos.append(len(ids))
        ids += [KEY0 + keys[i], VALUE0 + values[i]]
    t = torch.tensor(ids, dtype=torch.long)
    kp, qp = torch.tensor(key_pos), torch.tensor(query_pos)
    return RecallSequence(t, [TOKENS[i] for i in ids], kp, kp + 1, qp, qp + 1, seed)


def recall_batch(seeds: Sequence[int], n_pairs: int, length: int, n_queries: Optional[int] = None):
    """ids [B, T] and answer positions [B, n_queries] for a list of seeds."""
    seqs = [make_recall(n_pairs, length, s, n_queries) for s in seeds]
    return torch.stack([s.ids for s in seqs]), torch.stack([s.answers for s in seqs])


def answer_mask(ids: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the value tokens after the `?` (the answers), found from the ids alone."""
    after = (ids == SEP).long().cumsum(-1) > 0
    return after & (ids >= VALUE0)


def load_task(directory: str | Path) -> dict:
    """The task settings a model was trained on (task.json beside the weights)."""
    path = Path(directory) / TASK_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HAMInputError(f"task file not found: {path} (is this a recall model folder?)") from None
    except json.JSONDecodeError as exc:
        raise HAMInputError(f"task file {path} is not valid JSON: {exc}") from None


def default_recall_dir() -> Path:
    from .checkpoint import ASSETS

    return ASSETS / "recall"


# ---------------------------------------------------------------- evaluation


@dataclass
class RecallRow:
    policy: str
    tau: Optional[float]        # HAM's threshold (None for policies that do not use one)
    target: Optional[float]     # the cache fraction asked for, when a fraction was given
    kv_fraction: float          # mean peak KV cache / full cache over the sequences
    accuracy: float             # share of answers whose argmax prediction is right

    def to_dict(self) -> dict:
        return asdict(self)


def _accuracy(logits: torch.Tensor, ids: torch.Tensor, answers: torch.Tensor) -> float:
    """Share of answer tokens predicted (argmax at the position before) correctly."""
    pred = logits.argmax(-1).gather(1, answers - 1)
    return (pred == ids.gather(1, answers)).float().mean().item()


@torch.no_grad()
def tau_for_fraction(model, ids: torch.Tensor, fraction: float, tolerance: float = 0.005,
                     rounds: int = 12) -> float:
    """One threshold for all texts in ids whose mean KV fraction is at most `fraction` (and
    within `tolerance` of it when the rounds allow). ham_core.sweep.taus_for_fractions finds
    the closest threshold for one text; the recall lab wants one for many texts, never above
    the target. Each round guesses the tau that caches the right number of (layer, token)
    cells by the last pass's surprise (exact unless routing in lower layers moves the upper
    layers' surprise), or bisects between the best guesses on either side."""
    if fraction >= 1.0:
        return 0.0
    if fraction <= 0.0:
        return TAU_OFF
    below, above = 0.0, TAU_OFF           # kv(below) > fraction (tau 0 caches all), kv(above) <= it
    out, guessing = model(ids, tau=0.0), True
    for _ in range(rounds):
        ranked = out.surprise.amin(-1).flatten().sort(descending=True).values
        tau = float(ranked[int(fraction * ranked.numel())]) + 1e-6 if guessing else (below + above) / 2
        if not below < tau < above:       # the guess left the bracket: bisect from now on
            guessing, tau = False, (below + above) / 2
        out = model(ids, tau=tau)
        kv = out.kv_fraction.mean().item()
        if kv <= fraction:
            above = tau
            if fraction - kv <= tolerance:
                break
        else:
            below = tau
    return above


@torch.no_grad()
def recall_accuracy(model, policies: Sequence[str] = POLICIES, fractions: Optional[Sequence[float]] = None,
                    taus: Optional[Sequence[float]] = None, n_pairs: int = 32, length: int = 384,
                    seeds: Sequence[int] = range(8), n_queries: Optional[int] = None) -> List[RecallRow]:
    """Accuracy and KV fraction per policy and threshold on the seeded sequences.

    Give HAM thresholds `taus`, or cache `fractions` (HAM's tau is then found to hit each
    fraction on these sequences). The other policies keep, per layer and per text, as many keys
    as HAM did at that threshold (equal peak memory, ham_core.policies.run_policy); `full` and
    `none` ignore the threshold and come first, once. Accuracy is the argmax at every answer.
    """
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise HAMInputError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    if (fractions is None) == (taus is None):
        raise HAMInputError("give either fractions or taus")
    from .policies import run_policy

    ids, answers = recall_batch(list(seeds), n_pairs, length, n_queries)
    ids, answers = ids.to(model.device), answers.to(model.device)
    points = [(tau_for_fraction(model, ids, f), f) for f in fractions] if fractions is not None \
        else [(float(t), None) for t in taus]
    fixed: dict = {}

    def reference(name: str):                    # full and none: run once, reused at W = T or 0
        if name not in fixed:
            fixed[name] = run_policy(model, ids, 0.0, name)
        return fixed[name]

    rows: List[RecallRow] = []
    for name in [p for p in policies if p in ("full", "none")]:
        out = reference(name)
        rows.append(RecallRow(name, None, None, out.kv_fraction.mean().item(), _accuracy(out.logits, ids, answers)))
    for tau, target in points:
        ham = model(ids, tau=tau)
        same = "none" if (ham.kv_peak == 0).all() else "full" if (ham.kv_peak == ids.shape[1]).all() else None
        for name in [p for p in policies if p not in ("full", "none")]:
            out = ham if name == "ham" else reference(same) if same else \
                run_policy(model, ids, tau, name, budget=ham.kv_peak)
            rows.append(RecallRow(name, round(tau, 4), target, out.kv_fraction.mean().item(),
                                  _accuracy(out.logits, ids, answers)))
    return rows


# ---------------------------------------------------------------- CLI


def format_table(rows: Sequence[RecallRow]) -> str:
    lines = [f"{'policy':<8} {'target':>7} {'tau':>7} {'kv_frac':>8} {'accuracy':>9}"]
    for r in rows:
        target = "-" if r.target is None else f"{r.target:.0%}"
        tau = "-" if r.tau is None else f"{r.tau:.3f}"
        lines.append(f"{r.policy:<8} {target:>7} {tau:>7} {r.kv_fraction:>8.1%} {r.accuracy:>9.1%}")
    return "\n".join(lines)


def _numbers(spec: str, what: str) -> List[float]:
    try:
        values = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise HAMInputError(f"{what} must be comma-separated numbers, got {spec!r}") from None
    if not values:
        raise HAMInputError(f"{what} is empty")
    return values


def _cli(args) -> int:
    from .checkpoint import load_model

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
    taus = _numbers(args.taus, "--taus") if args.taus else None
    fractions = None if taus else _numbers(args.fractions, "--fractions")
    if fractions is not None and not all(0 <= f <= 1 for f in fractions):
        raise HAMInputError(f"--fractions must lie in [0, 1], got {args.fractions}")
    if taus is not None and not all(t >= 0 for t in taus):
        raise HAMInputError(f"--taus must be >= 0, got {args.taus}")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    rows = recall_accuracy(model, policies, fractions, taus, n_pairs, length, seeds, n_queries)
    if args.json:
        print(json.dumps({"model": str(directory), "n_pairs": n_pairs, "length": length,
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
    p.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS), help="cache fractions for HAM")
    p.add_argument("--taus", default="", help="HAM thresholds instead of fractions, e.g. 0.2,0.5")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--model", default="", help="model folder (default: assets/recall)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=_cli)
