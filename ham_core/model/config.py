"""Model configuration: one dataclass that round-trips through config.json."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ham_core.errors import HAMInputError


@dataclass
class HAMConfig:
    """Sizes of a HAM language model (DESIGN.md section 2).

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

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise HAMInputError(f"config.{f.name} must be a positive integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise HAMInputError(f"config.{f.name} must be a positive number, got {value!r}")

    @property
    def inner_dim(self) -> int:
        return self.n_heads * self.head_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HAMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HAMInputError(f"config has unknown keys: {', '.join(unknown)}")
        return cls(**data)

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
            return cls.from_dict(data)
        except HAMInputError as exc:
            raise HAMInputError(f"config file {path}: {exc}") from None
        except TypeError as exc:
            raise HAMInputError(f"config file {path}: {exc}") from None
