"""Train a HAM language model: a plain loop (AdamW, warmup + cosine, clipping, validation,
checkpoints, resume), runnable as one process or under `torchrun --nproc_per_node=N` (DDP;
gloo on the CPU, nccl on the GPU).

    python -m ham_core train --out runs/lm --steps 3000
    torchrun --nproc_per_node=2 -m ham_core train --out runs/lm

A run folder holds model.safetensors + config.json + tokenizer.json (a loadable checkpoint)
and train_state.safetensors / train_state.json (optimizer and step, for resuming).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from ham_core.errors import HAMInputError
from ham_core.model.calibration import RunningScale
from ham_core.model.checkpoint import TOKENIZER, load_model, save_checkpoint
from ham_core.model.config import HAMConfig
from ham_core.model.loss import evaluate_loss, lm_loss
from ham_core.model.model import HAMModel
from ham_core.model.policies import TAU_OFF
from ham_core.model.health import attention_health, copy_probe
from ham_core.progress import Progress

from .curriculum import COPY, Curriculum


STATE_JSON = "train_state.json"    # step, settings and log; the optimizer is in train_state.safetensors


def _about(text: str) -> dict:
    return {"help": text}


@dataclass
class TrainSettings:
    """Every option of a training run. The `train` command's flags are built from these fields
    (type, default and the help in each field's metadata), and train_state.json keeps them."""

    steps: int = field(default=3000, metadata=_about("optimizer steps in the whole schedule"))
    batch: int = field(default=16, metadata=_about("windows per step (per process)"))
    length: int = field(default=512, metadata=_about("tokens per window"))
    lr: float = field(default=2e-3, metadata=_about("peak learning rate (AdamW)"))
    min_lr_ratio: float = field(default=0.1, metadata=_about("the cosine decay ends at this share of lr"))
    warmup: int = field(default=150, metadata=_about("steps of linear warm-up"))
    weight_decay: float = field(default=0.1, metadata=_about("AdamW weight decay of the matrices"))
    clip: float = field(default=1.0, metadata=_about("gradient-norm clipping"))
    policy_share: float = field(default=0.25, metadata=_about(
        "share of batches routed by random / window / sinks / hola instead of HAM"))
    eval_every: int = field(default=250, metadata=_about("steps between validations"))
    save_every: int = field(default=100, metadata=_about("steps between checkpoints"))
    seed: int = field(default=0, metadata=_about("seed of the weights, the batches and the routes"))
    init_from: Optional[str] = field(default=None, metadata=_about(
        "start from this trained model folder (a new schedule and optimizer)"))
    repeat_share: float = field(default=0.0, metadata=_about(
        "share of windows with a span copied further on (teaches cache lookups)"))
    valid_windows: int = field(default=32, metadata=_about("held-out windows scored at each validation"))
    # The curriculum that gets the model to read its cache (ham_core/training/curriculum.py).
    copy_until: float = field(default=1.0, metadata=_about(
        "copy phase until the copy probe's second reading costs at most this many nats/token "
        "with a full cache (0: no copy phase)"))
    copy_rows: float = field(default=1.0, metadata=_about(
        "share of each copy-phase batch that is random tokens read twice (the rest: prose)"))
    copy_max_steps: int = field(default=3000, metadata=_about(
        "leave the copy phase after this many steps even if the probe has not passed"))
    full_steps: int = field(default=300, metadata=_about(
        "full-cache steps after the copy phase, before the routing mix"))
    mix_ramp: int = field(default=1000, metadata=_about(
        "steps over which the lowest cache fraction drawn falls from 1 to 0"))
    span_share: float = field(default=0.5, metadata=_about(
        "share of prose windows holding a span of random tokens read twice"))
    span_max: int = field(default=64, metadata=_about(
        "longest such span, in tokens (at most a quarter of the window)"))
    attn_gate_bias: float = field(default=2.0, metadata=_about(
        "a fresh model's attention gates start at sigmoid(this) (2: 0.88, open)"))
    reopen_attn_gate: bool = field(default=False, metadata=_about(
        "with init_from: restart the attention gates open, forgetting when they had learned to close"))
    score_gain: bool = field(default=False, metadata=_about(
        "a learned per-channel gain on the attention's query (HOLA's q/k gain), so a lookup can "
        "sharpen; with init_from it is added at 1, the model's function unchanged"))
    score_lr_scale: float = field(default=1.0, metadata=_about(
        "the attention score's temperature and gain learn at this multiple of lr"))
    route_by: str = field(default="threshold", metadata=_about(
        "how HAM batches of the mix cache: 'threshold' (one drawn threshold for every layer, as the app "
        "and evaluate read a model) or 'fraction' (each layer caches the drawn fraction of its tokens)"))
    watch_every: int = field(default=100, metadata=_about(
        "steps between attention-health lines (gates, temperatures, top reads, copy probe); 0: never"))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainSettings":
        """Settings as train_state.json holds them. Runs written before every option was a field
        kept init_from and repeat_share under "extra": those become their fields; keys that
        no field takes (notes such as the recall recipe's) are dropped."""
        names = {f.name for f in fields(cls)}
        flat = {**(data.get("extra") or {}), **{k: v for k, v in data.items() if k != "extra"}}
        if "copy_until" not in flat:   # saved before the curriculum: it goes on as it was trained
            flat = {**_BEFORE_CURRICULUM, **flat}
        if "route_by" not in flat:     # saved before the threshold rule: each layer cached a fraction
            flat["route_by"] = "fraction"
        return cls(**{k: v for k, v in flat.items() if k in names})


# What a run saved before the curriculum existed was trained with: no copy phase, no ramp, no
# random spans, gates as initialised.
_BEFORE_CURRICULUM = {"copy_until": 0.0, "full_steps": 0, "mix_ramp": 0, "span_share": 0.0, "attn_gate_bias": 0.0}


def read_settings(run_dir: str | Path) -> Optional[TrainSettings]:
    """The settings a run folder was trained with, or None when it holds no train state."""
    path = Path(run_dir) / STATE_JSON
    if not path.is_file():
        return None
    try:
        return TrainSettings.from_dict(json.loads(path.read_text()).get("settings", {}))
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise HAMInputError(f"{path} is not a train state this code can read: {exc}") from None


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warmup, then cosine down to min_lr_ratio x lr."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = min((step - s.warmup) / max(s.steps - s.warmup, 1), 1.0)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _save_state(run: Path, model, optimizer, step: int, settings: TrainSettings, log: list,
                copy_passed_at: Optional[int]) -> None:
    """Optimizer moments as safetensors (no pickle) and counters as JSON, written atomically."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                tensors[f"{names[id(p)]}::{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tmp = run / "train_state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(run / "train_state.safetensors")
    info = {"step": step, "settings": asdict(settings), "log": log, "copy_passed_at": copy_passed_at}
    (run / f"{STATE_JSON}.tmp").write_text(json.dumps(info, indent=1))
    (run / f"{STATE_JSON}.tmp").replace(run / STATE_JSON)


def _load_state(run: Path, model, optimizer) -> tuple[int, list, Optional[int]]:
    info = json.loads((run / STATE_JSON).read_text())
    tensors = load_file(str(run / "train_state.safetensors"))
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        name, slot = key.split("::")
        optimizer.state[params[name]][slot] = value
    # A run saved before the curriculum existed was trained under the routing mix throughout.
    return int(info["step"]), info.get("log", []), info.get("copy_passed_at", -10**9)


_SCORE = ("log_temperature", "log_score_gain")     # how sharply attention scores: its own learning rate


def _param_groups(model: HAMModel, settings: TrainSettings) -> list:
    """AdamW groups: matrices (decayed), the attention score's parameters (lr x score_lr_scale),
    the other vectors; each with the multiple of the schedule's lr it learns at."""
    matrices, score, other = [], [], []
    for name, p in model.named_parameters():
        (score if name.rsplit(".", 1)[-1] in _SCORE else matrices if p.dim() >= 2 else other).append(p)
    groups = [{"params": matrices, "weight_decay": settings.weight_decay, "lr_scale": 1.0},
              {"params": score, "weight_decay": 0.0, "lr_scale": settings.score_lr_scale},
              {"params": other, "weight_decay": 0.0, "lr_scale": 1.0}]
    return [g for g in groups if g["params"]]


def open_attention_gates(model: HAMModel, bias: float, forget: bool = False) -> None:
    """Start every attention gate g^A at sigmoid(bias) (with forget, whatever the trained weights
    had learned about when to close it is dropped too), so attention gets gradient from step 1."""
    with torch.no_grad():
        for block in model.blocks:
            rows = block.ham.attention_gate_rows()
            if rows is None:                     # GDN: no attention, no gate to open
                continue
            block.ham.gate_proj.bias[rows] = bias
            if forget:
                block.ham.gate_proj.weight[rows] = 0.0


def add_score_gain(model: HAMModel) -> None:
    """Give a model without one the per-channel query gain, at 1 (its function unchanged). The
    layers share the model's config, so the flag set here is theirs and the checkpoint's."""
    if model.cfg.score_gain or not model.cfg.has_attention:
        return
    model.cfg.score_gain = True
    H, D = model.cfg.n_heads, model.cfg.head_dim
    for block in model.blocks:
        block.ham.log_score_gain = torch.nn.Parameter(torch.zeros(H, D, device=model.device))


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _tokens_before(init_from: Optional[str]) -> int:
    """Tokens the starting weights had already seen (0 for a fresh model)."""
    if not init_from:
        return 0
    from ham_core.model.checkpoint import read_metadata

    return int(read_metadata(init_from).get("tokens", 0))


def train(
    cfg: HAMConfig,
    batches: Callable[[int], torch.Tensor],
    run_dir: str | Path,
    settings: TrainSettings,
    tokenizer=None,
    valid: Optional[torch.Tensor] = None,
    loss_mask_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    quiet: bool = False,
    stop_at: Optional[int] = None,
) -> dict:
    """Train (or resume) into run_dir. batches(step) -> ids [B, T]; returns the last log entry.

    stop_at ends this process early (after a checkpoint), as an interruption would."""
    rank, world = _distributed()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    resuming = (run / STATE_JSON).exists()
    init_from = settings.init_from
    if resuming:
        model = load_model(run)
    elif init_from:             # a new phase (new schedule, new optimizer) from trained weights
        model = load_model(init_from)
        if settings.reopen_attn_gate:
            open_attention_gates(model, settings.attn_gate_bias, forget=True)
        if settings.score_gain:
            add_score_gain(model)
        if cfg.attn_gate_floor > model.cfg.attn_gate_floor:    # asked for on the command line
            model.cfg.attn_gate_floor = cfg.attn_gate_floor        # the layers share this config
    else:
        # its own config: training writes the surprise scales into it
        model = HAMModel(replace(cfg, score_gain=(cfg.score_gain or settings.score_gain) and cfg.has_attention))
        open_attention_gates(model, settings.attn_gate_bias)
    cfg = model.cfg
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, settings), lr=settings.lr, betas=(0.9, 0.95))
    step, log, copy_passed_at = _load_state(run, model, optimizer) if resuming else (0, [], None)
    curriculum = Curriculum(settings, cfg.n_layers, cfg.vocab_size, settings.seed, copy_passed_at,
                            heads=cfg.head_rule, architecture=cfg.architecture)
    probe = copy_probe(cfg.vocab_size, half=min(128, settings.length // 2))
    watch_text = valid[:4, :256] if valid is not None else probe
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    surprise_scale = RunningScale(model)
    if rank == 0 and tokenizer is not None:
        tokenizer.save(run / TOKENIZER)
    bar = Progress(settings.steps, "train", unit="step", start=step) if rank == 0 and not quiet else None
    steps_logged = [e for e in log if "tokens" in e]       # the rest are attention-health entries
    tokens_seen = steps_logged[-1]["tokens"] if steps_logged else _tokens_before(init_from)
    started, entry, session_tokens = time.monotonic(), (steps_logged[-1] if steps_logged else {}), 0
    end = min(settings.steps, stop_at) if stop_at else settings.steps
    while step < end:
        if settings.watch_every and step % settings.watch_every == 0 and (rank == 0 or curriculum.phase(step) == COPY):
            health = attention_health(model, watch_text, probe)       # every rank ends the copy phase alike
            ended = curriculum.passed(step, health.copy_full) if curriculum.phase(step) == COPY else False
            if rank == 0:
                log.append({"step": step, "phase": curriculum.phase(step), "health": health.as_dict()})
                if not quiet:
                    note = " -> copy phase ends" if ended else ""
                    print(f"step {step} [{curriculum.phase(step)}] {health.line()}{note}", flush=True)
        ids = curriculum.batch(step, batches(step)).to(model.device)
        policy, fraction, routes = curriculum.routes(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, settings) * group["lr_scale"]
        out = net(ids, routes=routes)
        loss = lm_loss(out.logits, ids, loss_mask_fn(ids) if loss_mask_fn else None)
        surprise_scale.update(out.layer_surprise)       # every checkpoint is read with calibrated thresholds
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        optimizer.step()
        step += 1
        tokens_seen += ids.numel() * world
        session_tokens += ids.numel() * world
        entry = {"step": step, "loss": round(loss.item(), 4), "phase": curriculum.phase(step - 1),
                 "policy": policy, "fraction": round(fraction, 3),
                 "tokens": tokens_seen, "seconds": round(time.monotonic() - started, 1)}
        if valid is not None and (step % settings.eval_every == 0 or step == settings.steps):
            entry["valid_full"] = round(evaluate_loss(model, valid, tau=0.0), 4)   # GDN: its only reading
            if cfg.has_rnn and cfg.has_attention:      # a hybrid read with no cache: the RNN alone
                entry["valid_rnn"] = round(evaluate_loss(model, valid, tau=TAU_OFF, window=0), 4)
        if rank == 0:
            log.append(entry)
            if bar:
                rate = session_tokens / max(time.monotonic() - started, 1e-9)
                bar(step, note=f"loss {loss.item():.3f} {rate:,.0f} tok/s")
            if step % settings.save_every == 0 or step == end or "valid_full" in entry:
                save_checkpoint(model, run, metadata={"step": step, "tokens": tokens_seen})
                _save_state(run, model, optimizer, step, settings, log, curriculum.copy_passed_at)
            if "valid_full" in entry and not quiet:
                print(json.dumps(entry), flush=True)
    if world > 1:
        dist.barrier()
    return entry
