"""Next-token loss of a model: the training objective and the held-out measure."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .model import HAMModel


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, loss_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean next-token cross entropy (nats); loss_mask [B, T] picks which targets count."""
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
    if loss_mask is None:
        return losses.mean()
    weights = loss_mask[:, 1:].flatten().float()
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


@torch.no_grad()
def evaluate_loss(model: HAMModel, windows: torch.Tensor, tau: float = 0.0, batch: int = 8,
                  loss_mask: Optional[torch.Tensor] = None, window: Optional[int] = None) -> float:
    """Mean next-token loss of fixed windows [N, T] at one threshold (tau 0: full cache), or
    for a window model at one window W (None: every token)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    for i in range(0, len(windows), batch):
        ids = windows[i:i + batch].to(model.device)
        mask = None if loss_mask is None else loss_mask[i:i + batch].to(model.device)
        n = (mask[:, 1:].sum().item() if mask is not None else ids[:, 1:].numel())
        total += lm_loss(model(ids, tau=tau, window=window).logits, ids, mask).item() * n
        count += n
    model.train(was_training)
    return total / max(count, 1)
