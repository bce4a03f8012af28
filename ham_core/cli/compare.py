"""`ham compare FILE|DIR`: the paper's comparison, the four architectures' loss on the same tokens.

    ham compare story.txt                  # the shipped models in assets/compare/<architecture>/
    ham compare texts/ --json              # every .txt file under texts/, as JSON rows
    ham compare story.txt --models runs/compare
    ham compare --recall                   # the recall task, assets/compare/recall/<architecture>/
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from ham_core.data.textfile import check_source
from ham_core.errors import HAMInputError

from .common import dump_json, notice, read_input


def _sources(source: str) -> List[str]:
    """The text files to read: `source` itself, or every .txt file under a folder (sorted)."""
    if source != "-" and Path(source).is_dir():
        files = sorted(str(p) for p in Path(source).rglob("*.txt") if p.is_file())
        if not files:
            raise HAMInputError(f"no .txt files in the folder {source}")
        return files
    check_source(source)
    return [source]


def _read_texts(sources: List[str], model, tokenizer) -> List[Tuple[str, str]]:
    """(name, text) of each source, never empty; a notice for each that the model's token limit
    cuts (the tokens are cut to it after they are checked alike for every model)."""
    from ham_core.analysis.analysis import prepare_tokens

    texts = []
    for source in sources:
        text, raw = read_input(source, model, tokenizer)
        try:
            tokens, _, cut = prepare_tokens(model, tokenizer, text)
        except HAMInputError as exc:
            raise HAMInputError(f"{raw.name}: {exc}") from None
        notice(raw, cut, len(tokens))
        texts.append((raw.name, text))
    return texts


def _recall(args) -> int:
    from ham_core.analysis.compare import (compare_recall, default_recall_compare_dir, held_out_recall,
                                           load_recall_comparison)

    if args.source is not None:
        raise HAMInputError("--recall reads the recall task, not a text: leave FILE|DIR out")
    models = load_recall_comparison(Path(args.models) if args.models else default_recall_compare_dir())
    task = held_out_recall()
    rows = compare_recall(models, **task)
    if args.json:
        print(dump_json(rows))
        return 0
    print(f"recall task: {task['n_pairs']} pairs in {task['length']} tokens, seeds {task['seeds'][0]}.."
          f"{task['seeds'][-1]} (not used in training)\n\n| model | KV cache | accuracy |\n|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kv_fraction']:.1%} | {r['accuracy']:.1%} |")
    return 0


def _compare(args) -> int:
    import torch

    from ham_core.analysis.compare import compare_losses, default_compare_dir, load_comparison, same_tokens
    from ham_core.analysis.compare import COMPARED_ARCHITECTURES

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.recall:
        return _recall(args)
    if args.source is None:
        raise HAMInputError("compare needs a text: FILE, a folder of .txt files, or - for stdin (or --recall)")
    sources = _sources(args.source)
    models = load_comparison(Path(args.models) if args.models else default_compare_dir())
    shortest = min((m for m, _ in models.values()), key=lambda m: m.cfg.max_tokens)
    texts = _read_texts(sources, shortest, next(iter(models.values()))[1])
    ids = [i[: shortest.cfg.max_tokens] for i in same_tokens(models, [text for _, text in texts])]
    rows = compare_losses(models, ids)
    if args.json:
        print(dump_json(rows))
        return 0
    missing = [a for a in COMPARED_ARCHITECTURES if a not in models]
    tokens = sum(i.numel() for i in ids)
    print(f"{len(texts)} text(s), {tokens:,} tokens, the same for every model; loss in nats per predicted token")
    if missing:
        print(f"no model for: {', '.join(missing)}")
    print(f"\n| model | KV cache | loss |\n|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kv_fraction']:.1%} | {r['loss']:.4f} |")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="a Transformer, GDN, a window hybrid and HAM on the same text(s), at the cache sizes each allows",
        description="Loss of each comparison model (one folder per architecture: transformer, gdn, window, "
                    "ham) on the same tokens: the Transformer with its full cache, GDN with none, the window "
                    "model and HAM at 10, 25 and 50%% of a full cache and with all of it.")
    p.add_argument("source", metavar="FILE|DIR", nargs="?", default=None,
                   help="a UTF-8 text file, a folder of .txt files, or - for stdin")
    p.add_argument("--recall", action="store_true",
                   help="accuracy on the recall task's held-out texts instead (the recall models)")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="folder with one model folder per architecture (default: assets/compare, "
                        "with --recall assets/compare/recall)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true",
                   help='print a list of {"model", "kv_fraction", "loss"} ({..., "accuracy"} with --recall)')
    p.set_defaults(func=_compare)
