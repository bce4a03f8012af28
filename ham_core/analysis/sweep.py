"""Threshold sweeps and policies at equal memory: rows (policy, tau, kv_fraction, kv_bytes_peak, loss).

`sweep` reads one text at many thresholds under several selection policies. HAM runs first, at
every tau (its per-layer peak cache W_l is every other policy's budget); then each other policy
runs at those budgets. Forwards are batched (several thresholds and policies in one batch, as
many as fit `MEMORY_BUDGET`; on a CPU about 1,024 tokens, see `batch_size`), and nothing is
computed twice: a configuration that fixes the
same masks as one already run (same policy and budgets; an empty budget = `none`; a full
budget = `full`) reuses its result, and `full` / `none` run once whatever the taus.

`fraction_sweep` compares the policies at target cache fractions (e.g. 0, 5, 10, 25, 50, 100%),
HAM's threshold for each found by ham_core.analysis.thresholds.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ham_core.errors import HAMInputError
from ham_core.model.model import HAMModel, next_token_nll
from ham_core.model.policies import COMPARED, REFERENCES, TAU_OFF, caches_nothing, get_policy, policy_routes
from ham_core.progress import ProgressFn

from .analysis import TruncationWarning, check_tau, prepare_tokens
from .thresholds import DEFAULT_FRACTIONS, Pass, check_fractions, search_taus

# 16 thresholds, dense where a trained model's cache changes most (the shipped model caches
# 26% of tokens at 0.3, 8% at 0.5 and under 1% at 0.7 on English prose).
DEFAULT_TAUS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 1.0, TAU_OFF)
MEMORY_BUDGET = 1 << 30           # bytes of activations one batched forward may use
# On a CPU, batching only saves per-call overhead: 8 thresholds of a 1,024-token text took
# 2.1 s of CPU time one at a time, 2.4 s in pairs and 3.5 s as one batch of 8 (cache misses),
# while at 64-256 tokens batches of 4-16 were 5-30% faster. So a CPU batch holds ~1,024 tokens.
CPU_BATCH_TOKENS = 1024


@dataclass
class SweepRow:
    policy: str
    tau: float                    # HAM's threshold; other policies keep HAM's memory at it
    kv_fraction: float            # peak KV cache / full KV cache
    kv_bytes_peak: int
    loss: Optional[float]         # mean next-token loss, nats/token (None for a 1-token text)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Result:
    kv_fraction: float
    kv_bytes_peak: int
    loss: Optional[float]
    kv_peak: Tuple[int, ...]      # [L] peak keys per layer: the budget of the other policies
    surprise: torch.Tensor        # [L, T] layer surprise (heads combined by the model's rule) of this pass


@dataclass(frozen=True)
class _Job:
    policy: str
    taus: Tuple[float, ...]                    # [L]
    budget: Optional[Tuple[int, ...]] = None   # [L] for policies that need one

    def key(self, T: int) -> tuple:
        """Jobs with equal keys fix the same masks, hence give the same result."""
        if self.policy in REFERENCES:
            return (self.policy,)
        if self.policy == "ham":
            if all(caches_nothing(t) for t in self.taus):
                return ("none",)
            return ("full",) if all(t == 0 for t in self.taus) else ("ham", self.taus)
        if all(w == 0 for w in self.budget):
            return ("none",)
        return ("full",) if all(w == T for w in self.budget) else (self.policy, self.budget)


def batch_size(model: HAMModel, T: int) -> int:
    """How many texts of T tokens one forward reads: what fits MEMORY_BUDGET (logits, layer
    activations, masks), and on a CPU no more than CPU_BATCH_TOKENS tokens."""
    cfg = model.cfg
    per_text = 4 * T * (3 * cfg.vocab_size + 32 * cfg.d_model + 8 * cfg.n_heads * cfg.chunk_size) + 3 * T * T
    cap = max(1, CPU_BATCH_TOKENS // T) if model.device.type == "cpu" else 32
    return max(1, min(cap, MEMORY_BUDGET // per_text))


class _Runner:
    """Runs jobs on one text in batches, keeping every result it has computed."""

    def __init__(self, model: HAMModel, ids: torch.Tensor, seed: int, max_batch: Optional[int],
                 progress: Optional[ProgressFn]):
        self.model, self.ids, self.seed = model, ids.to(model.device), seed
        self.T, self.L = ids.shape[0], model.cfg.n_layers
        self.max_batch = max_batch or batch_size(model, self.T)
        self.progress = progress
        self.results: Dict[tuple, _Result] = {}
        self.done, self.total = 0, 0

    def plan(self, n: int) -> None:
        """Announce n more forwards (an upper bound: reused results are taken off)."""
        self.total += n

    def run(self, jobs: Sequence[_Job]) -> List[_Result]:
        todo: Dict[tuple, _Job] = {}
        for job in jobs:
            key = job.key(self.T)
            if key not in self.results and key not in todo:
                todo[key] = job
        self.total -= len(jobs) - len(todo)
        pending = list(todo.items())
        for start in range(0, len(pending), self.max_batch):
            chunk = pending[start:start + self.max_batch]
            for (key, _), result in zip(chunk, self._forward([job for _, job in chunk])):
                self.results[key] = result
            self.done += len(chunk)
            if self.progress is not None:
                self.progress(self.done, max(self.total, self.done))
        return [self.results[job.key(self.T)] for job in jobs]

    @torch.no_grad()
    def _forward(self, jobs: List[_Job]) -> List[_Result]:
        B, dev = len(jobs), self.model.device
        ids = self.ids[None].expand(B, self.T)
        taus = torch.tensor([job.taus for job in jobs], dtype=torch.float32, device=dev)
        budget = torch.tensor([job.budget or (0,) * self.L for job in jobs], dtype=torch.long, device=dev)
        routes = policy_routes([job.policy for job in jobs], taus, budget, self.seed, heads=self.model.cfg.head_rule)
        out = self.model(ids, routes=routes)
        losses = next_token_nll(out.logits, ids).double().mean(-1).tolist() if self.T > 1 else [None] * B
        return [
            _Result(float(out.kv_fraction[b]), int(out.kv_bytes_peak[b]), losses[b],
                    tuple(out.kv_peak[b].tolist()), out.layer_surprise[b].float().cpu())
            for b in range(B)
        ]


def _token_ids(model: HAMModel, tokenizer_or_ids, text: Optional[str]) -> torch.Tensor:
    """The text's token ids [T] (cut to model.cfg.max_tokens, with a TruncationWarning)."""
    if hasattr(tokenizer_or_ids, "tokenize"):
        if text is None:
            raise HAMInputError("sweep with a tokenizer needs the text: sweep(model, tokenizer, ..., text=...)")
        tokens, _, notice = prepare_tokens(model, tokenizer_or_ids, text)
        ids = torch.tensor([t.id for t in tokens])
    else:
        ids = model.check_ids(torch.as_tensor(tokenizer_or_ids))
        if ids.shape[0] != 1:
            raise HAMInputError(f"sweep reads one text: ids must be [T] or [1, T], got {list(ids.shape)}")
        ids, limit, notice = ids[0], model.cfg.max_tokens, ""
        if len(ids) > limit:
            notice = f"the text has {len(ids):,} tokens; only the first {limit:,} were read"
            ids = ids[:limit]
    if notice:
        warnings.warn(notice, TruncationWarning, stacklevel=3)
    return ids


def _check(taus: Sequence[float], policies: Sequence[str]) -> Tuple[List[float], List[str]]:
    if isinstance(policies, str):
        policies = [policies]
    taus = [check_tau(t) for t in taus]
    if not taus or not policies:
        raise HAMInputError("a sweep needs at least one threshold and one policy")
    for p in policies:
        get_policy(p)
    return taus, list(dict.fromkeys(policies))


def _rows(runner: _Runner, taus: List[float], policies: List[str]) -> List[SweepRow]:
    """Every (policy, tau): HAM first (its peaks are the budgets), then the others."""
    L = runner.L
    fixed = [p for p in policies if p != "ham" and not get_policy(p).needs_budget]   # full, none
    others = [p for p in policies if get_policy(p).needs_budget]
    need_ham = bool(others) or "ham" in policies
    runner.plan(len(taus) * (need_ham + len(others)) + len(fixed))
    results = {}
    if need_ham:
        ham = runner.run([_Job("ham", (t,) * L) for t in taus])
        results.update({("ham", t): r for t, r in zip(taus, ham)})
    for p in fixed:
        (r,) = runner.run([_Job(p, (0.0,) * L)])
        results.update({(p, t): r for t in taus})
    jobs = [_Job(p, (t,) * L, results[("ham", t)].kv_peak) for p in others for t in taus]
    results.update({(j.policy, j.taus[0]): r for j, r in zip(jobs, runner.run(jobs))})
    return [SweepRow(p, t, r.kv_fraction, r.kv_bytes_peak, r.loss)
            for p in policies for t in taus for r in [results[(p, t)]]]


def sweep(model: HAMModel, tokenizer_or_ids, taus: Sequence[float] = DEFAULT_TAUS,
          policies: Sequence[str] = ("ham",), progress: Optional[ProgressFn] = None, *,
          text: Optional[str] = None, seed: int = 0, max_batch: Optional[int] = None) -> List[SweepRow]:
    """Rows for every policy x tau (policy-major, in the order given) on one text.

    tokenizer_or_ids: token ids ([T], [1, T] or a list), or a tokenizer with `text=`.
    progress(done, total) is called after each batched forward.
    """
    taus, policies = _check(taus, policies)
    runner = _Runner(model, _token_ids(model, tokenizer_or_ids, text), seed, max_batch, progress)
    return _rows(runner, taus, policies)


def equal_memory(model: HAMModel, ids, tau: float, budget: Sequence[int],
                 policies: Sequence[str], *, seed: int = 0, max_batch: Optional[int] = None) -> List[SweepRow]:
    """The rows `sweep` gives `policies` at one threshold, when HAM's per-layer peak cache there
    (`budget`, [L]) is already known: the other policies' forwards only, no HAM pass. Each policy
    keeps the same tokens as in a whole sweep (the same seed and budgets fix the same masks), so
    a sweep can be built up one threshold at a time."""
    (tau,), policies = _check([tau], policies)
    runner = _Runner(model, _token_ids(model, ids, None), seed, max_batch, None)
    budget = tuple(int(w) for w in budget)
    if len(budget) != runner.L:
        raise HAMInputError(f"a budget per layer is needed: {runner.L} layers, got {len(budget)}")
    jobs = [_Job(p, (tau,) * runner.L, budget if get_policy(p).needs_budget else None) for p in policies]
    return [SweepRow(j.policy, tau, r.kv_fraction, r.kv_bytes_peak, r.loss) for j, r in zip(jobs, runner.run(jobs))]


def _search(runner: _Runner, fractions: Sequence[float], tolerance: float, rounds: int) -> List[float]:
    """HAM's closest threshold for each fraction (thresholds.search_taus), through the runner's
    batched forwards, so fraction_sweep reuses the search's HAM passes."""

    def measure(targets: List[int], taus: List[float]) -> List[Pass]:
        runner.plan(len(taus))
        return [Pass(r.kv_fraction, r.surprise) for r in runner.run([_Job("ham", (t,) * runner.L) for t in taus])]

    return search_taus(measure, fractions, tolerance=tolerance, rounds=rounds)


def fraction_sweep(model: HAMModel, tokenizer_or_ids, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                   policies: Sequence[str] = COMPARED, progress: Optional[ProgressFn] = None, *,
                   text: Optional[str] = None, seed: int = 0, max_batch: Optional[int] = None,
                   tolerance: float = 0.005) -> List[SweepRow]:
    """Policies at target cache fractions: rows policy-major, one per fraction (tau = HAM's
    threshold found for it). The HAM passes of the search are reused, not run again."""
    fractions = check_fractions(fractions)
    runner = _Runner(model, _token_ids(model, tokenizer_or_ids, text), seed, max_batch, progress)
    taus = _search(runner, fractions, tolerance, rounds=4)
    _, policies = _check([0.0], policies)
    return _rows(runner, taus, policies)
