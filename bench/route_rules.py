"""How a model's caching rule at training meets the one it is read with (docs/TRAINING.md).

    python bench/route_rules.py runs/cand --windows 6 --length 1024

Prints, on held-out Brown windows: each layer's surprise quantiles (min over heads), and the loss
at target cache fractions when (a) every layer caches that fraction of its own tokens (the
"fraction" training rule), (b) one threshold for every layer caches that fraction overall (how
`evaluate`, `sweep` and the app read a model), with the share each layer then caches, and (c) a
recent window of the same size in every layer. The model folder needs tokenizer.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ham_core.analysis.evaluate import heldout_windows            # noqa: E402
from ham_core.analysis.thresholds import taus_for_fractions       # noqa: E402
from ham_core.model.checkpoint import load_bundle                 # noqa: E402
from ham_core.model.loss import lm_loss                           # noqa: E402
from ham_core.model.policies import TAU_OFF                       # noqa: E402
from ham_core.model.routes import policy_route, quantile_route    # noqa: E402


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--fractions", default="0.1,0.25,0.5")
    args = p.parse_args()
    model, tok = load_bundle(args.model)
    w, source = heldout_windows(tok, args.model, args.windows, args.length, "brown")
    L = model.cfg.n_layers
    full = model(w, tau=0.0)
    print(f"{args.model}: {len(w)} windows x {args.length} tokens of the {source}\n")
    print("| layer | surprise 10% | 25% | 50% | 75% | 90% |\n|---|---|---|---|---|---|")
    s = full.layer_surprise                                      # [B, L, T]
    for layer in range(L):
        q = torch.quantile(s[:, layer].flatten().float(), torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))
        print(f"| {layer + 1} | " + " | ".join(f"{x:.3f}" for x in q.tolist()) + " |")
    none = lm_loss(model(w, tau=TAU_OFF).logits, w).item()
    print(f"\nloss (nats/token): no cache {none:.4f}, full cache {lm_loss(full.logits, w).item():.4f}\n")
    print("| fraction | each layer caches f | one threshold: tau | its loss | share cached per layer | "
          "recent window |\n|---|---|---|---|---|---|")
    for f in (float(x) for x in args.fractions.split(",")):
        per_layer = lm_loss(model(w, routes=[quantile_route(f, model.cfg.head_rule)] * L).logits, w).item()
        (tau,) = taus_for_fractions(model, w, f, shared=True)     # one tau, all windows and layers
        out = model(w, tau=tau)
        shares = (out.kv_peak.float().mean(0) / args.length).tolist()
        window = lm_loss(model(w, routes=[policy_route("window", f, 0, i, model.cfg.head_rule) for i in range(L)]).logits, w).item()
        print(f"| {f:.0%} | {per_layer:.4f} | {tau:.3f} | {lm_loss(out.logits, w).item():.4f} | "
              + " · ".join(f"{x:.0%}" for x in shares) + f" | {window:.4f} |")


if __name__ == "__main__":
    main()
