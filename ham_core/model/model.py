"""The HAM language model: embedding, pre-norm blocks (HAM + SwiGLU), final norm, tied head.

`HAMModel.forward(ids, tau)` reads a batch of texts and returns a `HAMOutput`: logits plus the
per-layer surprise, what was cached, optional attention reads, and honest KV-cache accounting.
Routing is chosen by one of: the architecture's own (config.ARCHITECTURES: HAM by `tau`, a
float, one per layer, or [B, L]; a window model by `window`, its W; the Transformer caches every
token and GDN has no cache), `visibility` (an explicit per-layer mask, for other selection
policies), or `routes` (one function per layer deciding from that layer's own surprise and
residual).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ham_core.errors import HAMInputError

from .config import HAMConfig
from .layer import HAMLayer, LayerTrace, Projections, RMSNorm, Route, every_token_route, threshold_route, window_route

TauLike = Union[float, Sequence[float], torch.Tensor]


class SwiGLU(nn.Module):
    def __init__(self, cfg: HAMConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        gate, up = self.up(x).chunk(2, -1)
        return self.down(F.silu(gate) * up)


class HAMBlock(nn.Module):
    """x + HAM(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, cfg: HAMConfig, index: int = 0):
        super().__init__()
        self.ham_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ham = HAMLayer(cfg, index)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, route: Route, mode: str, return_weights: bool, keep_projections: bool = False):
        y, trace = self.ham(self.ham_norm(x), route, mode, return_weights, keep_projections)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), trace


@dataclass
class TopKReads:
    """The k largest attention weights of each query: values and key indices [B, H, T, k]."""

    values: torch.Tensor
    indices: torch.Tensor


@dataclass
class HAMOutput:
    """One forward over B texts of T tokens through L layers of H heads."""

    logits: torch.Tensor                   # [B, T, V]
    surprise: torch.Tensor                 # [B, L, T, H] per-head RNN surprise (each layer's units, step 5)
    layer_surprise: torch.Tensor           # [B, L, T] the heads combined by cfg.head_rule (what tau is compared with)
    residual: torch.Tensor                 # [B, L, T, H] committed residual (HOLA score)
    cached: torch.Tensor                   # [B, L, T] token is in the layer's KV cache (read by some query)
    visible: List[torch.Tensor]            # per layer: [B, T] cached mask or [B, T, T] query-by-key
    kv_peak: torch.Tensor                  # [B, L] most keys any query could read
    kv_bytes_peak: torch.Tensor            # [B] sum over layers of peak x 2 x H x D x bytes
    kv_bytes_full: int                     # the same for a full cache of T tokens
    state_bytes: int                       # RNN state: L x H x D x D x bytes, whatever T is
    attention: Optional[list] = None       # per layer: [B, H, T, T] weights or TopKReads
    sink: Optional[torch.Tensor] = None    # [B, L, H, T] the sink's share, when attention asked
    final_states: Optional[List[torch.Tensor]] = None  # per layer [B, H, D, D]
    projections: Optional[List[Projections]] = None    # per layer q, k, v, g, beta, when asked
    rnn_gate: Optional[torch.Tensor] = None             # [B, L, T, H] step 7's g^R
    attn_gate: Optional[torch.Tensor] = None            # [B, L, T, H] step 7's g^A

    @property
    def kv_fraction(self) -> torch.Tensor:
        """[B] peak KV cache as a fraction of a full cache."""
        return self.kv_bytes_peak.double() / max(self.kv_bytes_full, 1)


def kv_peak_keys(visible: torch.Tensor) -> torch.Tensor:
    """Most keys any query can read (causally): visible [B, T] or [B, T, T] -> [B]."""
    if visible.dim() == 2:
        return visible.sum(-1)
    causal = torch.ones(visible.shape[-2:], dtype=torch.bool, device=visible.device).tril()
    return (visible & causal).sum(-1).amax(-1)


def resolve_tau(tau: TauLike, batch: int, n_layers: int, device=None) -> torch.Tensor:
    """A float, a per-layer list, or a [L] / [B, L] tensor -> thresholds [B, L]."""
    try:
        t = torch.as_tensor(tau, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise HAMInputError(f"tau must be a number or one number per layer, got {tau!r}") from None
    if t.dim() == 0:
        t = t.expand(n_layers)
    if t.dim() == 1:
        if t.shape[0] != n_layers:
            raise HAMInputError(f"tau needs one value per layer ({n_layers}), got {t.shape[0]}")
        t = t.expand(batch, n_layers)
    if t.shape != (batch, n_layers):
        raise HAMInputError(f"tau must be [B, L] = [{batch}, {n_layers}], got {list(t.shape)}")
    if torch.isnan(t).any() or (t < 0).any():
        raise HAMInputError(f"tau must be >= 0 and not NaN, got {t.flatten().tolist()[:8]}")
    return t


class HAMModel(nn.Module):
    def __init__(self, cfg: HAMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(HAMBlock(cfg, l) for l in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.apply(self._init)
        for block in self.blocks:   # residual branches start small (GPT-2 style)
            for proj in (block.ham.out_proj, block.mlp.down):
                nn.init.normal_(proj.weight, std=cfg.init_std / (2 * cfg.n_layers) ** 0.5)

    def _init(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.cfg.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm and the output head tied to the embedding: [B, T, d] -> [B, T, V]."""
        return self.norm(h) @ self.embed.weight.T

    def check_ids(self, ids) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            raise HAMInputError(f"ids must be a torch.Tensor of token ids, got {type(ids).__name__}")
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise HAMInputError(f"ids must be an integer tensor, got dtype {ids.dtype}")
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2:
            raise HAMInputError(f"ids must be [B, T], got shape {list(ids.shape)}")
        if ids.shape[0] == 0 or ids.shape[1] == 0:
            raise HAMInputError("ids is empty: need at least one token")
        if ids.min() < 0 or ids.max() >= self.cfg.vocab_size:
            raise HAMInputError(
                f"ids out of range: values must be in [0, {self.cfg.vocab_size}), "
                f"got {ids.min().item()}..{ids.max().item()}"
            )
        return ids.long().to(self.device)

    def _routes(self, B, T, tau, visibility, routes, window) -> List[Route]:
        L = self.cfg.n_layers
        if routes is not None:
            if len(routes) != L:
                raise HAMInputError(f"routes needs one function per layer ({L}), got {len(routes)}")
            return list(routes)
        if visibility is not None:
            vis = torch.as_tensor(visibility, device=self.device).bool()
            if vis.shape[:3] != (B, L, T) or vis.dim() not in (3, 4) or (vis.dim() == 4 and vis.shape[3] != T):
                raise HAMInputError(
                    f"visibility must be [B, L, T] or [B, L, T, T] = [{B}, {L}, {T}(, {T})], got {list(vis.shape)}"
                )
            return [lambda s, r, m=vis[:, l]: m for l in range(L)]
        taus = resolve_tau(tau, B, L, self.device)
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
            raise HAMInputError(f"window must be a whole number of tokens >= 0, got {window!r}")
        if self.cfg.architecture == "ham":
            return [threshold_route(taus[:, l], self.cfg.head_rule) for l in range(L)]
        if self.cfg.architecture == "window":
            return [window_route(T if window is None else window)] * L
        return [every_token_route] * L        # the Transformer; GDN's layers have nothing to route

    def forward(
        self,
        ids: torch.Tensor,
        tau: TauLike = 0.0,
        *,
        visibility: Optional[torch.Tensor] = None,
        routes: Optional[Sequence[Route]] = None,
        mode: str = "chunked",
        attention: Union[None, str, int] = None,
        projections: bool = False,
        window: Optional[int] = None,
    ) -> HAMOutput:
        """ids [B, T] (or [T]); attention: None, "all" (weights [B, H, T, T]) or k (top-k reads);
        projections: also return each layer's q, k, v, g, beta (this call's own, so concurrent
        callers of one model never see each other's; the model is not changed by a forward).
        tau routes a HAM model only and window (W tokens; None: every token) a window model only."""
        if mode not in ("chunked", "recurrent"):
            raise HAMInputError(f"mode must be 'chunked' or 'recurrent', got {mode!r}")
        if attention is not None and attention != "all" and not (
            isinstance(attention, int) and not isinstance(attention, bool) and attention > 0
        ):
            raise HAMInputError(f"attention must be None, 'all' or a positive int, got {attention!r}")
        ids = self.check_ids(ids)
        B, T = ids.shape
        route_fns = self._routes(B, T, tau, visibility, routes, window)
        x = self.embed(ids)
        traces: List[LayerTrace] = []
        for block, route in zip(self.blocks, route_fns):
            x, trace = block(x, route, mode, attention is not None, projections)
            traces.append(trace)
        return self._output(self.head(x), traces, attention)

    def _output(self, logits, traces: List[LayerTrace], attention) -> HAMOutput:
        cfg = self.cfg
        B, T = logits.shape[:2]
        per_key = 2 * cfg.n_heads * cfg.head_dim * self.embed.weight.element_size()
        kv_peak = torch.stack([kv_peak_keys(t.visible) for t in traces], 1)
        cached = torch.stack(
            [t.visible if t.visible.dim() == 2 else (t.visible & torch.ones(T, T, dtype=torch.bool, device=logits.device).tril()).any(-2) for t in traces], 1
        )
        reads, sink = None, None
        if attention is not None:
            sink = torch.stack([t.sink for t in traces], 1)
            if attention == "all":
                reads = [t.weights for t in traces]
            else:
                k = min(attention, T)
                reads = [TopKReads(*t.weights.topk(k, dim=-1)) for t in traces]
        return HAMOutput(
            logits=logits,
            surprise=torch.stack([t.surprise for t in traces], 1),
            layer_surprise=torch.stack([t.layer_surprise for t in traces], 1),
            residual=torch.stack([t.residual for t in traces], 1),
            cached=cached,
            visible=[t.visible for t in traces],
            kv_peak=kv_peak,
            kv_bytes_peak=kv_peak.sum(1) * per_key,
            kv_bytes_full=T * cfg.n_layers * per_key,
            state_bytes=cfg.n_layers * cfg.n_heads * cfg.head_dim ** 2 * self.embed.weight.element_size() * cfg.has_rnn,
            attention=reads,
            sink=sink,
            final_states=[t.final_state for t in traces],
            projections=[t.projections for t in traces] if traces[0].projections is not None else None,
            rnn_gate=torch.stack([t.rnn_gate for t in traces], 1),
            attn_gate=torch.stack([t.attn_gate for t in traces], 1),
        )


def next_token_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """-log p(ids[t] | ids[<t]) in nats for t >= 1: logits [B, T, V], ids [B, T] -> [B, T - 1]."""
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    return -logp.gather(-1, ids[:, 1:, None].long()).squeeze(-1)
