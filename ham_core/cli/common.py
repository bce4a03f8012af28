"""What the commands share: reading a bounded prefix of a text file, strict JSON, parsing number
lists, the --model option, and flags built from a dataclass's fields."""
from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple

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


def _flag_type(hint):
    """int, float, str or bool from a field's type (Optional[X] counts as X)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def add_fields(parser, cls, *, aliases: Optional[Mapping[str, Iterable[str]]] = None,
               skip: Iterable[str] = ()) -> None:
    """One flag per field of the dataclass `cls`: --field-name, of the field's type, with the
    help in its metadata ("help") and its default shown. A flag left out stays None, so
    `fields_from_args` can tell it from one that was given. A field whose metadata says
    "cli": False gets no flag."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:     # set by a tool, not by hand
            continue
        kind = _flag_type(hints[f.name])
        default = f.default_factory() if f.default is MISSING else f.default
        about = f.metadata.get("help", f"{cls.__name__}.{f.name}")
        flags = [f"--{f.name.replace('_', '-')}", *(aliases or {}).get(f.name, ())]
        options = dict(dest=f.name, default=None, help=f"{about} (default: {default})")
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif kind in (int, float, str):
            options.update(type=kind, metavar={int: "N", float: "X", str: "TEXT"}[kind])
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {kind}")
        parser.add_argument(*flags, **options)


def fields_from_args(args, cls, base=None):
    """A `cls` from `base` (or its defaults) with every flag add_fields made that was given."""
    values = asdict(base) if base is not None else {}
    given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**{**values, **given})

