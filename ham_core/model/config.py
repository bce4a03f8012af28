"""Model configuration: one dataclass that round-trips through config.json."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional

from ham_core.errors import HAMInputError


def physical_memory():
    """Bytes of RAM on this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PB"


_SHARES = ("attn_gate_floor",)        # fields that may be 0 (checked as shares in [0, 1))
HEAD_RULES = ("min", "max", "mean")   # ham_core.model.layer.layer_surprise applies them
LEGACY_HEAD_RULE = "min"              # what every model saved before head_rule existed routed by
# The block's memory (docs/DESIGN.md section 7): which of the two paths a layer has and what its
# attention may read. Every one shares the projections, the short convolution and the SwiGLU.
ARCHITECTURES = {
    "ham": "RNN + attention over the tokens the RNN was surprised by (the method)",
    "transformer": "attention over every token, no RNN path",
    "gdn": "the RNN path alone (Gated DeltaNet), no attention",
    "window": "RNN + attention over the last W tokens (a sliding-window hybrid)",
}


@dataclass
class HAMConfig:
    """Sizes of a HAM language model (docs/DESIGN.md section 2).

    The layer uses n_heads heads of head_dim each; q, k and v all have head_dim channels.
    """

    vocab_size: int = 4096
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    head_dim: int = 64
    conv_size: int = 4          # short causal depthwise convolution on q, k, v
    mlp_hidden: int = 704       # SwiGLU hidden width
    chunk_size: int = 64        # chunk length of the chunkwise-parallel delta rule
    norm_eps: float = 1e-6
    max_tokens: int = 4096      # longest text the tools analyse in one go
    init_std: float = 0.02
    # Step 7: the attention gate is floor + (1 - floor) sigmoid(.), so training cannot shut the
    # cache path off before lookups pay (0: the plain sigmoid, as in the first models).
    attn_gate_floor: float = field(default=0.0, metadata={
        "help": "attention gates g^A never fall below this share (0: plain sigmoid); with "
                "--init-from, a floor above the trained model's is applied to it"})
    # Step 5: each layer reads its surprise in its own units, e_t x surprise_scale[l] (capped at
    # 2), so that one threshold caches a like share of every layer (docs/DESIGN.md, Thresholds).
    # Set by calibration (ham_core.model.calibration), not by the optimizer; None: 1 everywhere.
    surprise_scale: Optional[List[float]] = field(default=None, metadata={"cli": False})
    # Step 6: a learned per-channel gain on the attention's query (HOLA's q/k gain; a gain on k
    # folds into q, so the cache still holds the RNN's own keys), letting a head sharpen its
    # score on the channels that identify a token. Set by training (TrainSettings.score_gain).
    score_gain: bool = field(default=False, metadata={"cli": False})
    # Step 5: how the heads' surprise combine into the layer's one routing number (min: every
    # head surprised; max: any head; mean). A config.json written before this field existed
    # was trained with min and loads so (from_dict).
    head_rule: str = field(default="max", metadata={
        "help": "how a layer's heads combine their surprise for routing: max (a token is cached when "
                "any head failed to predict it), min (every head) or mean"})
    # Which paths the block has (ARCHITECTURES); a config.json written before this field held a HAM.
    architecture: str = field(default="ham", metadata={
        "help": "the block's memory: " + "; ".join(f"{k}: {v}" for k, v in ARCHITECTURES.items())})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "surprise_scale":
                self._check_scale(value)
            elif f.name == "head_rule":
                if value not in HEAD_RULES:
                    raise HAMInputError(f"config.head_rule must be one of {', '.join(HEAD_RULES)}, got {value!r}")
            elif f.name == "architecture":
                if value not in ARCHITECTURES:
                    raise HAMInputError(f"config.architecture must be one of {', '.join(ARCHITECTURES)}, "
                                        f"got {value!r}")
            elif f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise HAMInputError(f"config.{f.name} must be true or false, got {value!r}")
            elif f.name in _SHARES:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                    raise HAMInputError(f"config.{f.name} must be in [0, 1), got {value!r}")
            elif f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise HAMInputError(f"config.{f.name} must be a positive integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise HAMInputError(f"config.{f.name} must be a positive number, got {value!r}")

    def _check_scale(self, value) -> None:
        if value is None:
            return
        ok = isinstance(value, (list, tuple)) and len(value) == self.n_layers and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in value)
        if not ok:
            raise HAMInputError(f"config.surprise_scale must be null or {self.n_layers} positive numbers "
                                f"(one per layer), got {value!r}")
        self.surprise_scale = [float(v) for v in value]

    def layer_surprise_scale(self, layer: int) -> float:
        """The factor layer `layer` multiplies its surprise by before routing (1: uncalibrated)."""
        return 1.0 if self.surprise_scale is None else self.surprise_scale[layer]

    def surprise_scales(self) -> list:
        """[L] every layer's factor (all 1 when uncalibrated)."""
        return [self.layer_surprise_scale(l) for l in range(self.n_layers)]

    @property
    def inner_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def has_rnn(self) -> bool:
        """Whether a layer runs the gated-delta-rule RNN (every architecture but the Transformer)."""
        return self.architecture != "transformer"

    @property
    def has_attention(self) -> bool:
        """Whether a layer has a KV cache and attention (every architecture but GDN)."""
        return self.architecture != "gdn"

    def parameter_count(self) -> int:
        """Parameters of a HAMModel with these sizes (HAMModel.num_parameters, without building it).
        A path a layer lacks has no parameters: the Transformer has no decay, write strength,
        RNN gate or RNN norm; GDN no temperature, score gain, attention gate or attention norm."""
        d, H, D, I, M = self.d_model, self.n_heads, self.head_dim, self.inner_dim, self.mlp_hidden
        paths = int(self.has_rnn) + int(self.has_attention)
        layer = (d * 3 * I + 3 * I * self.conv_size        # q, k, v projection and its short convolution
                 + paths * (d * H + H + H * D)              # an output gate (+ bias) and a head norm per path
                 + I * d + 2 * d + 3 * d * M)               # out projection, block norms, SwiGLU
        if self.has_rnn:
            layer += 2 * d * H + 2 * H                      # decay and beta projections; A_log, dt_bias
        if self.has_attention:
            layer += H + (H * D if self.score_gain else 0)  # temperature; the per-channel query gain
        return self.vocab_size * d + self.n_layers * layer + d

    def memory_bytes(self) -> int:
        """Rough float32 memory to hold the weights and read one text of max_tokens tokens: the
        weights, one layer's activations (the chunked form pads the text to whole chunks and
        keeps chunk x chunk matrices per head) and the logits."""
        T, C = self.max_tokens, self.chunk_size
        padded = -(-T // C) * C
        activations = padded * (10 * self.inner_dim + 4 * self.d_model + 3 * self.mlp_hidden) \
            + 3 * padded * C * self.n_heads + 2 * T * self.vocab_size
        return 4 * (self.parameter_count() + activations)

    def check_fits(self, memory: int | None = None) -> None:
        """HAMInputError naming the field when these sizes cannot fit `memory` bytes (default:
        this machine's RAM), rather than a crash deep inside an allocation."""
        memory = physical_memory() if memory is None else memory
        need = self.memory_bytes()
        if memory is None or need <= memory:
            return
        defaults = HAMConfig()
        relief = {f.name: need - HAMConfig(**{**asdict(self), f.name: getattr(defaults, f.name)}).memory_bytes()
                  for f in fields(self) if f.type in ("int", int)}
        field = max(relief, key=relief.get)
        raise HAMInputError(f"{field} = {getattr(self, field):,} needs about {_size(need)} of memory to hold the "
                            f"model and read one text; this machine has {_size(memory)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HAMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HAMInputError(f"config has unknown keys: {', '.join(unknown)}")
        return cls(**{"head_rule": LEGACY_HEAD_RULE, **data})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "HAMConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise HAMInputError(f"config file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HAMInputError(f"config file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HAMInputError(f"config file {path} must hold a JSON object")
        try:
            cfg = cls.from_dict(data)
            cfg.check_fits()
            return cfg
        except HAMInputError as exc:
            raise HAMInputError(f"config file {path}: {exc}") from None
        except TypeError as exc:
            raise HAMInputError(f"config file {path}: {exc}") from None
