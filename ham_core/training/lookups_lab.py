"""Watch a lookup form: a tiny HAM learns, in under a minute on one CPU thread, to read its cache.

The task is copying: B sequences of `half` random symbols, each read twice. Nothing in the first
reading is predictable; in the second, the next symbol is the one that followed the current
symbol the first time, so a lookup in the cache (query: this symbol; key: the symbol before,
which the layer's short convolution hands to every key) predicts it exactly. The loss of the
second reading sits on a plateau at ln(vocab) while the reads are a smear, then drops in a jump
when one head's reads lock onto the right key; that head's attention gate opens and its
temperature climbs. With a threshold above 2 nothing is cached and the RNN alone (a state of
head_dim x head_dim per head, too small for `half` pairs) stays on the plateau.

`train_lookups(settings)` is a generator of LabStep records (pure: everything follows from the
seed), used by `python -m ham_core lookups-lab` and the app's "Learning to look up" page. A
recorded run (`record` / `load_run`) replays the same views without training.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import torch

from ham_core.errors import HAMInputError
from ham_core.model.config import HAMConfig
from ham_core.model.health import random_words
from ham_core.model.loss import lm_loss
from ham_core.model.model import HAMModel

SYMBOLS = "abcdefghijklmnopqrstuvwxyz012345"   # one printable symbol per token id
RUN_FORMAT = 1                                  # version of the recorded-run JSON


@dataclass(frozen=True)
class LabSettings:
    """One lab run. Sizes were chosen so the jump comes at step ~150-350 (seeds 0-3) and 600
    steps take ~15 s on one idle thread (docs/LOOKUPS_LAB.md)."""

    seed: int = 0
    steps: int = 600
    tau: float = 0.0             # the training threshold: 0 caches every token, above 2 none
    half: int = 24               # symbols per reading; a sequence is 2 x half tokens
    batch: int = 16
    lr: float = 3e-3
    warmup: int = 30
    gate_bias: float = -3.0      # attention gates start nearly shut (0.05), so their opening shows
    log_every: int = 5           # a LabStep every this many steps
    reads_every: int = 25        # ... with the example's reads every this many

    def __post_init__(self) -> None:
        for name in ("steps", "half", "batch", "warmup", "log_every", "reads_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise HAMInputError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 31:
            raise HAMInputError(f"seed must be an integer in [0, 2^31), got {self.seed!r}")
        if not (isinstance(self.tau, (int, float)) and math.isfinite(self.tau) and self.tau >= 0):
            raise HAMInputError(f"tau must be a number >= 0, got {self.tau!r}")
        if self.steps > 20_000:
            raise HAMInputError(f"steps must be at most 20,000 (the jump comes in the first few hundred), "
                                f"got {self.steps}")
        if self.half > 64:
            raise HAMInputError(f"half must be at most 64, got {self.half}")


def lab_config(half: int) -> HAMConfig:
    """The tiny HAM: one layer of two heads of 16, d_model 32, 32 symbols (~9k parameters)."""
    return HAMConfig(vocab_size=len(SYMBOLS), d_model=32, n_layers=1, n_heads=2, head_dim=16,
                     mlp_hidden=64, chunk_size=16, max_tokens=2 * half)


@dataclass
class LabReads:
    """The example's reads at one step: for every query of the second reading, its attention
    weight on every key it can see, in percent, per head: weights[h][i][j] for query half + i,
    key j <= half + i (what is left of 100 went to the sink)."""

    weights: List[List[List[int]]]   # [H, half, half + i + 1]


@dataclass
class LabStep:
    """What one logged step shows (the reading layer is the last one)."""

    step: int                    # optimizer steps done
    loss: float                  # second reading of this step's batch, nats/token
    attn_gate: List[float]       # [H] each head's mean attention gate g^A on the batch
    temperature: List[float]     # [H] each head's logit scale (HAMLayer.sharpness)
    cache_share: float           # share of the batch's tokens the threshold lets into the cache
    reads: Optional[LabReads] = None

    @property
    def mean_gate(self) -> float:
        return sum(self.attn_gate) / len(self.attn_gate)


def copy_batch(gen: torch.Generator, batch: int, half: int) -> torch.Tensor:
    """ids [batch, 2 * half]: random symbols, each sequence read twice."""
    first = random_words((batch, half), len(SYMBOLS), gen)
    return torch.cat([first, first], 1)


def second_reading_mask(batch: int, half: int) -> torch.Tensor:
    """[batch, 2 * half] weight 1 on the targets a lookup can predict (the second reading, past its first symbol)."""
    mask = torch.zeros(batch, 2 * half)
    mask[:, half + 1:] = 1.0
    return mask


def example_ids(settings: LabSettings) -> torch.Tensor:
    """The one sequence whose reads are drawn: ids [1, 2 * half], fixed by the seed."""
    return copy_batch(torch.Generator().manual_seed(settings.seed + 7_919), 1, settings.half)


def symbols(ids) -> List[str]:
    return [SYMBOLS[int(i)] for i in ids]


def right_key(query: int, half: int) -> int:
    """Where the symbol a query at position `query` of the second reading must predict sits: the
    one that followed this symbol in the first reading. Keys and values pass through a short
    convolution (conv_size 4), so a lookup may also land one or two keys later, whose key still
    holds this symbol and whose value still holds the answer (LOOKUP_REACH)."""
    return query - half + 1


LOOKUP_REACH = 2    # a lookup reads right_key .. right_key + LOOKUP_REACH


def build_model(settings: LabSettings) -> HAMModel:
    torch.manual_seed(settings.seed)
    model = HAMModel(lab_config(settings.half))
    H = model.cfg.n_heads
    with torch.no_grad():
        for block in model.blocks:
            block.ham.gate_proj.bias[H:] = settings.gate_bias     # the g^A half of the gate bias
    return model


@torch.no_grad()
def example_reads(model: HAMModel, ids: torch.Tensor, tau: float) -> LabReads:
    """The reading layer's weights on the example, queries of the second reading only."""
    was_training = model.training
    model.eval()
    weights = model(ids, tau=tau, attention="all").attention[-1][0]      # [H, T, T]
    model.train(was_training)
    half = ids.shape[1] // 2
    percent = (weights[:, half:] * 100).round().int().tolist()
    return LabReads([[row[:half + i + 1] for i, row in enumerate(head)] for head in percent])


def train_lookups(settings: LabSettings, model: Optional[HAMModel] = None) -> Iterator[LabStep]:
    """Train from scratch, yielding a LabStep every log_every steps (and at step 0, before any
    update); the caller may stop at any time. Deterministic for a seed on one thread."""
    model = build_model(settings) if model is None else model
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(settings.seed + 1)
    mask = second_reading_mask(settings.batch, settings.half)
    example = example_ids(settings)
    layer = model.blocks[-1].ham
    for step in range(settings.steps + 1):
        ids = copy_batch(gen, settings.batch, settings.half)
        out = model(ids, tau=settings.tau)
        loss = lm_loss(out.logits, ids, mask)
        if step % settings.log_every == 0 or step == settings.steps:
            reads = example_reads(model, example, settings.tau) \
                if step % settings.reads_every == 0 or step == settings.steps else None
            gates = out.attn_gate[:, -1].mean((0, 1)).tolist()
            yield LabStep(step, round(loss.item(), 4), [round(g, 4) for g in gates],
                          [round(t, 3) for t in layer.sharpness().tolist()],
                          round(out.cached[:, -1].float().mean().item(), 4), reads)
        if step == settings.steps:
            return
        for group in opt.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / settings.warmup)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


@dataclass
class Jump:
    """Where the loss fell off its plateau: the first logged step below the midpoint between the
    plateau (the first logged loss) and the floor (the lowest loss later), with the loss and the
    mean gate before (at the last step of the plateau, within 10% of the plateau) and after (at
    the end)."""

    step: int
    loss_before: float
    loss_after: float
    gate_before: List[float]
    gate_after: List[float]
    plateau_end: int


def find_jump(steps: List[LabStep]) -> Optional[Jump]:
    """The jump of a run, or None when the loss never fell halfway (the no-cache control)."""
    if len(steps) < 3:
        return None
    plateau, floor = steps[0].loss, min(s.loss for s in steps)
    if plateau - floor < 0.25 * plateau:
        return None
    middle = (plateau + floor) / 2
    at = next(i for i, s in enumerate(steps) if s.loss < middle)
    before = max((i for i in range(at) if steps[i].loss >= 0.9 * plateau), default=0)
    end = steps[-1]
    return Jump(steps[at].step, steps[before].loss, end.loss, steps[before].attn_gate, end.attn_gate,
                steps[before].step)


# Recorded runs: {"format", "settings", "symbols", "example", "steps": [...]}

def run_record(settings: LabSettings, steps: List[LabStep]) -> dict:
    return {"format": RUN_FORMAT, "settings": asdict(settings), "example": example_ids(settings)[0].tolist(),
            "steps": [asdict(s) for s in steps]}


def save_run(path: str | Path, settings: LabSettings, steps: List[LabStep]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_record(settings, steps), separators=(",", ":")) + "\n")
    return path


@dataclass
class RecordedRun:
    settings: LabSettings
    example: List[int]
    steps: List[LabStep] = field(default_factory=list)


def load_run(path: str | Path) -> RecordedRun:
    """A run written by save_run; anything else is a HAMInputError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != RUN_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {RUN_FORMAT}")
        settings = LabSettings(**data["settings"])
        steps = [LabStep(**{**s, "reads": LabReads(**s["reads"]) if s.get("reads") else None}) for s in data["steps"]]
        if not steps:
            raise ValueError("no steps")
        return RecordedRun(settings, [int(i) for i in data["example"]], steps)
    except FileNotFoundError:
        raise HAMInputError(f"recorded run not found: {path}") from None
    except (ValueError, TypeError, KeyError, AttributeError, HAMInputError) as exc:
        raise HAMInputError(f"{path} is not a recorded lookups-lab run: {exc}") from None

