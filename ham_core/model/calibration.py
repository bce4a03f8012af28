"""Each layer's surprise scale: what makes one threshold mean alike in every layer.

The cosine surprise of step 3 settles on a different scale in each layer of a trained model
(one model: typical values 0.011, 0.11, 0.54 and 0.08 in layers 1-4), because how well a layer's
RNN can predict its values depends on what those values carry. Read with one threshold, such
a model caches all of one layer and nothing of another. Step 5 therefore reads a layer's
surprise in the layer's own units: e_t x scale_l, where the scale puts the layer's median at
TYPICAL_SURPRISE. Within a layer the order of tokens is unchanged (surprise still decides), and
the same threshold now caches a like share of every layer.

Scales are measured, not learned (routing takes no gradient): `calibrate` sets them from a
forward over some text, and training keeps a running median (`RunningScale`) so every
checkpoint it writes is calibrated.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist

from .model import HAMModel

TYPICAL_SURPRISE = 0.5      # a layer's median surprise reads this after calibration
MEDIAN_FLOOR = 1e-6         # a layer whose RNN predicts (almost) everything keeps a finite scale


def layer_medians(layer_surprise: torch.Tensor, scales: List[float]) -> List[float]:
    """The median cosine surprise of each layer: layer_surprise [B, L, T] as the model returned
    it (each layer's units, heads combined by its rule), scales [L] the ones it used."""
    layer = layer_surprise.detach().float()                           # [B, L, T]
    medians = layer.transpose(0, 1).flatten(1).median(-1).values      # [L]
    return [float(m) / s for m, s in zip(medians.tolist(), scales)]


def scales_for(medians: List[float]) -> List[float]:
    """The scale that puts each layer's median at TYPICAL_SURPRISE."""
    return [TYPICAL_SURPRISE / max(m, MEDIAN_FLOOR) for m in medians]


@torch.no_grad()
def calibrate(model: HAMModel, windows: torch.Tensor, batch: int = 8) -> List[float]:
    """Set model.cfg.surprise_scale from windows [N, T] read with a full cache; returns the
    layers' median cosine surprise. Each layer's surprise depends on the layers below it, and
    scales change no layer's output, so one pass measures them all."""
    # Measured in raw cosine units (scale 1): a scaled layer's surprise is clipped at
    # SURPRISE_MAX, so measuring with a scale that was too large (a model recalibrated for
    # another head rule) would read the clip for the median and leave most tokens at the clip.
    model.cfg.surprise_scale = None
    surprise = torch.cat([model(windows[i:i + batch].to(model.device), tau=0.0).layer_surprise
                          for i in range(0, windows.shape[0], batch)])
    medians = layer_medians(surprise, model.cfg.surprise_scales())
    model.cfg.surprise_scale = scales_for(medians)
    return medians


class RunningScale:
    """A running median per layer over training batches (exponential average of each batch's
    median), written into the model's config after every step."""

    def __init__(self, model: HAMModel, decay: float = 0.98):
        self.model, self.decay = model, decay
        start = model.cfg.surprise_scale
        self.medians: Optional[List[float]] = None if start is None else [TYPICAL_SURPRISE / s for s in start]

    def update(self, surprise: torch.Tensor) -> None:
        """surprise [B, L, T] (HAMOutput.layer_surprise) from this step's forward, in the units it
        was routed with."""
        seen = layer_medians(surprise, self.model.cfg.surprise_scales())
        if dist.is_available() and dist.is_initialized():       # every rank routes with the same scales
            shared = torch.tensor(seen, device=surprise.device)
            dist.all_reduce(shared)
            seen = (shared / dist.get_world_size()).tolist()
        if self.medians is None:
            self.medians = seen
        else:
            self.medians = [self.decay * m + (1 - self.decay) * s for m, s in zip(self.medians, seen)]
        self.model.cfg.surprise_scale = scales_for(self.medians)
