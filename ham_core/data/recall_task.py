"""The recall task: a synthetic associative-recall text where the choice of what to cache is stark.

A sequence is a predictable filler (the cycle a b c d e f g h, from a random phase) with
key-value pairs (`k17 v42`) inserted at random places, then a `?` and queries: a key from the
text followed by its value, which the model must recall. The filler is what an RNN predicts
well (low surprise); each pair is new information. Sequences come from a seed; training draws
seeds >= TRAIN_SEED_OFFSET, so every smaller seed is held out. The evaluation is
ham_core.analysis.recall, the training ham_core.training.recall_train.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from ham_core.errors import HAMInputError
from ham_core.model.config import HAMConfig

TRAIN_SEED_OFFSET = 1_000_000
N_FILLER, N_KEYS, N_VALUES = 8, 64, 64
BOS, SEP = 0, 1
FILLER0 = 2
KEY0 = FILLER0 + N_FILLER
VALUE0 = KEY0 + N_KEYS
VOCAB_SIZE = VALUE0 + N_VALUES                                   # 138
TOKENS = (["<s>", "?"] + [chr(ord("a") + i) for i in range(N_FILLER)]
          + [f"k{i:02d}" for i in range(N_KEYS)] + [f"v{i:02d}" for i in range(N_VALUES)])
TASK_FILE = "task.json"
# The shipped task: 32 pairs in 384 tokens (values are 1/12 of the text), every key queried.
TASK = {"n_pairs": 32, "length": 384, "n_queries": 32}


def recall_config(architecture: str = "ham") -> HAMConfig:
    """The recall-lab model's sizes: 2 layers of 2 heads of 16, d_model 64 (77k parameters: an RNN
    state of 2 x 16 x 16 per layer, too small for TASK's 32 pairs). The trainer and the app's
    untrained stand-in both build it from here. It routes by the min over heads, the rule the
    shipped recall model was trained with (it reaches 100% at 25% so; not re-measured under max).
    `architecture` (config.ARCHITECTURES) gives the paper's comparison the same sizes."""
    return HAMConfig(vocab_size=VOCAB_SIZE, d_model=64, n_layers=2, n_heads=2, head_dim=16,
                     mlp_hidden=128, chunk_size=32, max_tokens=1024, head_rule="min", architecture=architecture)


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


def roles(seq: RecallSequence) -> List[str]:
    """[T] what each token is: start, filler, key, value, separator, query or answer."""
    out = ["filler"] * len(seq.ids)
    out[0] = "start"
    for name, positions in (("key", seq.keys), ("value", seq.values), ("query", seq.queries), ("answer", seq.answers)):
        for p in positions.tolist():
            out[p] = name
    out[separator(seq)] = "separator"
    return out


def separator(seq: RecallSequence) -> int:
    """Position of the `?` between the text and the queries."""
    return int((seq.ids == SEP).nonzero()[0, 0])

