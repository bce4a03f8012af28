"""Kernel vs PyTorch-path timings on a CUDA device.

    python -m kernels.bench                    # needs CUDA; without it says so and exits 0
    python -m kernels.bench --lengths 512 2048 --heads 8
    python -m kernels.bench --compile-only     # no GPU needed: compile every kernel for sm_80

Each row times one operator at one text length T (batch 1 unless --batch): the PyTorch
reference that the CPU path runs, and the Triton kernel, on the same CUDA tensors, forward only.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F


def _inputs(B: int, T: int, H: int, D: int, device: str):
    q = F.normalize(torch.randn(B, T, H, D, device=device), dim=-1)
    k = F.normalize(torch.randn(B, T, H, D, device=device), dim=-1)
    v = torch.randn(B, T, H, D, device=device)
    g = -torch.rand(B, T, H, device=device)
    beta = torch.rand(B, T, H, device=device)
    return q, k, v, g, beta


def _cases(B: int, T: int, H: int, D: int, device: str = "cuda") -> Dict[str, tuple]:
    """Operator name -> (reference call, kernel call), on fresh inputs."""
    import kernels
    from ham_core.model import ops

    q, k, v, g, beta = _inputs(B, T, H, D, device)
    visible = torch.rand(B, T, device=device) < 0.5          # half the tokens cached
    temp = torch.full((H,), D ** 0.5, device=device)
    n = T // 2                                                 # decode over a half-full cache
    return {
        "delta rule, recurrent": (lambda: ops.gated_delta_rule_recurrent(q, k, v, g, beta),
                                  lambda: kernels.fused_recurrent_gated_delta_rule(q, k, v, g, beta)),
        "delta rule, chunked": (lambda: ops.gated_delta_rule_chunked(q, k, v, g, beta),
                                lambda: kernels.chunk_gated_delta_rule(q, k, v, g, beta)),
        "selective attention": (lambda: ops.selective_attention(q, k, v, visible, temp),
                                lambda: kernels.selective_attention(q, k, v, visible, temp)),
        "decode attention": (lambda: ops.cache_attention(q[0, 0], k[0, :n], v[0, :n], temp),
                             lambda: kernels.cache_attention(q[0, 0], k[0, :n], v[0, :n], temp)),
    }


def _time_ms(fn: Callable) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=5, rep=50))


def bench(lengths: List[int], batch: int, heads: int, head_dim: int) -> None:
    print(f"B={batch} H={heads} D={head_dim} float32, forward, {torch.cuda.get_device_name()}")
    print(f"{'operator':24s} {'T':>6s} {'PyTorch ms':>11s} {'kernel ms':>10s} {'speed-up':>9s}")
    with torch.no_grad():
        for T in lengths:
            for name, (reference, kernel) in _cases(batch, T, heads, head_dim).items():
                # The reference recurrent loop launches ~10 ops per token: skip it when long.
                slow = name.endswith("recurrent") and T > 4096
                ref_ms = float("nan") if slow else _time_ms(reference)
                ker_ms = _time_ms(kernel)
                print(f"{name:24s} {T:6d} {ref_ms:11.3f} {ker_ms:10.3f} {ref_ms / ker_ms:8.1f}x")


def compile_kernels(head_dim: int = 64, chunk: int = 64, arch: int = 80) -> Dict[str, int]:
    """Compile every kernel for CUDA compute capability `arch` with Triton's bundled ptxas (no
    GPU needed; TRITON_INTERPRET must be unset). Returns kernel name -> shared memory bytes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import attention, delta_rule_chunked, delta_rule_recurrent
    from ._common import block, interpreting

    if interpreting():
        raise RuntimeError("unset TRITON_INTERPRET to compile for a GPU")
    D = block(head_dim)
    size = dict(H=4, DK=head_dim, DV=head_dim, BK=D)
    cases = {
        "recurrent": (delta_rule_recurrent._recurrent_kernel, dict(size, BV=D, HAS_H0=True, EPS=1e-12), {}),
        "chunk prep": (delta_rule_chunked._prep_kernel, dict(size, C=chunk, BV=D), {}),
        "chunk state": (delta_rule_chunked._state_kernel, dict(size, C=chunk, BV=min(D, 32), HAS_H0=True),
                        {"num_stages": 2}),
        "chunk output": (delta_rule_chunked._output_kernel, dict(size, C=chunk, BV=D, EPS=1e-12), {}),
        "attention [B,T] mask": (attention._attention_kernel, dict(size, BM=chunk, BN=chunk, BV=D, PER_QUERY=False), {}),
        "attention [B,T,T] mask": (attention._attention_kernel, dict(size, BM=chunk, BN=chunk, BV=D, PER_QUERY=True), {}),
        "decode attention": (attention._decode_kernel, dict(size, BN=64, BV=D), {}),
    }
    shared = {}
    for name, (kernel, consts, options) in cases.items():
        sig = {a: "constexpr" if a in consts else "i32" if a in ("T", "NT", "n") else
               "*i8" if a == "visible" else "*fp32" for a in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, sig, consts), target=GPUTarget("cuda", arch, 32),
                                  options=options)
        shared[name] = int(compiled.metadata.shared)
    return shared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--compile-only", action="store_true",
                        help="compile the kernels for sm_80 and print their shared memory (no GPU needed)")
    args = parser.parse_args(argv)
    if args.compile_only:
        for name, nbytes in compile_kernels(args.head_dim).items():
            print(f"{name:24s} compiled for sm_80, shared memory {nbytes / 1024:6.1f} KB")
        return 0
    if not torch.cuda.is_available():
        print("No CUDA device: the Triton kernels run on a GPU only, so there is nothing to time here. "
              "Run this on a machine with CUDA (the kernels' correctness is tested on the CPU by "
              "tests/test_kernels.py under TRITON_INTERPRET=1).")
        return 0
    try:
        import triton  # noqa: F401
    except ImportError:
        print("Triton is not installed: pip install triton")
        return 0
    bench(args.lengths, args.batch, args.heads, args.head_dim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
