"""The tables of assets/MODEL_CARD.md, reproducible by anyone (`python -m ham_core evaluate`).

- Held-out English: mean loss (nats/token) and perplexity of each selection policy at cache
  fractions 0, 5, 10, 25, 50 and 100%, over fixed windows of the validation split (HAM's
  threshold is found per window to hit each fraction; the other policies keep as many keys).
- The fixed validation slice shipped in assets/lm/valid_slice.txt: full-cache loss, which a
  test reproduces to 1e-4.
- Recall lab: accuracy of each policy at the same fractions, on seeds not used in training.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ham_core.data.corpus import default_corpus_dir, load_documents
from ham_core.data.recall_task import load_task
from ham_core.data.windows import encode_documents, fixed_windows
from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import load_model
from ham_core.model.loss import evaluate_loss
from ham_core.model.policies import TAU_OFF
from ham_core.progress import Progress

from .recall import recall_accuracy
from .sweep import fraction_sweep

SLICE_FILE = "valid_slice.txt"
SLICE_LENGTH = 256          # tokens per window of the fixed slice
RECALL_EVAL_SEEDS = range(10_000, 10_016)   # training draws seeds far below these


def slice_windows(tokenizer, text: str, length: int = SLICE_LENGTH) -> torch.Tensor:
    """Non-overlapping windows [N, length] of a text's tokens (the tail that does not fill one is dropped)."""
    ids = torch.tensor(tokenizer.encode(text))
    n = len(ids) // length
    if n == 0:
        raise HAMInputError(f"validation slice has {len(ids)} tokens, fewer than one window of {length}")
    return ids[: n * length].view(n, length)


def slice_loss(model, tokenizer, model_dir: Path) -> float:
    """Full-cache loss on the shipped fixed validation slice."""
    path = Path(model_dir) / SLICE_FILE
    if not path.is_file():
        raise HAMInputError(f"validation slice not found: {path}")
    return evaluate_loss(model, slice_windows(tokenizer, path.read_text(encoding="utf-8")), tau=0.0)


def heldout_windows(tokenizer, model_dir: Path, n_windows: int, length: int,
                    source: Optional[str] = None) -> tuple[torch.Tensor, str]:
    """Validation windows: from the built corpus's valid split if present (only `source`'s
    documents when given, e.g. "brown"), else the shipped slice."""
    try:
        docs = load_documents("valid", default_corpus_dir(), source=source)
        which = f"{source} documents of the " if source else ""
        described = f"{which}corpus valid split ({len(docs)} documents)"
    except HAMInputError:
        if source:
            raise
        docs = [(Path(model_dir) / SLICE_FILE).read_text(encoding="utf-8")]
        described = f"{SLICE_FILE} (corpus not built)"
    return fixed_windows(encode_documents(tokenizer, docs), length, n_windows), described


def lm_table(model, windows: Sequence[torch.Tensor], fractions: Sequence[float], policies: Sequence[str],
             progress: Optional[Progress] = None) -> List[dict]:
    """Each (policy, target fraction) over the windows ([N, T], or texts [T] of any lengths),
    policy-major: mean kv_fraction, loss and perplexity; `se_vs_ham`, the standard error of the
    per-window difference from HAM at the same target (paired: the windows are the same); and
    `gap_recovered`, the share of the no-cache -> full-cache loss gap the policy recovers (needs
    fractions 0 and 1)."""
    per_window: Dict[tuple, List[tuple]] = defaultdict(list)      # (policy, f) -> [(kv, loss)] per window
    for i, ids in enumerate(windows):
        rows = fraction_sweep(model, ids, fractions, policies)   # policy-major, fraction order
        for k, row in enumerate(rows):
            per_window[(row.policy, fractions[k % len(fractions)])].append((row.kv_fraction, row.loss))
        if progress:
            progress(i + 1)
    mean = {key: torch.tensor(v, dtype=torch.float64).mean(0) for key, v in per_window.items()}
    none = next((mean[k][1].item() for k in mean if k[1] == 0.0), None)
    full = next((mean[k][1].item() for k in mean if k[1] == 1.0), None)
    table = []
    for (policy, f), values in per_window.items():
        kv, loss = mean[(policy, f)].tolist()
        row = {"policy": policy, "target": f, "kv_fraction": kv, "loss": loss, "perplexity": math.exp(loss)}
        if ("ham", f) in per_window and len(values) > 1:
            diff = torch.tensor([a[1] - b[1] for a, b in zip(values, per_window[("ham", f)])], dtype=torch.float64)
            row["se_vs_ham"] = (diff.std() / math.sqrt(len(diff))).item()
        if none is not None and full is not None and none != full:
            row["gap_recovered"] = (none - loss) / (none - full)
        table.append(row)
    return table


def cache_gap(model, windows: Sequence[torch.Tensor]) -> dict:
    """No-cache minus full-cache loss over windows (each [T], lengths may differ): mean and its
    standard error over windows."""
    diffs = []
    for ids in windows:
        ids = ids[None]
        diffs.append(evaluate_loss(model, ids, tau=TAU_OFF) - evaluate_loss(model, ids, tau=0.0))
    d = torch.tensor(diffs, dtype=torch.float64)
    return {"gap": d.mean().item(), "se": (d.std() / math.sqrt(len(d))).item() if len(d) > 1 else None,
            "windows": len(d)}


def chars_per_token(tokenizer, windows: torch.Tensor) -> float:
    """Characters per predicted token over windows [N, T] (the first token of each is not predicted).

    Loss per token depends on the tokenizer; loss per character does not, so two models with
    different tokenizers are compared on held-out text by nats/token / chars_per_token."""
    chars = sum(len(tokenizer.decode(w[1:].tolist())) for w in windows)
    return chars / (windows.shape[0] * (windows.shape[1] - 1))


def names_texts(folder: Path) -> List[str]:
    """The held-out texts where names and facts recur (assets/eval/names/*.txt)."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise HAMInputError(f"no .txt files in {folder}")
    return [f.read_text(encoding="utf-8") for f in files]


def recall_table(recall_dir: Path, fractions: Sequence[float], policies: Sequence[str]) -> List[dict]:
    model = load_model(recall_dir)
    task = load_task(recall_dir)
    rows = recall_accuracy(model, policies=policies, fractions=list(fractions),
                           n_pairs=task["n_pairs"], length=task["length"], seeds=RECALL_EVAL_SEEDS)
    return [{"policy": r.policy, "target": r.target, "kv_fraction": r.kv_fraction,
             "accuracy": r.accuracy} for r in rows if r.target is not None]
