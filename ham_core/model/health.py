"""Is the attention path alive? The figures that show, in minutes, whether a model reads its cache.

A model that has switched its cache path off looks fine on loss alone: the RNN carries it. These
figures catch that early (training prints them every few hundred steps) and back the model card:

- the copy probe: random tokens read twice. Nothing but a lookup in the cache can predict the
  second reading, so its loss with a full cache against none is the plainest test of copying;
- per layer: the mean attention gate g^A (near 0: the path is switched off), the mean
  temperature and the most open head's (a lookup head can be far sharper than its layer's
  mean), and the mean top read weight of a query (near 1/n: reads are a smear, not lookups).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List

import torch

from .loss import lm_loss
from .model import HAMModel

def random_words(shape, vocab_size: int, gen: torch.Generator) -> torch.Tensor:
    """Random token ids: above the byte range, where a BPE vocabulary's ordinary words live (a
    vocabulary too small to have one draws from all of it)."""
    low = 256 if vocab_size > 512 else 0
    return torch.randint(low, vocab_size, shape, generator=gen)
NO_CACHE_TAU = 3.0   # above the largest surprise (2): nothing is cached


def copy_probe(vocab_size: int, count: int = 4, half: int = 128, seed: int = 999) -> torch.Tensor:
    """`count` sequences of `half` random tokens, each read twice: ids [count, 2 * half]."""
    first = random_words((count, half), vocab_size, torch.Generator().manual_seed(seed))
    return torch.cat([first, first], 1)


def second_reading_loss(model: HAMModel, probe: torch.Tensor, **routing) -> float:
    """Mean loss (nats/token) of the second reading of a copy probe [N, 2 * half], routed as given
    (tau=0.0: full cache; tau=NO_CACHE_TAU: none; routes=...: any policy)."""
    half = probe.shape[1] // 2
    mask = torch.zeros_like(probe, dtype=torch.bool)
    mask[:, half + 1:] = True          # targets of the second reading (its first token needs no copy)
    with torch.no_grad():
        return lm_loss(model(probe.to(model.device), **routing).logits, probe.to(model.device), mask).item()


@dataclass
class LayerHealth:
    attn_gate: float        # mean g^A over tokens and heads
    attn_gate_max: float    # the most open head's mean g^A
    temperature: float      # mean over heads of the logit scale (HAMLayer.sharpness)
    open_temperature: float  # the logit scale of the most open head (the one attn_gate_max is)
    top_read: float         # mean over queries and heads of the largest attention weight


@dataclass
class AttentionHealth:
    copy_full: float        # second reading of the copy probe, full cache (nats/token)
    copy_none: float        # the same with no cache
    layers: List[LayerHealth]

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One log line: copy full/none, then per layer gate, temperature, top read weight."""
        per_layer = " | ".join(f"L{i + 1} gate {h.attn_gate:.2f} (max {h.attn_gate_max:.2f}) "
                               f"temp {h.temperature:.1f} (open {h.open_temperature:.1f}) top {h.top_read:.2f}"
                               for i, h in enumerate(self.layers))
        return f"copy 2nd reading {self.copy_full:.2f} full / {self.copy_none:.2f} none | {per_layer}"


@torch.no_grad()
def attention_health(model: HAMModel, text: torch.Tensor, probe: torch.Tensor) -> AttentionHealth:
    """Health figures on held-out text ids [N, T] (full cache) and a copy probe [M, 2 * half]
    (no layer figures for GDN, which has no attention; a Transformer's "none" is its full cache).

    Top read weights count queries in the second half of each window, where there is something
    to look up and a uniform read would be below 2 / T."""
    was_training = model.training
    model.eval()
    try:
        out = model(text.to(model.device), tau=0.0, attention="all")
        T = text.shape[1]
        layers = []
        for l, weights in enumerate(out.attention if model.cfg.has_attention else ()):   # [N, H, T, T]
            head_gate = out.attn_gate[:, l].mean((0, 1))                 # [H]
            sharpness = model.blocks[l].ham.sharpness()                  # [H]
            layers.append(LayerHealth(
                attn_gate=head_gate.mean().item(),
                attn_gate_max=head_gate.max().item(),
                temperature=sharpness.mean().item(),
                open_temperature=sharpness[head_gate.argmax()].item(),
                top_read=weights[:, :, T // 2:].amax(-1).mean().item(),
            ))
        return AttentionHealth(second_reading_loss(model, probe, tau=0.0),
                               second_reading_loss(model, probe, tau=NO_CACHE_TAU, window=0), layers)
    finally:
        model.train(was_training)
