"""The two operators a HAM layer is built from, each a plain PyTorch reference.

- `delta_rule`: the gated delta rule RNN with surprise, recurrent and chunked forms;
- `attention`: selective attention over cached keys with a sink logit.

kernels/ holds Triton versions with the same signatures; `dispatch` picks between them.
"""
from .attention import AttentionOutput, cache_attention, selective_attention, sink_softmax, visibility_mask
from .delta_rule import (
    DeltaRuleOutput,
    cosine_surprise,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
)

__all__ = [
    "AttentionOutput",
    "cache_attention",
    "visibility_mask",
    "DeltaRuleOutput",
    "cosine_surprise",
    "gated_delta_rule_chunked",
    "gated_delta_rule_recurrent",
    "selective_attention",
    "sink_softmax",
]
