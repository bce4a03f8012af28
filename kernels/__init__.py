"""Triton kernels for the GPU path, each with the signature of a ham_core reference.

- `fused_recurrent_gated_delta_rule` ~ ham_core.model.ops.gated_delta_rule_recurrent
- `chunk_gated_delta_rule`           ~ ham_core.model.ops.gated_delta_rule_chunked
- `selective_attention`              ~ ham_core.model.ops.selective_attention (forward, no weights)
- `cache_attention`                  ~ ham_core.model.ops.cache_attention

Forward only. They run on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1 (how the
tests prove them). ham_core.model.dispatch decides when to use them.
"""
from .attention import cache_attention, selective_attention
from .delta_rule_chunked import chunk_gated_delta_rule
from .delta_rule_recurrent import fused_recurrent_gated_delta_rule

__all__ = [
    "cache_attention",
    "chunk_gated_delta_rule",
    "fused_recurrent_gated_delta_rule",
    "selective_attention",
]
