"""`ham evaluate`: the tables of assets/MODEL_CARD.md (held-out loss, recall accuracy), reproducible by anyone."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ham_core.analysis.evaluate import (RECALL_EVAL_SEEDS, SLICE_FILE, cache_gap, chars_per_token, heldout_windows,
                                        lm_table, names_texts, recall_table, slice_loss)
from ham_core.analysis.lookups import CONTROL_SHIFT, LOOKUP_GATE, MIN_LOOKUP, copy_test, name_lookups
from ham_core.model.health import attention_health, copy_probe
from ham_core.analysis.thresholds import DEFAULT_FRACTIONS
from ham_core.model.checkpoint import ASSETS, default_model_dir, default_recall_dir, load_bundle
from ham_core.model.policies import COMPARED
from ham_core.progress import Progress

from .common import dump_json

NAMES_DIR = ASSETS / "eval" / "names"     # held-out texts where names recur, written for this project


def _markdown(rows: List[dict], fractions: Sequence[float], value: str, fmt: str) -> str:
    """One line per policy, one column per target fraction."""
    head = "| policy | " + " | ".join(f"{f:.0%} cache" for f in fractions) + " |"
    lines = [head, "|" + "---|" * (len(fractions) + 1)]
    by_policy: Dict[str, Dict[float, dict]] = defaultdict(dict)
    for r in rows:
        by_policy[r["policy"]][r["target"]] = r
    for policy, cells in by_policy.items():
        lines.append(f"| {policy} | " + " | ".join(fmt.format(**cells[f]) if f in cells else "" for f in fractions) + " |")
    return "\n".join(lines)


def _versus_ham(rows: List[dict], fractions: Sequence[float]) -> str:
    """Each row's loss minus HAM's at the same target, its paired standard error and the share
    of the gap it recovers (sets rows' vs_ham)."""
    by_ham = {r["target"]: r["loss"] for r in rows if r["policy"] == "ham"}
    cells = []
    for r in rows:
        r["vs_ham"] = r["loss"] - by_ham.get(r["target"], r["loss"])
        se = f"{r['se_vs_ham']:.4f}" if "se_vs_ham" in r else "n/a"          # one text: no spread
        share = f", {r['gap_recovered']:.0%}" if "gap_recovered" in r else ""
        cells.append(dict(r, cell=f"{r['vs_ham']:+.4f} ±{se}{share}"))
    return _markdown(cells, fractions, "loss", "{cell}")


def _se(gap: dict) -> str:
    return "n/a" if gap["se"] is None else f"{gap['se']:.4f}"


def _evaluate(args) -> int:
    fractions = [float(f) for f in args.fractions.split(",")]
    policies = args.policies.split(",")
    model_dir = Path(args.model) if args.model else default_model_dir()
    model, tokenizer = load_bundle(model_dir)
    torch.manual_seed(0)
    report: dict = {"model": str(model_dir), "fractions": fractions}
    report["valid_slice_loss"] = round(slice_loss(model, tokenizer, model_dir), 6)
    windows, source = heldout_windows(tokenizer, model_dir, args.windows, args.length, args.source)
    report["heldout"] = {"source": source, "windows": len(windows), "length": args.length}
    report["gap"] = cache_gap(model, windows)
    report["heldout"]["chars_per_token"] = chars_per_token(tokenizer, windows)
    report["health"] = attention_health(model, windows[:4, :256], copy_probe(model.cfg.vocab_size)).as_dict()
    report["copy_test"] = copy_test(model, windows[:, :args.passage])
    names_dir = Path(args.names) if args.names else NAMES_DIR
    if names_dir.is_dir():
        texts = names_texts(names_dir)
        ids = [torch.tensor(tokenizer.encode(t)[:model.cfg.max_tokens]) for t in texts]
        report["names"] = {"folder": str(names_dir), **cache_gap(model, ids),
                           "lookups": name_lookups(model, tokenizer, texts).as_dict(),
                           "lm": lm_table(model, ids, fractions, policies)}
    bar = None if args.json else Progress(len(windows), "held-out", unit="window")
    report["lm"] = lm_table(model, windows, fractions, policies, bar)
    if not args.no_recall:
        recall_dir = Path(args.recall_model) if args.recall_model else default_recall_dir()
        report["recall"] = recall_table(recall_dir, fractions, policies)
        report["recall_seeds"] = [RECALL_EVAL_SEEDS.start, RECALL_EVAL_SEEDS.stop - 1]
    if args.json:
        print(dump_json(report, indent=1))
        return 0
    print(f"Fixed validation slice ({SLICE_FILE}), full cache: loss {report['valid_slice_loss']:.6f} nats/token\n")
    print(f"Held-out English, {len(windows)} windows x {args.length} tokens from the {source}:")
    print("loss in nats/token (perplexity), and the KV cache actually used\n")
    gap = report["gap"]
    print(f"No cache minus full cache: {gap['gap']:.4f} nats/token (standard error {_se(gap)} over "
          f"{gap['windows']} windows)\n")
    print(_markdown(report["lm"], fractions, "loss", "{loss:.4f} ({perplexity:.2f}) @{kv_fraction:.1%}"))
    full = next((r["loss"] for r in report["lm"] if r["policy"] == "ham" and r["target"] == 1.0), None)
    cpt = report["heldout"]["chars_per_token"]
    if full is not None:
        # Per character, so models with different tokenizers can be compared on the same documents.
        print(f"\nFull cache per character: {full / cpt:.4f} nats/char ({cpt:.3f} characters per token)")
    print("\nThe same: difference from HAM at the same memory (paired standard error over windows), and "
          "the share of the no-cache -> full-cache gap recovered\n")
    print(_versus_ham(report["lm"], fractions))
    print(f"\nCopy test: {len(windows)} held-out passages of {args.passage} tokens, each read twice "
          "(loss in nats/token)\n")
    print("| routing | first reading | second reading |\n|---|---|---|")
    for name, r in report["copy_test"].items():
        print(f"| {name} | {r['first']:.3f} | {r['second']:.3f} |")
    if "names" in report:
        n = report["names"]
        lk = n["lookups"]
        print(f"\nTexts where names recur ({n['folder']}, {n['windows']} texts): no cache minus full cache "
              f"{n['gap']:.4f} nats/token (standard error {_se(n)}); name lookups: {lk['found']} of "
              f"{lk['mentions']} later mentions ({lk['share']:.0%}) have, in some layer, a head whose strongest "
              f"read (weight >= {MIN_LOOKUP}, its attention gate >= {LOOKUP_GATE}) lands on an earlier mention "
              f"(with every earlier mention moved {CONTROL_SHIFT} tokens later, by chance: {lk['share_control']:.0%}); "
              f"with weights averaged over the layer's heads: {lk['share_mean']:.0%}")
        print("\nThe same texts per policy: loss, then the difference from HAM at the same memory (paired "
              "standard error over texts) and the share of the gap recovered\n")
        print(_markdown(n["lm"], fractions, "loss", "{loss:.4f} @{kv_fraction:.1%}"))
        print()
        print(_versus_ham(n["lm"], fractions))
    h = report["health"]
    print(f"\nAttention health (held-out prose, full cache): copy probe (random tokens read twice) second "
          f"reading {h['copy_full']:.2f} nats/token with a full cache, {h['copy_none']:.2f} with none")
    print("| layer | mean attention gate | most open head | temperature: mean / most open head | mean top read |\n"
          "|---|---|---|---|---|")
    for i, layer in enumerate(h["layers"], 1):
        print(f"| {i} | {layer['attn_gate']:.3f} | {layer['attn_gate_max']:.3f} | {layer['temperature']:.1f} / "
              f"{layer['open_temperature']:.1f} | "
              f"{layer['top_read']:.3f} |")
    if "recall" in report:
        seeds = report["recall_seeds"]
        print(f"\nRecall lab, accuracy on seeds {seeds[0]}..{seeds[1]} (not used in training):\n")
        print(_markdown(report["recall"], fractions, "accuracy", "{accuracy:.1%} @{kv_fraction:.1%}"))
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="held-out loss and recall accuracy per policy and cache fraction")
    p.add_argument("--model", help="English model folder (default: assets/lm)")
    p.add_argument("--recall-model", help="recall model folder (default: assets/recall)")
    p.add_argument("--windows", type=int, default=32, help="held-out windows")
    p.add_argument("--length", type=int, default=512, help="tokens per held-out window")
    p.add_argument("--source", help="held-out documents of one corpus only, e.g. brown (continuous prose; "
                                     "nlp-corpus documents are groups of unrelated sentences)")
    p.add_argument("--fractions", default=",".join(str(f) for f in DEFAULT_FRACTIONS))
    p.add_argument("--policies", default=",".join(COMPARED))
    p.add_argument("--no-recall", action="store_true", help="skip the recall table")
    p.add_argument("--passage", type=int, default=160,
                   help="tokens of each held-out passage in the copy test (read twice)")
    p.add_argument("--names", help=f"folder of held-out texts where names recur (default: {NAMES_DIR})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_evaluate)
