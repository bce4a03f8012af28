"""The HAM layer, step by step as in docs/DESIGN.md section 2.

An RNN (gated delta rule) summarises every token; the tokens it failed to predict are routed
into a KV cache that selective attention reads exactly. The layer's forward returns the
output and a `LayerTrace` with everything the views draw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import dispatch
from .config import HEAD_RULES, HAMConfig
from .ops.attention import AttentionOutput
from .ops.delta_rule import SURPRISE_MAX, DeltaRuleOutput

# A route decides, from the layer's own surprise [B, T, H] and committed residual [B, T, H],
# which keys each query may read: a cached mask [B, T] or a query-by-key mask [B, T, T].
Route = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def layer_surprise(surprise: torch.Tensor, rule: str) -> torch.Tensor:
    """surprise [..., H] per head -> [...] the layer's surprise under `rule` (config.HEAD_RULES).

    How a layer's heads combine into the one number routing compares with tau (docs/DESIGN.md
    step 5): "min" caches a token only when every head failed to predict it, so heads that
    never read the cache veto what the reading head needs; "max" caches it when any head did."""
    if rule == "max":
        return surprise.amax(-1)
    if rule == "mean":
        return surprise.mean(-1)
    if rule == "min":
        return surprise.amin(-1)
    raise ValueError(f"head rule must be one of {', '.join(HEAD_RULES)}, got {rule!r}")


def threshold_route(tau: torch.Tensor, heads: str) -> Route:
    """HAM routing: cache token t when its layer surprise (heads combined by `heads`) reaches tau [B]."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return layer_surprise(surprise, heads) >= tau[:, None]

    return route


def recent_mask(T: int, W: int, device=None) -> torch.Tensor:
    """[T, T] query t reads keys t - W + 1 .. t (W = 0: nothing). Diagonal bands, no index maths."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril().triu(1 - W)


def window_route(window: int) -> Route:
    """The window architecture's routing: each query reads its last `window` tokens, itself
    included (the compact-cache decode keeps the same W keys): a [B, T, T] mask."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        B, T = surprise.shape[:2]
        return recent_mask(T, window, surprise.device).expand(B, T, T)

    return route


def every_token_route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The Transformer's routing: every token is cached, [B, T]."""
    return torch.ones(surprise.shape[:2], dtype=torch.bool, device=surprise.device)


class RMSNorm(nn.Module):
    """RMSNorm over the last dim; `shape` may be (D,) or (H, D) for per-head norms."""

    def __init__(self, shape, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ShortConv(nn.Module):
    """Causal depthwise convolution of width conv_size, then SiLU (as in Gated DeltaNet)."""

    def __init__(self, channels: int, conv_size: int):
        super().__init__()
        self.conv_size = conv_size
        self.weight = nn.Parameter(torch.randn(channels, 1, conv_size) / math.sqrt(conv_size))

    def forward(self, x: torch.Tensor, history: Optional[torch.Tensor] = None):
        """x [B, T, C]; history [B, conv_size - 1, C] (earlier inputs, decode) -> y, new history."""
        B, T, C = x.shape
        if history is None:
            history = x.new_zeros(B, self.conv_size - 1, C)
        full = torch.cat([history, x], 1)
        y = F.conv1d(full.transpose(1, 2), self.weight, groups=C).transpose(1, 2)
        return F.silu(y), full[:, -(self.conv_size - 1):]


@dataclass
class Projections:
    """What one layer computed from each token's input, as the forward computed it: steps 1-2
    and step 7's two gates (B texts, T tokens, H heads of D)."""

    q: torch.Tensor                        # [B, T, H, D] unit-length queries
    k: torch.Tensor                        # [B, T, H, D] unit-length keys
    v: torch.Tensor                        # [B, T, H, D] values
    g: torch.Tensor                        # [B, T, H] log decay, alpha = exp(g)
    beta: torch.Tensor                     # [B, T, H] write strength
    gate_rnn: torch.Tensor                 # [B, T, H] g^R, how much of the RNN's read-out is used
    gate_attn: torch.Tensor                # [B, T, H] g^A, how much of the attention's read-out is used


@dataclass
class LayerTrace:
    """What one HAM layer did on a text (B texts of T tokens, H heads)."""

    surprise: torch.Tensor                 # [B, T, H] per-head RNN surprise e_t^h, in the layer's units
    layer_surprise: torch.Tensor           # [B, T] the heads combined by the layer's rule (what tau is compared with)
    residual: torch.Tensor                 # [B, T, H] committed residual ||u_t|| (HOLA score)
    visible: torch.Tensor                  # [B, T] cached mask, or [B, T, T] query-by-key
    weights: Optional[torch.Tensor]        # [B, H, T, T] attention weights, when asked for
    sink: Optional[torch.Tensor]           # [B, H, T] the sink's share, when asked for
    final_state: torch.Tensor              # [B, H, D, D] RNN state after the last token
    projections: Optional[Projections] = None   # steps 1-2, when asked for
    rnn_gate: Optional[torch.Tensor] = None     # [B, T, H] step 7's g^R
    attn_gate: Optional[torch.Tensor] = None    # [B, T, H] step 7's g^A (near 0: the cache path is off)


class HAMLayer(nn.Module):
    """One layer of any architecture (config.ARCHITECTURES): a path the architecture lacks (the
    Transformer's RNN, GDN's attention) is not built, so it has no parameters and costs nothing."""

    def __init__(self, cfg: HAMConfig, index: int = 0):
        super().__init__()
        self.cfg = cfg
        self.index = index                  # which layer: its surprise scale is cfg's entry
        H, D, inner = cfg.n_heads, cfg.head_dim, cfg.inner_dim
        self.has_rnn, self.has_attention = cfg.has_rnn, cfg.has_attention
        self.qkv = nn.Linear(cfg.d_model, 3 * inner, bias=False)
        self.conv = ShortConv(3 * inner, cfg.conv_size)
        # g^R and g^A per head, in that order; a layer with one path has that path's gate only
        self.gate_proj = nn.Linear(cfg.d_model, (int(self.has_rnn) + int(self.has_attention)) * H)
        if self.has_rnn:
            self.decay_proj = nn.Linear(cfg.d_model, H, bias=False)
            self.beta_proj = nn.Linear(cfg.d_model, H, bias=False)
            # Decay rates as in Mamba / Gated DeltaNet: A in [1, 16], dt in [1e-3, 1e-1].
            self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
            dt = torch.exp(torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))   # softplus^-1(dt)
            self.rnn_norm = RMSNorm((H, D), cfg.norm_eps)
        if self.has_attention:
            self.log_temperature = nn.Parameter(torch.full((H,), math.log(math.sqrt(D))))
            self.log_score_gain = nn.Parameter(torch.zeros(H, D)) if cfg.score_gain else None
            self.attn_norm = RMSNorm((H, D), cfg.norm_eps)
        else:
            self.log_score_gain = None
        self.out_proj = nn.Linear(inner, cfg.d_model, bias=False)

    def attention_gate_rows(self) -> Optional[slice]:
        """Which outputs of gate_proj are g^A (None when the layer has no attention)."""
        if not self.has_attention:
            return None
        H = self.cfg.n_heads
        return slice(H, 2 * H) if self.has_rnn else slice(0, H)

    @property
    def temperature(self) -> torch.Tensor:
        """[H] step 6's logit scale c_h (0 in a layer without attention: it scores nothing)."""
        if not self.has_attention:
            return self.gate_proj.weight.new_zeros(self.cfg.n_heads)
        return self.log_temperature.exp()

    def read_query(self, q: torch.Tensor) -> torch.Tensor:
        """Step 6's query from the unit query q [..., H, D]: times the per-channel score gain when
        the model has one (the RNN reads with q itself)."""
        return q if self.log_score_gain is None else q * self.log_score_gain.exp()

    def sharpness(self) -> torch.Tensor:
        """[H] each head's logit scale for a match spread evenly over channels: the temperature
        times the gain's root mean square (the temperature alone without a gain)."""
        if self.log_score_gain is None:
            return self.temperature
        return self.temperature * self.log_score_gain.exp().pow(2).mean(-1).sqrt()

    def routed_surprise(self, surprise: torch.Tensor) -> torch.Tensor:
        """Step 5's surprise in this layer's own units: e x scale, capped at SURPRISE_MAX, so one
        threshold means alike in every layer (scale 1 leaves the cosine distance as it is)."""
        scale = self.cfg.layer_surprise_scale(self.index)
        return surprise if scale == 1.0 else (surprise * scale).clamp(max=SURPRISE_MAX)

    def layer_surprise(self, surprise: torch.Tensor) -> torch.Tensor:
        """Step 5's one number per token: routed surprise [..., H] -> [...] by cfg.head_rule."""
        return layer_surprise(surprise, self.cfg.head_rule)

    def project(self, x: torch.Tensor, conv_history: Optional[torch.Tensor] = None):
        """Steps 1-2: x [B, T, d_model] -> q, k, v [B, T, H, D], g, beta [B, T, H], history
        (g and beta are None in a layer without an RNN)."""
        B, T, _ = x.shape
        H, D = self.cfg.n_heads, self.cfg.head_dim
        qkv, history = self.conv(self.qkv(x), conv_history)
        q, k, v = (x.contiguous() for x in qkv.view(B, T, 3, H, D).unbind(2))   # fused attention wants contiguous
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        if not self.has_rnn:
            return q, k, v, None, None, history
        g = -self.A_log.exp() * F.softplus(self.decay_proj(x) + self.dt_bias)   # log alpha < 0
        beta = torch.sigmoid(self.beta_proj(x))
        return q, k, v, g, beta, history

    def mix_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 7's gates from x [B, T, d_model]: g^R and g^A [B, T, H], each in (0, 1); g^A never
        falls below cfg.attn_gate_floor. A path the layer lacks reads 0 (its output is not added)."""
        gates = torch.sigmoid(self.gate_proj(x))
        if self.has_rnn and self.has_attention:
            gate_rnn, gate_attn = gates.chunk(2, -1)
        else:
            gate_rnn, gate_attn = (gates, torch.zeros_like(gates)) if self.has_rnn else (torch.zeros_like(gates), gates)
        floor = self.cfg.attn_gate_floor
        if floor and self.has_attention:
            gate_attn = floor + (1 - floor) * gate_attn
        return gate_rnn, gate_attn

    def combine(self, x: torch.Tensor, o_rnn: Optional[torch.Tensor], o_attn: Optional[torch.Tensor],
                gates=None) -> torch.Tensor:
        """Step 7: W_o [g^R RMSNorm(o^R) + g^A RMSNorm(o^A)], gates per head from x (or given); a
        path the layer lacks (its read-out None) adds nothing."""
        gate_rnn, gate_attn = self.mix_gates(x) if gates is None else gates
        mixed = 0
        if self.has_rnn:
            mixed = mixed + gate_rnn[..., None] * self.rnn_norm(o_rnn)
        if self.has_attention:
            mixed = mixed + gate_attn[..., None] * self.attn_norm(o_attn)
        return self.out_proj(mixed.flatten(-2))

    def no_rnn(self, q: torch.Tensor) -> DeltaRuleOutput:
        """What a layer without an RNN reports for steps 3-4, from q [B, T, H, D]: no prediction
        (surprise 1, as for an empty state, docs/DESIGN.md step 3), nothing committed, no read-out
        and an empty state [B, H, 0, 0] (it holds no numbers)."""
        B, T, H, _ = q.shape
        return DeltaRuleOutput(out=None, surprise=q.new_ones(B, T, H), final_state=q.new_zeros(B, H, 0, 0),
                               residual=q.new_zeros(B, T, H))

    def no_attention(self, q: torch.Tensor, return_weights: bool) -> AttentionOutput:
        """What a layer without attention reports for step 6: no read-out and, when asked, every
        query's weight on the sink (it reads nothing): weights [B, H, T, T] 0, sink [B, H, T] 1."""
        B, T, H, _ = q.shape
        if not return_weights:
            return AttentionOutput(None, None, None)
        return AttentionOutput(None, q.new_zeros(B, H, T, T), q.new_ones(B, H, T))

    def forward(
        self,
        x: torch.Tensor,
        route: Route,
        mode: str = "chunked",
        return_weights: bool = False,
        keep_projections: bool = False,
    ):
        """x [B, T, d_model] -> (y [B, T, d_model], LayerTrace). keep_projections puts q, k, v,
        g, beta and the two mixing gates in the trace (what the views show of steps 1-2 and 7,
        and what reads need)."""
        q, k, v, g, beta, _ = self.project(x)                                  # steps 1-2
        if self.has_rnn:                                                       # 3-4
            rnn = dispatch.delta_rule(q, k, v, g, beta, mode=mode, chunk_size=self.cfg.chunk_size)
        else:
            rnn = self.no_rnn(q)
        surprise = self.routed_surprise(rnn.surprise)
        if self.has_attention:
            visible = route(surprise, rnn.residual)                            # step 5
            attn = dispatch.attention(self.read_query(q), k, v, visible, self.temperature, return_weights)  # step 6
        else:
            visible = torch.zeros(surprise.shape[:2], dtype=torch.bool, device=x.device)   # nothing is cached
            attn = self.no_attention(q, return_weights)
        gates = self.mix_gates(x)
        y = self.combine(x, rnn.out, attn.out, gates)                          # step 7
        trace = LayerTrace(surprise, self.layer_surprise(surprise), rnn.residual, visible, attn.weights, attn.sink, rnn.final_state,
                           Projections(q, k, v, g, beta, *gates) if keep_projections else None, *gates)
        return y, trace
