"""The paper's comparison (docs/DESIGN.md section 7): a Transformer, GDN, a window hybrid and HAM,
one model each under one folder, read on the same tokens at the cache fractions each allows.

    models = load_comparison(default_compare_dir())      # {"transformer": (model, tokenizer), ...}
    rows = compare_losses(models, [ids_a, ids_b])         # [{"model", "kv_fraction", "loss"}, ...]

`compare_recall` does the same on the recall task (ham_core.data.recall_task) with one recall
model per architecture (assets/compare/recall/<architecture>/): accuracy against KV fraction.

The Transformer is read with its full cache (1.0), GDN with none (0.0); the window model at
W = f x T and HAM at the threshold that caches f of a full cache (found per text, as the model
card's table does), for f in COMPARE_FRACTIONS and the full cache. A row's loss is nats per
predicted token over all the texts and its kv_fraction the cache actually used, both weighted
by the texts' predicted tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

from ham_core.data.recall_task import TASK, recall_batch
from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import ASSETS, WEIGHTS, load_bundle, load_model
from ham_core.model.model import HAMModel, next_token_nll
from ham_core.model.ops.attention import visibility_mask

from .sweep import fraction_sweep
from .thresholds import taus_for_fractions

COMPARED_ARCHITECTURES = ("transformer", "gdn", "window", "ham")   # also their folders' names
COMPARE_FRACTIONS = (0.1, 0.25, 0.5)


def default_compare_dir() -> Path:
    """Where the shipped comparison models live, one folder per architecture."""
    return ASSETS / "compare"


def default_recall_compare_dir() -> Path:
    """The recall-task models of the comparison, one folder per architecture."""
    return default_compare_dir() / "recall"


def reading_fractions(architecture: str) -> Tuple[float, ...]:
    """The cache fractions an architecture can be read at."""
    return {"transformer": (1.0,), "gdn": (0.0,)}.get(architecture, COMPARE_FRACTIONS + (1.0,))


def _found(directory: Path, what: str) -> List[str]:
    """The architectures with a model under `directory`; a HAMInputError naming what to do when none."""
    found = [name for name in COMPARED_ARCHITECTURES if (directory / name / WEIGHTS).is_file()]
    if not found:
        absent = "" if directory.is_dir() else " (no such folder)"
        raise HAMInputError(
            f"no comparison models in {directory}{absent}: it needs a folder per architecture "
            f"({', '.join(COMPARED_ARCHITECTURES)}) holding {what}; "
            f"train them (docs/TRAINING.md, \"The paper's comparison\") or pass --models DIR")
    return found


def _check_architecture(model: HAMModel, folder: Path, name: str) -> HAMModel:
    if model.cfg.architecture != name:
        raise HAMInputError(f"{folder} holds a {model.cfg.architecture!r} model, "
                            f"not {name!r} (its config.json says architecture {model.cfg.architecture!r})")
    return model


def load_comparison(directory: str | Path) -> Dict[str, tuple]:
    """{architecture: (model, tokenizer)} for each of COMPARED_ARCHITECTURES with a model in
    `directory`/<architecture>/. A HAMInputError when the folder is missing or holds none of
    them, or a folder's model is of another architecture."""
    directory = Path(directory)
    models = {}
    for name in _found(directory, "model.safetensors, config.json and tokenizer.json"):
        model, tokenizer = load_bundle(directory / name)
        models[name] = (_check_architecture(model, directory / name, name), tokenizer)
    return models


def load_recall_comparison(directory: str | Path) -> Dict[str, HAMModel]:
    """{architecture: recall-task model} from `directory`/<architecture>/ (load_comparison's
    rules; the recall task needs no tokenizer)."""
    directory = Path(directory)
    return {name: _check_architecture(load_model(directory / name), directory / name, name)
            for name in _found(directory, "a recall-task model (model.safetensors, config.json)")}


def same_tokens(models: Dict[str, tuple], texts: Sequence[str]) -> List[torch.Tensor]:
    """Each text's token ids [T], the same for every model (a HAMInputError when two tokenizers
    split a text differently: the comparison needs the same tokens for all)."""
    first, (_, tokenizer) = next(iter(models.items()))
    ids = [tokenizer.encode(text) for text in texts]
    for name, (_, other) in models.items():
        if any(other.encode(text) != want for text, want in zip(texts, ids)):
            raise HAMInputError(f"the {name} and {first} models' tokenizers split the text differently; "
                                f"the comparison needs one tokenizer for all")
    return [torch.tensor(i) for i in ids]


@torch.no_grad()
def _readings(model: HAMModel, ids: torch.Tensor) -> List[Tuple[float, float]]:
    """(kv_fraction, mean loss) of one text [T] at each of reading_fractions(architecture)."""
    arch, T = model.cfg.architecture, ids.shape[0]
    fractions = reading_fractions(arch)
    if arch == "ham":
        return [(row.kv_fraction, row.loss) for row in fraction_sweep(model, ids, fractions, ["ham"])]
    ids = ids[None].to(model.device)
    out = []
    for f in fractions:
        reading = model(ids, window=round(f * T) if arch == "window" else None)
        out.append((float(reading.kv_fraction[0]), next_token_nll(reading.logits, ids).mean().item()))
    return out


def compare_losses(models: Dict[str, tuple], texts: Sequence[torch.Tensor]) -> List[dict]:
    """Rows {"model", "kv_fraction", "loss"}, architecture-major in COMPARED_ARCHITECTURES order,
    fractions ascending, over `texts` (token ids [T], each at least 2 tokens long)."""
    for ids in texts:
        if ids.numel() < 2:
            raise HAMInputError("a text of one token has no next token to predict: give a longer text")
    rows = []
    for name, (model, _) in models.items():
        fractions = reading_fractions(name)
        kv, loss, count = [0.0] * len(fractions), [0.0] * len(fractions), 0
        for ids in texts:
            n = ids.numel() - 1                                  # predicted tokens
            for i, (f, l) in enumerate(_readings(model, ids)):
                kv[i] += f * n
                loss[i] += l * n
            count += n
        rows += [{"model": name, "kv_fraction": kv[i] / count, "loss": loss[i] / count} for i in range(len(fractions))]
    return rows


@torch.no_grad()
def cache_by_position(model: HAMModel, ids: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """[T] keys the model's KV cache holds after each token of ids [T], summed over layers: the
    Transformer's diagonal, GDN's 0, the window's min(t, W) with W = fraction x T, and HAM at
    the threshold caching `fraction` of the text, growing where the text is new to its RNN.
    (The keys query t can read are exactly what the compact-cache decode holds after token t.)"""
    arch, T = model.cfg.architecture, ids.shape[0]
    reading = {"window": round(fraction * T) if arch == "window" else None}
    if arch == "ham":
        reading["tau"] = taus_for_fractions(model, ids, [fraction])[0]
    out = model(ids[None].to(model.device), **reading)
    return torch.stack([visibility_mask(v, T).sum(-1)[0] for v in out.visible]).sum(0).cpu()


def held_out_recall() -> dict:
    """The recall comparison's task as `compare --recall` reads it: the shipped TASK (pairs,
    length, queries) on the held-out seeds (a list), compare_recall's keywords."""
    from .evaluate import RECALL_EVAL_SEEDS

    return {**TASK, "seeds": list(RECALL_EVAL_SEEDS)}


@torch.no_grad()
def compare_recall(models: Dict[str, HAMModel], fractions: Sequence[float] = COMPARE_FRACTIONS, *,
                   n_pairs: int, length: int, seeds: Sequence[int], n_queries=None) -> List[dict]:
    """Rows {"model", "kv_fraction", "accuracy"} on the seeded recall texts: each architecture at
    reading_fractions(architecture) of `fractions` plus the full cache (window: W = f x length;
    HAM: one threshold for all the texts caching at most f, as the recall lab reads it)."""
    from .recall import answer_accuracy, shared_tau

    ids, answers = recall_batch(list(seeds), n_pairs, length, n_queries)
    rows = []
    for name, model in models.items():
        x, a = ids.to(model.device), answers.to(model.device)
        own = reading_fractions(name)
        for f in (own if len(own) == 1 else tuple(fractions) + (1.0,)):
            if name == "ham":
                out = model(x, tau=shared_tau(model, x, f))
            else:
                out = model(x, window=round(f * length) if name == "window" else None)
            rows.append({"model": name, "kv_fraction": out.kv_fraction.mean().item(),
                         "accuracy": answer_accuracy(out.logits, x, a)})
    return rows


@torch.no_grad()
def where_they_differ(models: Dict[str, tuple], ids: torch.Tensor, fraction: float = 0.25, top: int = 8) -> List[dict]:
    """The `top` tokens of ids [T] on which the Transformer beats GDN most, and whether HAM (at
    the threshold caching `fraction`) had cached what the Transformer read for them.

    Each row: position (of the predicted token), the two losses and HAM's (nats), and the
    Transformer's strongest read for it (the query before it, any layer and head): its key
    position, its weight, and whether HAM's cache held that key in the same layer. Needs the
    transformer, gdn and ham models."""
    need = [name for name in ("transformer", "gdn", "ham") if name not in models]
    if need:
        raise HAMInputError(f"where the architectures differ needs the {', '.join(need)} model(s) too")
    x = ids[None]
    transformer, gdn, ham = (models[name][0] for name in ("transformer", "gdn", "ham"))
    full = transformer(x.to(transformer.device), attention="all")
    rnn = gdn(x.to(gdn.device))
    tau = taus_for_fractions(ham, ids, [fraction])[0]
    hybrid = ham(x.to(ham.device), tau=tau)
    loss = {name: next_token_nll(out.logits, x.to(out.logits.device))[0].cpu()
            for name, out in (("transformer", full), ("gdn", rnn), ("ham", hybrid))}
    gain = loss["gdn"] - loss["transformer"]                       # [T - 1]: target t + 1 predicted at t
    reads = torch.stack([w[0].amax(0) for w in full.attention]).cpu()   # [L, T, T]: strongest head per layer
    rows = []
    for t in gain.argsort(descending=True)[:top].tolist():
        layer, key = divmod(int(reads[:, t].flatten().argmax()), ids.shape[0])
        rows.append({"position": t + 1, "transformer": float(loss["transformer"][t]), "gdn": float(loss["gdn"][t]),
                     "ham": float(loss["ham"][t]), "read_layer": layer, "read_key": key,
                     "read_weight": float(reads[layer, t, key]), "ham_cached": bool(hybrid.cached[0, layer, key])})
    return rows
