"""Does the model look things up in its cache? The measures a teacher's claim rests on.

- copy test: a held-out passage read twice. Its second reading costs far less with a cache than
  without only if attention copies from the first; measured with a full cache, none, and HAM's
  routing at 25% (each text's own 75% surprise quantile per layer, the training route), and,
  for scale, a 25% cache chosen knowing the text repeats (the first half of the first reading):
  a cache of a quarter of the text holds at most half the first reading, so even a perfect copier
  reading it pays for the other half.
- name lookups: in texts where names recur, how often a later mention of a name has, in some
  layer, a head whose strongest read (at least MIN_LOOKUP, so that the peak of a near-uniform
  smear does not count; the head's attention gate at least LOOKUP_GATE, so that its read-out is
  used) lands on an earlier mention of the same name: one of its tokens, or the token just
  after it, where a copy of the next token reads. Counted beside it: the same with weights
  averaged over the layer's heads (what the app's layer view draws: one sharp head among heads
  that read little falls under the floor), and a control with every earlier mention moved
  CONTROL_SHIFT tokens later (how often a strong read lands there by chance).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from ham_core.model.loss import lm_loss
from ham_core.model.model import HAMModel
from ham_core.model.policies import TAU_OFF
from ham_core.model.routes import quantile_route

from .analysis import analyze
from .readmap import LOOKUP_GATE, MIN_LOOKUP  # noqa: F401 - LOOKUP_GATE named here too (cli, tests)

HAM_FRACTION = 0.25
CONTROL_SHIFT = 7        # the control moves each earlier mention this many tokens later


def _first_keys(count: int):
    """A route caching the first `count` tokens of every text: [B, T, H] surprise -> [B, T] keep."""
    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros(surprise.shape[:2], dtype=torch.bool, device=surprise.device)
        keep[:, :count] = True
        return keep
    return route


def routings(n_layers: int, passage: int, heads: str) -> Dict[str, dict]:
    """The ways the copy test routes a passage of `passage` tokens read twice: forward() keyword
    arguments per name (heads: the model's HAMConfig.head_rule)."""
    size = int(HAM_FRACTION * 100)
    return {"full": {"tau": 0.0}, "none": {"tau": TAU_OFF},
            f"ham{size}": {"routes": [quantile_route(HAM_FRACTION, heads)] * n_layers},
            f"first-half{size}": {"routes": [_first_keys(round(HAM_FRACTION * 2 * passage))] * n_layers}}


@torch.no_grad()
def copy_test(model: HAMModel, passages: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """passages [N, P]: each read twice ([N, 2P]); -> {routing: {"first": loss, "second": loss}} in
    nats/token. The texts run one at a time, so HAM's quantile is each text's own."""
    N, P = passages.shape
    twice = torch.cat([passages, passages], 1)
    first = torch.zeros_like(twice, dtype=torch.bool)
    first[:, 1:P] = True                      # the first token of each reading has nothing to copy
    second = torch.zeros_like(first)
    second[:, P + 1:] = True
    out: Dict[str, Dict[str, float]] = {}
    for name, routing in routings(model.cfg.n_layers, P, model.cfg.head_rule).items():
        totals = {"first": 0.0, "second": 0.0}
        for i in range(N):
            ids = twice[i:i + 1].to(model.device)
            logits = model(ids, **routing).logits
            totals["first"] += lm_loss(logits, ids, first[i:i + 1].to(model.device)).item() / N
            totals["second"] += lm_loss(logits, ids, second[i:i + 1].to(model.device)).item() / N
        out[name] = totals
    return out


# Capitalised words that are not names however often they recur.
_NOT_NAMES = {"I", "The", "A", "An", "And", "But", "In", "On", "At", "It", "He", "She", "They", "We",
              "You", "His", "Her", "Their", "This", "That", "There", "Then", "When", "As", "After",
              "Before", "Mr", "Mrs", "Ms", "Dr", "St", "Of", "To", "For", "By", "With", "From", "So"}
_WORD = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+)?")


def name_mentions(text: str) -> Dict[str, List[Tuple[int, int]]]:
    """{name: [(start, end) character spans]} of capitalised words that occur at least twice and
    at least once where a sentence does not start (so they are names, not sentence openers)."""
    spans: Dict[str, List[Tuple[int, int]]] = {}
    inside: Dict[str, bool] = {}
    for m in _WORD.finditer(text):
        word = m.group()
        if word in _NOT_NAMES or (m.start() > 0 and text[m.start() - 1].isalnum()):
            continue
        before = text[:m.start()].rstrip(" \"'(")
        opener = not before or before[-1] in ".!?\n:"
        spans.setdefault(word, []).append(m.span())
        inside[word] = inside.get(word, False) or not opener
    return {w: s for w, s in spans.items() if len(s) >= 2 and inside[w]}


@dataclass
class NameLookups:
    mentions: int            # later mentions of names
    found: int               # some head's strongest read (gate open) lands on an earlier mention
    found_mean: int          # the same read with weights averaged over the layer's heads
    found_control: int       # per head, with the earlier mentions moved CONTROL_SHIFT tokens later
    texts: int

    @property
    def share(self) -> float:
        return self.found / self.mentions if self.mentions else 0.0

    def as_dict(self) -> dict:
        n = max(self.mentions, 1)
        return {**asdict(self), "share": self.share, "share_mean": self.found_mean / n,
                "share_control": self.found_control / n}


def _token_span(tokens, start: int, end: int) -> List[int]:
    return [i for i, t in enumerate(tokens) if t.start < end and t.end > start]


def _lands(maps, queries, targets, open_heads=None) -> bool:
    """Does some map's strongest read of some query reach MIN_LOOKUP on a target? maps: per
    layer (and head) ReadMaps; open_heads [len(maps), T] bool: whose read-out is used, or None."""
    return any((read := m.strongest(t)) is not None and read[1] >= MIN_LOOKUP and read[0] in targets
               and (open_heads is None or bool(open_heads[i, t]))
               for i, m in enumerate(maps) for t in queries)


def name_lookups(model: HAMModel, tokenizer, texts: Sequence[str], tau: float = 0.0) -> NameLookups:
    """Count later mentions of names whose strongest read lands on an earlier mention of the same
    name or on the token right after it: per head (the measure), with the heads' mean, and the
    per-head control (module docstring)."""
    mentions = found = found_mean = found_control = 0
    for text in texts:
        result = analyze(model, tokenizer, text, tau)
        L, H = len(result.tau), model.cfg.n_heads
        head_maps = [result.read_map(layer, top=1, head=h) for layer in range(L) for h in range(H)]
        mean_maps = [result.read_map(layer, top=1) for layer in range(L)]
        gates = result.steps.gate_attn                                     # [L, T, H]
        open_heads = (gates >= LOOKUP_GATE).permute(0, 2, 1).reshape(L * H, -1)
        for spans in name_mentions(text).values():
            token_spans = [_token_span(result.tokens, a, b) for a, b in spans]
            token_spans = [s for s in token_spans if s]
            for k in range(1, len(token_spans)):
                targets = {i for s in token_spans[:k] for i in (*s, s[-1] + 1)}
                mentions += 1
                found += _lands(head_maps, token_spans[k], targets, open_heads)
                found_mean += _lands(mean_maps, token_spans[k], targets)
                moved = {i + CONTROL_SHIFT for i in targets} - targets - set(token_spans[k])
                found_control += _lands(head_maps, token_spans[k], moved, open_heads)
    return NameLookups(mentions, found, found_mean, found_control, len(texts))
