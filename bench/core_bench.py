"""Speed of the HAM core on the CPU (issue 2): chunked vs recurrent gated delta rule, and the
whole model's forward.

    python bench/core_bench.py                 # the figures in docs/PERFORMANCE.md
    python bench/core_bench.py --profile       # plus where the forward's time goes
    python bench/core_bench.py --threads 1     # one thread (a busy, shared machine)

Model: HAMConfig defaults (4 layers x 4 heads x 64, width 256, vocab 4096), random weights,
float32, torch's default thread count unless --threads. The delta-rule inputs are layer 0's own
projections of random tokens, so the gates have the model's distribution. Times are medians of
--repeats runs after one warm-up: wall time, and the process's CPU time beside it. The machine
may be shared, so the load average is printed too; with one thread, CPU time is close to what
the wall time would be on an idle machine (with more threads it also counts their spinning).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ham_core.model.config import HAMConfig
from ham_core.model.model import HAMModel
from ham_core.model.ops import gated_delta_rule_chunked, gated_delta_rule_recurrent

TARGET_SPEEDUP_AT = 2048
TARGET_SPEEDUP = 10.0
TARGET_FORWARD_MS = 300.0


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds over `repeats` runs after one warm-up, and the last result."""
    result = fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), result


def layer_inputs(model: HAMModel, T: int, seed: int = 0):
    """q, k, v, g, beta [1, T, ...] as layer 0 computes them for random tokens."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.cfg.vocab_size, (1, T), generator=gen)
    block = model.blocks[0]
    q, k, v, g, beta, _ = block.ham.project(block.ham_norm(model.embed(ids)))
    return q, k, v, g, beta


def max_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@torch.no_grad()
def bench_delta_rule(model: HAMModel, lengths, repeats: int) -> bool:
    C = model.cfg.chunk_size
    print(f"\nGated delta rule with surprise, B=1, H={model.cfg.n_heads}, D={model.cfg.head_dim}, chunk {C}")
    print(f"{'T':>6} {'recurrent ms':>13} {'chunked ms':>11} {'speedup':>8} {'(CPU time)':>11} {'max |diff|':>11}")
    ok = True
    for T in lengths:
        args = layer_inputs(model, T)
        # The recurrent form is slow at long T: fewer runs there, it is the reference anyway.
        rec_runs = max(1, repeats // 2) if T > 1024 else repeats
        t_rec, c_rec, rec = timed(lambda a=args: gated_delta_rule_recurrent(*a), rec_runs)
        t_chk, c_chk, chk = timed(lambda a=args: gated_delta_rule_chunked(*a, chunk_size=C), repeats)
        diff = max_difference(rec, chk)
        speedup = t_rec / t_chk
        ok &= diff <= 1e-4
        if T == TARGET_SPEEDUP_AT:
            ok &= speedup >= TARGET_SPEEDUP
        print(f"{T:>6} {t_rec * 1e3:>13.1f} {t_chk * 1e3:>11.1f} {speedup:>7.1f}x "
              f"{c_rec / max(c_chk, 1e-9):>10.1f}x {diff:>11.2e}")
    verdict = "met" if ok else "MISSED"
    if TARGET_SPEEDUP_AT not in lengths:
        verdict = f"not measured (T = {TARGET_SPEEDUP_AT} not in --lengths)"
    print(f"target: chunked >= {TARGET_SPEEDUP:.0f}x faster at T = {TARGET_SPEEDUP_AT}, same numbers (1e-4): {verdict}")
    return ok


@torch.no_grad()
def bench_forward(model: HAMModel, T: int, repeats: int, tau: float) -> bool:
    ids = torch.randint(0, model.cfg.vocab_size, (1, T), generator=torch.Generator().manual_seed(1))
    seconds, cpu, out = timed(lambda: model(ids, tau), repeats)
    fraction = out.cached.float().mean().item()
    ms = seconds * 1e3
    ok = ms <= TARGET_FORWARD_MS
    print(f"\nWhole model forward (chunked), {T} tokens, tau = {tau} (cached fraction {fraction:.2f}): "
          f"{ms:.1f} ms median of {repeats} (CPU time {cpu * 1e3:.1f} ms)")
    print(f"target: <= {TARGET_FORWARD_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return ok


@torch.no_grad()
def profile_forward(model: HAMModel, T: int, tau: float) -> None:
    from torch.profiler import ProfilerActivity, profile, record_function

    ids = torch.randint(0, model.cfg.vocab_size, (1, T), generator=torch.Generator().manual_seed(1))
    model(ids, tau)
    with profile(activities=[ProfilerActivity.CPU]) as prof, record_function("forward"):
        model(ids, tau)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=20))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--forward-tokens", type=int, default=1024)
    parser.add_argument("--tau", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of the forward")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = HAMConfig()
    model = HAMModel(cfg).eval()
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"model: {cfg.n_layers} layers x {cfg.n_heads} heads x {cfg.head_dim}, width {cfg.d_model}, "
          f"vocab {cfg.vocab_size}, {model.num_parameters() / 1e6:.2f} M parameters, float32")
    ok = bench_delta_rule(model, args.lengths, args.repeats)
    ok &= bench_forward(model, args.forward_tokens, args.repeats, args.tau)
    if args.profile:
        profile_forward(model, args.forward_tokens, args.tau)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
