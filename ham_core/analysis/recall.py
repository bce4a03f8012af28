"""The recall lab's evaluation: accuracy per selection policy and cache size on the recall task.

On the recall task (ham_core.data.recall_task) the filler is what an RNN predicts well and
each key-value pair is new information. There are more pairs than the small RNN state can hold,
so a model that reads only its state recalls some of them (about 46% for the shipped model,
assets/recall), and one that caches the right tokens recalls them all.

    python -m ham_core recall                       # the shipped model on held-out seeds
    python -m ham_core recall --pairs 16 --length 256 --seed 5 --json
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ham_core.data.recall_task import TOKENS, make_recall, recall_batch, roles, separator
from ham_core.errors import HAMInputError
from ham_core.model.policies import POLICY_NAMES, REFERENCES, run_policy

from .thresholds import taus_for_fractions



@dataclass
class RecallRow:
    policy: str
    tau: Optional[float]        # HAM's threshold (None for policies that do not use one)
    target: Optional[float]     # the cache fraction asked for, when a fraction was given
    kv_fraction: float          # mean peak KV cache / full cache over the sequences
    accuracy: float             # share of answers whose argmax prediction is right

    def to_dict(self) -> dict:
        return asdict(self)


def answer_accuracy(logits: torch.Tensor, ids: torch.Tensor, answers: torch.Tensor) -> float:
    """Share of answer tokens predicted (argmax at the position before) correctly."""
    pred = logits.argmax(-1).gather(1, answers - 1)
    return (pred == ids.gather(1, answers)).float().mean().item()


def shared_tau(model, ids: torch.Tensor, fraction: float) -> float:
    """One threshold for every text of ids [B, T] whose mean cache fraction is at most
    `fraction` (and within half a point of it when 12 rounds allow): the recall lab compares
    policies at a memory HAM never exceeds."""
    return taus_for_fractions(model, ids, fraction, shared=True, at_most=True, rounds=12)[0]


@torch.no_grad()
def recall_accuracy(model, policies: Sequence[str] = POLICY_NAMES, fractions: Optional[Sequence[float]] = None,
                    taus: Optional[Sequence[float]] = None, n_pairs: int = 32, length: int = 384,
                    seeds: Sequence[int] = range(8), n_queries: Optional[int] = None) -> List[RecallRow]:
    """Accuracy and KV fraction per policy and threshold on the seeded sequences.

    Give HAM thresholds `taus`, or cache `fractions` (HAM's tau is then found to hit each
    fraction on these sequences). The other policies keep, per layer and per text, as many keys
    as HAM did at that threshold (equal peak memory, ham_core.model.policies.run_policy); `full` and
    `none` ignore the threshold and come first, once. Accuracy is the argmax at every answer.
    """
    unknown = sorted(set(policies) - set(POLICY_NAMES))
    if unknown:
        raise HAMInputError(f"unknown policies {unknown}; choose from {', '.join(POLICY_NAMES)}")
    if (fractions is None) == (taus is None):
        raise HAMInputError("give either fractions or taus")
    ids, answers = recall_batch(list(seeds), n_pairs, length, n_queries)
    ids, answers = ids.to(model.device), answers.to(model.device)
    points = [(shared_tau(model, ids, f), f) for f in fractions] if fractions is not None \
        else [(float(t), None) for t in taus]
    fixed: dict = {}

    def reference(name: str):                    # full and none: run once, reused at W = T or 0
        if name not in fixed:
            fixed[name] = run_policy(model, ids, 0.0, name)
        return fixed[name]

    rows: List[RecallRow] = []
    for name in [p for p in policies if p in REFERENCES]:
        out = reference(name)
        rows.append(RecallRow(name, None, None, out.kv_fraction.mean().item(), answer_accuracy(out.logits, ids, answers)))
    for tau, target in points:
        ham = model(ids, tau=tau)
        same = "none" if (ham.kv_peak == 0).all() else "full" if (ham.kv_peak == ids.shape[1]).all() else None
        for name in [p for p in policies if p not in REFERENCES]:
            out = ham if name == "ham" else reference(same) if same else \
                run_policy(model, ids, tau, name, budget=ham.kv_peak)
            rows.append(RecallRow(name, round(tau, 4), target, out.kv_fraction.mean().item(),
                                  answer_accuracy(out.logits, ids, answers)))
    return rows


@dataclass
class Answer:
    """One query after the `?`: the key asked, the value expected and the model's argmax."""

    position: int                 # where the answer (the value) stands in the text
    query: str
    expected: str
    predicted: str

    @property
    def right(self) -> bool:
        return self.predicted == self.expected


@dataclass
class RecallInspection:
    """One recall sequence read by HAM at the threshold that meets a cache target: everything
    the recall lab's sequence view draws (L layers, T tokens)."""

    tokens: List[str]                   # [T] readable tokens
    roles: List[str]                    # [T] start, filler, key, value, separator, query, answer
    tau: float                          # HAM's threshold for the target on this sequence
    surprise: np.ndarray                # [L, T] layer surprise (heads combined by the model's rule), float32
    cached: np.ndarray                  # [L, T] bool: in the layer's KV cache
    kv_fraction: float                  # peak KV cache / full
    cached_share: List[Dict[str, float]]   # [L] {key, value, filler}: share of them cached before `?`
    answers: List[Answer]

    @property
    def n_right(self) -> int:
        return sum(a.right for a in self.answers)


@torch.no_grad()
def inspect_recall(model, n_pairs: int, length: int, seed: int, fraction: float,
                   n_queries: Optional[int] = None) -> RecallInspection:
    """Make the seeded sequence (recall_task.make_recall), find HAM's threshold for `fraction`
    on it (never above), read it once and report per token and per layer what was cached."""
    seq = make_recall(n_pairs, length, seed, n_queries)
    ids = seq.ids[None].to(model.device)
    tau = shared_tau(model, ids, fraction)
    out = model(ids, tau=tau)
    cached = out.cached[0].cpu().numpy().astype(bool)
    kinds = np.array(roles(seq))
    body = np.arange(len(kinds)) < separator(seq)
    shares = [{k: float(layer[body & (kinds == k)].mean()) if (body & (kinds == k)).any() else 0.0
               for k in ("key", "value", "filler")} for layer in cached]
    predicted = out.logits[0].argmax(-1).cpu().tolist()
    name = lambda i: TOKENS[i] if i < len(TOKENS) else f"#{i}"     # noqa: E731 - a larger model's id
    answers = [Answer(a, seq.tokens[a - 1], seq.tokens[a], name(predicted[a - 1])) for a in seq.answers.tolist()]
    return RecallInspection(seq.tokens, kinds.tolist(), tau, out.layer_surprise[0].float().cpu().numpy(),
                            cached, float(out.kv_fraction[0]), shares, answers)

