"""Train the recall-lab model and ship it to assets/recall/.

    python -m ham_core train-recall --out /work/runs/recall --steps 3600 --threads 1
    python -m ham_core train-recall --out /work/runs/recall --ship assets/recall --no-train   # copy only

The model is a small HAM (recall_task.recall_config: 2 layers of 2 heads of 16, d_model 64, 77k parameters: an RNN state
of 2 x 16 x 16 per layer, too small for 32 pairs) trained with ham_core.training.train.train. Each
batch draws a cache fraction; until HAM_ONLY of the steps every batch routes the HAM way, then
a quarter of the batches use random / window / sinks / hola at that memory (as for the
English model), so no policy is out of distribution at evaluation.

What made it learn (3,600 steps, ~9 minutes on one CPU thread):
- The loss counts only the answers. Every other target is unpredictable by construction (the
  keys and values, which key is asked next) or trivial (the filler); with weight 0.1 on all
  of them, or on the filler only, 128-token texts with 8 pairs were still at chance after
  400-500 steps at full cache, while answers-only training broke through at ~300-450. So the
  model predicts answers well and nothing else; what it caches (RNN surprise) does not
  depend on the loss weights.
- A curriculum on length at a fixed pair density (64 tokens / 5 pairs first, then 128, 256,
  384) and every key queried. A first run without it (128 tokens first, half the keys
  queried, policies mixed in from the start) was still at chance after 900 steps. On short
  texts the RNN learns the recall circuit first (the query, key and value projections are
  shared with attention); once texts outgrow its state, attention takes over.
- Enough pairs. With 24 pairs in 384 tokens the RNN alone still recalled 58-66% (the issue
  asks <= 60%); 32 pairs bring it to ~46% while HAM stays at 100%.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Callable

import torch

from ham_core.data.recall_task import (TASK, TASK_FILE, TRAIN_SEED_OFFSET, VOCAB_SIZE, answer_mask, recall_batch,
                                       recall_config)
from ham_core.model.checkpoint import CONFIG, WEIGHTS

PAIR_SPACING = TASK["length"] // TASK["n_pairs"]     # shorter texts keep the same density
LENGTHS = (64, 128, 256, 384)
STAGES = (0.08, 0.2, 0.35)    # training progress at which 128, 256, then 384 tokens join
HAM_ONLY = 0.3                # before this progress no batch uses the other policies
TOKENS_PER_STEP = 2048


def recall_batches(steps: int, seed: int = 0) -> Callable[[int], torch.Tensor]:
    """batches(step) -> ids [TOKENS_PER_STEP // T, T], every pair queried.

    A curriculum on length, keeping one pair per PAIR_SPACING tokens: T = 64 (4 pairs) first;
    at each of STAGES the next of LENGTHS joins, drawn half the time, the earlier ones share
    the rest. Seeds are TRAIN_SEED_OFFSET + a counter, never a held-out seed."""

    def batches(step: int) -> torch.Tensor:
        allowed = LENGTHS[: 1 + sum(step >= s * steps for s in STAGES)]
        rng = random.Random(seed * 1_000_003 + step)
        length = allowed[-1] if len(allowed) == 1 or rng.random() < 0.5 else rng.choice(allowed[:-1])
        n_pairs, batch = length // PAIR_SPACING, TOKENS_PER_STEP // length
        first = TRAIN_SEED_OFFSET + (seed * steps + step) * 64
        ids, _ = recall_batch(range(first, first + batch), n_pairs, length, n_pairs)
        return ids

    return batches


def recall_loss_mask(ids: torch.Tensor) -> torch.Tensor:
    """Weight 1 on the answers, 0 on every other target (see the module docstring)."""
    return answer_mask(ids).float()


def ship(run_dir: str | Path, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Copy model.safetensors + config.json from a run and write task.json beside them."""
    run, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG):
        shutil.copyfile(run / name, out / name)
    task = dict(TASK, vocab_size=VOCAB_SIZE, generator="ham_core.data.recall_task.make_recall(n_pairs, length, seed, n_queries)",
                train_seeds=f">= {TRAIN_SEED_OFFSET}", held_out_seeds=f"< {TRAIN_SEED_OFFSET}", **(extra or {}))
    (out / TASK_FILE).write_text(json.dumps(task, indent=2) + "\n")
    return out


def train_recall(run_dir: str | Path, steps: int = 3600, lr: float = 3e-3, seed: int = 0,
                 quiet: bool = False, architecture: str = "ham") -> dict:
    """Train (or resume) with ham_core.training.train.train. Until HAM_ONLY of the steps every batch
    routes the HAM way (at a random cache fraction); after that a quarter of the batches use
    random / window / sinks / hola at matched memory, as for the English model. Another
    `architecture` reads the same batches and routes its own way (ham_core.model.routes)."""
    from .train import TrainSettings, train

    def settings(policy_share: float) -> TrainSettings:
        return TrainSettings(steps=steps, batch=TOKENS_PER_STEP // TASK["length"], length=TASK["length"],
                             lr=lr, warmup=min(100, steps // 10 + 1), weight_decay=0.01, save_every=50,
                             eval_every=10 ** 9, policy_share=policy_share, seed=seed,
                             # the task itself is a lookup: no copy curriculum, gates start as they were
                             copy_until=0.0, full_steps=0, mix_ramp=0, span_share=0.0, attn_gate_bias=0.0,
                             watch_every=0, route_by="fraction")    # how the shipped recall model was trained

    batches, cfg = recall_batches(steps, seed), recall_config(architecture)
    train(cfg, batches, run_dir, settings(0.0), loss_mask_fn=recall_loss_mask, quiet=quiet,
          stop_at=round(HAM_ONLY * steps))
    return train(cfg, batches, run_dir, settings(0.25), loss_mask_fn=recall_loss_mask, quiet=quiet)
