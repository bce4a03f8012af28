"""`python -m ham_core <command>` (installed as `ham`): every command of HAM Lab.

Each module here registers its commands with `add_cli(subparsers)` and sets `func(args) -> int`
as each parser's default:

    read      analyze, sweep, generate      (a trained model reads a text)
    data      corpus, tokenizer             (build the training text and the tokenizer)
    train     train, train-recall, calibrate (train the English or recall-lab model; set surprise scales)
    recall    recall                        (the recall lab's accuracy table)
    evaluate  evaluate                      (the tables of assets/MODEL_CARD.md)
    compare   compare                       (the paper's comparison: four architectures, same tokens)
    lab       lookups-lab                   (a tiny HAM learns to read its cache, live)

Bad input never gives a traceback: one `error: ...` line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ham_core.errors import HAMInputError

from . import compare, data, evaluate, lab, read, recall, train

COMMAND_MODULES = (read, data, train, recall, evaluate, compare, lab)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ham", description="HAM Lab: Hybrid Associative Memory models, from the command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.add_cli(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (HAMInputError, OSError, UnicodeDecodeError) as e:
        if isinstance(e, BrokenPipeError):
            return 1
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
