"""The recall lab's computations (ham_core.analysis.recall on the synthetic task of
ham_core.data.recall_task): one sequence inspected at a cache target, and every policy's
accuracy against cache size, shipped for the default settings (app.engine.shipped) or computed
once per server (the shared store; sessions asking for the same settings wait for that one
computation)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from app.engine import models, shipped
from app.engine.store import VIEW, compute_gate, results_store
from ham_core.analysis import recall
from ham_core.analysis.thresholds import DEFAULT_FRACTIONS
from ham_core.data import recall_task

RecallInspection = recall.RecallInspection
TARGETS = tuple(DEFAULT_FRACTIONS)                 # the cache targets the lab offers
N_KEYS = recall_task.N_KEYS                        # the most pairs a sequence can hold
HELD_OUT_SEEDS = recall_task.TRAIN_SEED_OFFSET     # training used seeds from here on: those below are held out


def inspect(model, n_pairs: int, length: int, seed: int, target: float) -> RecallInspection:
    """One sequence of the task read at the threshold that caches `target` of it."""
    return recall.inspect_recall(model, n_pairs, length, seed, target)


def shipped_rows(settings: dict) -> Optional[list]:
    """The accuracy rows shipped for these settings and the recall model in use, or None."""
    return shipped.lookup_recall(models.recall_dir(), settings)


def accuracy_rows(model, n_pairs: int, length: int, first_seed: int, n: int,
                  progress: Optional[Callable[[float, str], None]] = None) -> list:
    """Accuracy vs cache for every policy: shipped when they match the model and settings, else
    computed once on this server, in a compute slot (someone pressed the button and waits)."""
    settings = dict(n_pairs=n_pairs, length=length, first_seed=first_seed, n=n)

    def compute() -> list:
        found = shipped_rows(settings)
        if found:
            return found
        with compute_gate().slot(VIEW):
            return shipped.accuracy_rows(model, **settings, progress=progress)

    return results_store().get_or_compute(("recall", models.recall_key(), n_pairs, length, first_seed, n), compute)


def task_settings(recall_dir: Path) -> dict:
    """The lab's settings on first view for the recall model in `recall_dir` (those shipped)."""
    return shipped.recall_settings(recall_task.load_task(recall_dir))


def rows_to_ship(recall_dir: Path) -> tuple[dict, list]:
    """(settings, accuracy rows) of the recall model in `recall_dir` at its first-view settings."""
    from ham_core.model.checkpoint import load_model

    model = load_model(recall_dir)
    settings = task_settings(recall_dir)
    return settings, shipped.accuracy_rows(model, **settings)
