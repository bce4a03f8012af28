"""What the commands share: reading a text file, parsing number lists, the --model option."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

from ham_core.errors import HAMInputError


def read_text(source: str) -> str:
    """A UTF-8 text file's contents, or stdin for '-'; anything unreadable is a HAMInputError."""
    name = "stdin" if source == "-" else source
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(source)
        if not path.exists():
            raise HAMInputError(f"file not found: {source}")
        if path.is_dir():
            raise HAMInputError(f"{source} is a folder, not a text file")
        data = path.read_bytes()
    if b"\x00" in data:
        raise HAMInputError(f"{name} looks like a binary file (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise HAMInputError(f"{name} is not valid UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if not text.strip():
        raise HAMInputError(f"{name} is empty" if not text else f"{name} holds only whitespace: no text to read")
    return text


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
