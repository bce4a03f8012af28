"""Launch helpers shared by the kernels.

Note on the interpreter: `triton.jit` (ours, and the @jit functions of Triton's own library
such as tl.sum) decides at decoration, i.e. at import, whether to compile for the GPU or to
interpret on the CPU. So TRITON_INTERPRET=1 must be set before `triton` is first imported.
"""
from __future__ import annotations

import os

import torch
import triton


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET set)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes", "y")


def check_device(*tensors: torch.Tensor) -> None:
    """Compiled kernels need CUDA tensors (the interpreter takes CPU or CUDA); say so plainly
    instead of letting Triton fail on a CPU pointer."""
    if interpreting():
        return
    for x in tensors:
        if x is not None and not x.is_cuda:
            raise RuntimeError(
                f"Triton kernels got a tensor on {x.device}: they need CUDA tensors, or CPU tensors "
                "with TRITON_INTERPRET=1; set HAM_KERNELS=reference to use the PyTorch path"
            )


def block(n: int, least: int = 16) -> int:
    """Power-of-two tile covering n (tl.arange needs powers of two; tl.dot needs >= 16)."""
    return max(least, triton.next_power_of_2(max(int(n), 1)))
