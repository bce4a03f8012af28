"""Commands that read text with a trained model: analyze, sweep, generate.

    ham analyze FILE|- [--model DIR] [--tau X] [--layer-tau L=X ...] [--policy P] [--json]
    ham sweep FILE|- [--model DIR] [--taus a,b,...] [--policies p,q,...] [--fractions f,g,...] [--json|--csv]
    ham generate --prompt TEXT [--tokens N] [--tau X] [--seed S] [--json]
"""
from __future__ import annotations

import csv
import sys
from typing import List

from ham_core.data.textfile import check_source
from ham_core.errors import HAMInputError
from ham_core.progress import Progress

from .common import add_model, dump_json, load_model_args, notice, numbers, read_input

TABLE_ROWS = 30


def _layer_taus(specs: List[str]) -> dict:
    out = {}
    for spec in specs:
        layer, sep, value = spec.partition("=")
        try:
            out[int(layer)] = float(value)
        except ValueError:
            raise HAMInputError(f"--layer-tau takes LAYER=TAU (e.g. 2=0.8), got {spec!r}") from None
        if not sep:
            raise HAMInputError(f"--layer-tau takes LAYER=TAU (e.g. 2=0.8), got {spec!r}")
    return out


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def _analyze(args) -> int:
    from ham_core.analysis.analysis import analyze

    check_source(args.file)
    if args.reads < 0:
        raise HAMInputError(f"--reads takes a count of reads per token (0 or more), got {args.reads}")
    if args.per_head and not (args.json and args.reads > 0):
        raise HAMInputError("--per-head splits the reads of --json --reads K by head: give both")
    model, tokenizer, name = load_model_args(args)
    text, raw = read_input(args.file, model, tokenizer)
    result = analyze(model, tokenizer, text, args.tau, args.policy, _layer_taus(args.layer_tau),
                     seed=args.seed, model_name=name)
    notice(raw, result.notice, result.n_tokens)
    if args.json:
        out = result.to_dict(reads=args.reads, per_head=args.per_head)
        whole = raw.size if raw.size is not None else None if raw.cut else len(raw.data)
        # input_bytes: the input's size (null when stdin or a device was cut before its end).
        out.update(truncated=result.truncated or raw.cut, input_bytes=whole, bytes_read=len(raw.data))
        print(dump_json(out))
        return 0
    taus = " ".join(f"{t:g}" for t in result.tau)
    loss = "n/a" if result.loss is None else f"{result.loss:.4f} nats/token, perplexity {result.perplexity:,.2f}"
    print(f"model {result.model} on {result.device}; {result.n_tokens:,} tokens; policy {result.policy}; tau {taus}")
    print(f"loss {loss}")
    print(f"KV cache {100 * result.kv_fraction:.1f}% of full ({_kb(result.kv_bytes_peak)} peak of "
          f"{_kb(result.kv_bytes_full)}; RNN state {_kb(result.state_bytes)}); keys per layer {result.kv_peak}")
    L = len(result.tau)
    if any(x != 1.0 for x in result.surprise_scale):
        print("surprise in each layer's units (cosine distance x " + " / ".join(f"{x:.2f}" for x in result.surprise_scale)
              + ", so a layer's typical token reads 0.5)")
    print(f"\n{'#':>5}  {'token':<16} {'-log p':>7}  {'surprise per layer':<{7 * L}} cached")
    for i, tok in enumerate(result.tokens[: args.rows]):
        lm = "" if result.lm_surprisal[i] is None else f"{result.lm_surprisal[i]:.2f}"
        surprise = "".join(f"{float(s):7.3f}" for s in result.surprise[:, i])
        marks = "".join("x" if c else "." for c in result.cached[:, i].tolist())
        print(f"{i:>5}  {repr(tok.text)[:16]:<16} {lm:>7}  {surprise} {marks}")
    if result.n_tokens > args.rows:
        print(f"  ... {result.n_tokens - args.rows:,} more tokens (--rows N to show more, --json for all)")
    return 0


def _sweep(args) -> int:
    from ham_core.analysis.analysis import prepare_tokens
    from ham_core.analysis.sweep import DEFAULT_TAUS, fraction_sweep, sweep
    from ham_core.model.policies import COMPARED

    check_source(args.file)
    model, tokenizer, _ = load_model_args(args)
    text, raw = read_input(args.file, model, tokenizer)
    tokens, _, cut = prepare_tokens(model, tokenizer, text)
    notice(raw, cut, len(tokens))
    ids = [t.id for t in tokens]
    bar = None if args.quiet else Progress(1, "sweep", unit="forwards")
    if args.fractions is not None:
        policies = args.policies.split(",") if args.policies else list(COMPARED)
        rows = fraction_sweep(model, ids, numbers(args.fractions, "--fractions"), policies, bar, seed=args.seed)
    else:
        taus = numbers(args.taus, "--taus") if args.taus else DEFAULT_TAUS
        rows = sweep(model, ids, taus, args.policies.split(",") if args.policies else ["ham"], bar, seed=args.seed)
    if args.json:
        print(dump_json([row.to_dict() for row in rows]))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(row.to_dict() for row in rows)
    else:
        print(f"{'policy':<8} {'tau':>7} {'kv_fraction':>12} {'kv_bytes_peak':>14} {'loss':>9}")
        for r in rows:
            loss = "n/a" if r.loss is None else f"{r.loss:.4f}"
            print(f"{r.policy:<8} {r.tau:>7.3f} {100 * r.kv_fraction:>11.1f}% {r.kv_bytes_peak:>14,} {loss:>9}")
    return 0


def _generate(args) -> int:
    from ham_core.analysis.analysis import check_tau
    from ham_core.model.decode import generate

    if not args.prompt.strip():
        raise HAMInputError("--prompt is empty: give some text to continue")
    if args.tokens < 0:
        raise HAMInputError(f"--tokens must be >= 0, got {args.tokens}")
    tau = check_tau(args.tau, "--tau")
    model, tokenizer, name = load_model_args(args)
    prompt = tokenizer.encode(args.prompt)
    if len(prompt) > model.cfg.max_tokens:
        print(f"notice: the prompt has {len(prompt):,} tokens; only the last {model.cfg.max_tokens:,} are read",
              file=sys.stderr)
        prompt = prompt[-model.cfg.max_tokens:]
    steps = list(generate(model, prompt, args.tokens, tau, args.temperature, args.seed))
    ids = [g.token for g in steps]
    pieces = tokenizer.token_strings(ids)
    if args.json:
        print(dump_json({
            "model": name, "prompt": args.prompt, "text": tokenizer.decode(ids), "tau": tau,
            "seed": args.seed, "temperature": args.temperature,
            "tokens": [{"id": g.token, "text": p, "cache": g.cache_sizes} for g, p in zip(steps, pieces)],
        }))
        return 0
    print(args.prompt + tokenizer.decode(ids))
    print(f"\ncache size per layer after each generated token (prompt {len(prompt)} tokens, tau {tau:g}):")
    for i, (g, p) in enumerate(zip(steps, pieces)):
        print(f"{i + 1:>5}  {repr(p)[:16]:<16} {g.cache_sizes}")
    return 0


def add_cli(sub) -> None:
    """Register `analyze`, `sweep` and `generate`."""
    from ham_core.model.policies import POLICIES, TAU_OFF

    p = sub.add_parser("analyze", help="per-token surprise, cache and loss for one text")
    p.add_argument("file", metavar="FILE", help="a UTF-8 text file, or - for stdin")
    add_model(p)
    p.add_argument("--tau", default="0.5", help="threshold for every layer (0 caches all, > 2 none; default 0.5)")
    p.add_argument("--layer-tau", action="append", default=[], metavar="L=X", help="override one layer's threshold (repeatable)")
    p.add_argument("--policy", default="ham", choices=list(POLICIES), help="selection policy at HAM's memory (default ham)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random policy (default 0)")
    p.add_argument("--rows", type=int, default=TABLE_ROWS, help=f"tokens shown in the table (default {TABLE_ROWS})")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--reads", type=int, default=0, metavar="K",
                   help="with --json: each token's K largest attention reads per layer, "
                        "[position, weight] (weights averaged over heads)")
    p.add_argument("--per-head", action="store_true",
                   help="with --json --reads K: each head's own K largest reads, per layer per head "
                        "[[position, weight], ...] (a one-head lookup is not averaged away)")
    p.set_defaults(func=_analyze)

    p = sub.add_parser("sweep", help="loss vs KV-cache size over thresholds and policies")
    p.add_argument("file", metavar="FILE", help="a UTF-8 text file, or - for stdin")
    add_model(p)
    p.add_argument("--taus", default=None, help=f"comma-separated thresholds (default: 15 from 0 to 1, and {TAU_OFF:g})")
    p.add_argument("--policies", default=None, help=f"comma-separated, of: {', '.join(POLICIES)} (default ham)")
    p.add_argument("--fractions", default=None,
                   help="compare policies at these cache fractions instead (e.g. 0,0.05,0.1,0.25,0.5,1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random policy (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="rows as JSON")
    out.add_argument("--csv", action="store_true", help="rows as CSV")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("generate", help="continue a prompt with the compact-cache decoder")
    p.add_argument("--prompt", required=True, help="the text to continue")
    add_model(p)
    p.add_argument("--tokens", type=int, default=40, help="tokens to generate (default 40)")
    p.add_argument("--tau", default="0.5", help="threshold for every layer (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--json", action="store_true", help="print the text and cache sizes as JSON")
    p.set_defaults(func=_generate)
