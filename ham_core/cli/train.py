"""Commands that train: `train` (a HAM language model) and `train-recall` (the recall-lab model)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ham_core.data.corpus import default_corpus_dir, load_documents, split_documents
from ham_core.data.sources import read_folder
from ham_core.data.windows import WindowSampler, cached_stream, encode_documents, fixed_windows, with_repeats
from ham_core.model.calibration import TYPICAL_SURPRISE, calibrate
from ham_core.model.checkpoint import CONFIG, TOKENIZER, default_model_dir, load_bundle
from ham_core.model.config import ARCHITECTURES, HAMConfig
from ham_core.model.tokenizer import HAMTokenizer, train_tokenizer
from ham_core.training import recall_train
from ham_core.training.train import TrainSettings, read_settings, train

from .common import add_fields, fields_from_args


def add_cli(subparsers) -> None:
    _add_train(subparsers)
    _add_train_recall(subparsers)
    _add_calibrate(subparsers)


def _train(args) -> int:
    settings = fields_from_args(args, TrainSettings, read_settings(args.out))   # a resumed run keeps its own
    if args.from_dir:
        train_pairs, valid_pairs = split_documents(read_folder(args.from_dir), 0.05, settings.seed)
        train_docs = [text for _, text in train_pairs]
        valid_docs = [text for _, text in valid_pairs] or train_docs[:1]   # one file: validate on it
        cache = None
    else:
        corpus = Path(args.corpus) if args.corpus else default_corpus_dir()
        train_docs, valid_docs, cache = load_documents("train", corpus), load_documents("valid", corpus), corpus
    tok_path = Path(args.tokenizer)
    if tok_path.is_file():
        tokenizer = HAMTokenizer.from_file(tok_path)
    else:
        print(f"training a {args.vocab_size}-token tokenizer (no file at {tok_path})")
        tokenizer = train_tokenizer(train_docs, vocab_size=args.vocab_size)
    cfg = fields_from_args(args, HAMConfig, HAMConfig(vocab_size=tokenizer.vocab_size))
    rank = int(os.environ.get("RANK", "0"))
    sampler = WindowSampler(cached_stream(tokenizer, train_docs, cache, "train"), settings.length, settings.batch,
                            seed=settings.seed, rank=rank)
    batches = with_repeats(sampler, settings.repeat_share, seed=settings.seed + 1000 * rank)
    valid = fixed_windows(cached_stream(tokenizer, valid_docs, cache, "valid"), settings.length,
                          settings.valid_windows)
    if args.threads:
        torch.set_num_threads(args.threads)
    last = train(cfg, batches, args.out, settings, tokenizer=tokenizer, valid=valid, stop_at=args.stop_at or None)
    if rank == 0:
        print(json.dumps(last))
    return 0


def _add_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a HAM language model on a corpus or a folder of .txt files",
                              description="Train (or resume) a HAM language model. A run folder that holds a "
                                          "train state resumes with its own settings; flags given override them.")
    p.add_argument("--out", required=True, help="run folder (resumes if it holds a train state)")
    p.add_argument("--corpus", help="corpus folder with train.jsonl / valid.jsonl (default: the built corpus)")
    p.add_argument("--from-dir", help="train on a folder of .txt files instead")
    p.add_argument("--tokenizer", default=str(default_model_dir() / TOKENIZER),
                   help="tokenizer.json to use (trained anew if the file does not exist)")
    p.add_argument("--vocab-size", type=int, default=HAMConfig.vocab_size,
                   help=f"size of a tokenizer trained anew (default: {HAMConfig.vocab_size})")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--stop-at", type=int, default=0,
                   help="end this process after this step, checkpointed, as an interruption would (0: at the "
                        "end); a later command resumes from there, e.g. with other windows (--length, --batch)")
    add_fields(p.add_argument_group("training (kept in train_state.json)"), TrainSettings)
    add_fields(p.add_argument_group("model sizes, for a new model (kept in config.json)"), HAMConfig,
               aliases={"n_layers": ["--layers"], "n_heads": ["--heads"]}, skip=("vocab_size",))
    p.set_defaults(func=_train)


def _train_recall(args) -> int:
    torch.set_num_threads(args.threads)
    if not args.no_train:
        print(json.dumps(recall_train.train_recall(args.out, args.steps, args.lr, args.seed,
                                                   architecture=args.architecture)), flush=True)
    if args.ship:
        print(f"shipped to {recall_train.ship(args.out, args.ship)}")
    return 0


def _add_train_recall(subparsers) -> None:
    p = subparsers.add_parser("train-recall", help="train the recall-lab model (and ship it to assets/recall)",
                              description=recall_train.__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/recall", help="run folder (resumes if it holds a train state)")
    p.add_argument("--steps", type=int, default=3600)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--architecture", default="ham", choices=list(ARCHITECTURES),
                   help="the block's memory (the paper's comparison trains one of each; default ham)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (keep it small beside other jobs)")
    p.add_argument("--ship", default="", help="after training, copy the model here (e.g. assets/recall)")
    p.add_argument("--no-train", action="store_true", help="only ship an existing run")
    p.set_defaults(func=_train_recall)


def _calibrate(args) -> int:
    torch.set_num_threads(args.threads)
    model, tokenizer = load_bundle(args.model)
    if args.from_dir:
        stream = encode_documents(tokenizer, [text for _, text in read_folder(args.from_dir)])
    else:
        corpus = Path(args.corpus) if args.corpus else default_corpus_dir()
        stream = cached_stream(tokenizer, load_documents("train", corpus), corpus, "train")
    windows = fixed_windows(stream, args.length, args.windows)
    medians = calibrate(model, windows)
    model.cfg.save(Path(args.model) / CONFIG)
    print(f"median surprise per layer on {windows.shape[0]} training windows of {windows.shape[1]} tokens: "
          + ", ".join(f"{m:.4f}" for m in medians))
    print(f"surprise scale per layer (each median now reads {TYPICAL_SURPRISE}): "
          + ", ".join(f"{s:.2f}" for s in model.cfg.surprise_scale) + f"; written to {Path(args.model) / CONFIG}")
    return 0


def _add_calibrate(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="set a model's per-layer surprise scales from training text",
                              description="Measure each layer's median surprise on training text and write "
                                          "the scales that make one threshold cache a like share of every "
                                          "layer into the model's config.json (training does this as it goes; "
                                          "use it for models trained before).")
    p.add_argument("--model", required=True, help="model folder (its config.json is rewritten)")
    p.add_argument("--corpus", help="corpus folder whose train split is read (default: the built corpus)")
    p.add_argument("--from-dir", help="read a folder of .txt files instead")
    p.add_argument("--windows", type=int, default=16, help="windows read")
    p.add_argument("--length", type=int, default=512, help="tokens per window")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=_calibrate)
