"""What the commands share: reading a bounded prefix of a text file, strict JSON, parsing number lists, the --model option."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Tuple

from ham_core.data.textfile import RawText, decode, prefix_bytes, read_prefix
from ham_core.errors import HAMInputError


def read_input(source: str, model, tokenizer) -> Tuple[str, RawText]:
    """The text of a file or stdin ('-'), reading only the prefix the model's token limit can
    use. Anything unreadable is a HAMInputError."""
    raw = read_prefix(source, prefix_bytes(tokenizer, model.cfg.max_tokens))
    return decode(raw), raw


def notice(raw: RawText, token_notice: str, n_tokens: int) -> None:
    """One line on stderr when the input was cut (by bytes, or by the token limit)."""
    if raw.cut:
        size = f"{raw.size:,} bytes" if raw.size is not None else f"more than {len(raw.data):,} bytes"
        print(f"notice: {raw.name} has {size}; only its first {n_tokens:,} tokens were read (the maximum "
              f"for this model; {len(raw.data):,} bytes were read)", file=sys.stderr)
    elif token_notice:
        print(f"notice: {token_notice}", file=sys.stderr)


def dump_json(value, **options) -> str:
    """Strict JSON: a NaN or infinity (damaged weights, an overflow) is an error, never bare NaN."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        raise HAMInputError("the model produced numbers that are not finite (NaN or infinity) for this "
                            "input, so there is no valid JSON to print; check the model's weights") from None


def numbers(spec: str, what: str) -> List[float]:
    """Comma-separated numbers ("0,0.25,1"); a HAMInputError names `what` when they are not."""
    try:
        values = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise HAMInputError(f"{what} must be comma-separated numbers, got {spec!r}") from None
    if not values:
        raise HAMInputError(f"{what} is empty")
    return values


def add_model(p) -> None:
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint folder (model.safetensors, config.json, tokenizer.json); default: the shipped model")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")


def load_model_args(args):
    """(model, tokenizer, name) from --model or the shipped model."""
    from ham_core.model.checkpoint import WEIGHTS, default_model_dir, load_bundle

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    directory = Path(args.model) if args.model else default_model_dir()
    if not args.model and not (directory / WEIGHTS).is_file():
        raise HAMInputError(f"no shipped model in {directory} yet: pass --model DIR (a folder with "
                            f"model.safetensors, config.json and tokenizer.json)")
    model, tokenizer = load_bundle(directory)
    return model, tokenizer, str(args.model) if args.model else "shipped (assets/lm)"
