"""Pick the implementation of each operator: PyTorch reference or Triton kernel.

HAM_KERNELS=auto (default) uses kernels/ when the tensors are on CUDA and Triton imports;
HAM_KERNELS=reference forces the PyTorch path; HAM_KERNELS=triton forces the kernels even on
the CPU (only meaningful under TRITON_INTERPRET=1, which is how the tests check them; without
it the kernels raise a plain error rather than fall back silently).
Kernels are forward only: when gradients are needed the reference path runs. The variable is
read at every call, so a test or the app can switch paths without re-importing anything.
"""
from __future__ import annotations

import functools
import os

import torch

from .ops import cache_attention, gated_delta_rule_chunked, gated_delta_rule_recurrent, selective_attention


def _mode() -> str:
    mode = os.environ.get("HAM_KERNELS", "auto").strip().lower()
    return mode if mode in ("auto", "reference", "triton") else "auto"


@functools.lru_cache(maxsize=None)
def _kernels_importable() -> bool:
    # Imported once: a missing Triton (or a broken install) means the reference path, not a crash.
    try:
        import kernels  # noqa: F401
    except ImportError:
        return False
    return True


def use_kernels(x: torch.Tensor, *more: torch.Tensor) -> bool:
    """True when this forward should run the Triton kernels for tensor x (and the others)."""
    mode = _mode()
    if mode == "reference":
        return False
    tensors = [t for t in (x, *more) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if mode == "auto" and not x.is_cuda:
        return False
    return _kernels_importable()


def device_label(device: torch.device | str) -> str:
    """What the app and CLI show: 'CPU' or 'GPU (Triton kernels)'."""
    device = torch.device(device)
    if device.type == "cuda":
        probe = torch.empty(0, device=device)
        return "GPU (Triton kernels)" if use_kernels(probe) else "GPU (PyTorch)"
    return "CPU"


def delta_rule(q, k, v, g, beta, initial_state=None, *, mode="chunked", chunk_size=64):
    """The gated delta rule in the form asked for; see ham_core.model.ops.delta_rule."""
    if use_kernels(q, k, v, g, beta, initial_state):
        from kernels import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

        if mode == "recurrent":
            return fused_recurrent_gated_delta_rule(q, k, v, g, beta, initial_state)
        return chunk_gated_delta_rule(q, k, v, g, beta, initial_state, chunk_size=chunk_size)
    if mode == "recurrent":
        return gated_delta_rule_recurrent(q, k, v, g, beta, initial_state)
    return gated_delta_rule_chunked(q, k, v, g, beta, initial_state, chunk_size=chunk_size)


def attention(q, k, v, visible, temperature, return_weights=False):
    """Selective attention; see ham_core.model.ops.attention. The kernel never forms the weights,
    so a call that wants them runs the reference."""
    if not return_weights and use_kernels(q, k, v, temperature):
        from kernels import selective_attention as kernel

        return kernel(q, k, v, visible, temperature, return_weights=False)
    return selective_attention(q, k, v, visible, temperature, return_weights=return_weights)


def decode_attention(q, keys, values, temperature):
    """One query over the compact cache; see ham_core.model.ops.attention.cache_attention."""
    if use_kernels(q, keys, values, temperature):
        from kernels import cache_attention as kernel

        return kernel(q, keys, values, temperature)
    return cache_attention(q, keys, values, temperature)
