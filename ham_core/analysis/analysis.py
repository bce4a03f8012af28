"""The analysis engine: (model, text, thresholds, policy) -> the numbers the views draw.

`analyze` reads one text in one forward and returns an `Analysis`: per token its text and
character span, the model's next-token surprisal, the RNN surprise per layer and head, and
whether it entered each layer's KV cache; overall loss, perplexity and honest memory figures.
`Analysis.reads(query, layer)` gives what a query's attention read, computed on demand from the
q and k this very forward produced (no T x T weight tensors are kept, and nothing is hooked
onto the model: it stays read-only, so any number of threads may analyse with one model).

Texts longer than `model.cfg.max_tokens` (4,096 for the shipped model) are cut to that many
tokens; the result says so (`truncated`, `notice`). Empty text raises HAMInputError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ham_core.analysis.readmap import ReadMap, read_map
from ham_core.errors import HAMInputError
from ham_core.model.dispatch import device_label
from ham_core.model.layer import layer_surprise
from ham_core.model.model import HAMModel, next_token_nll
from ham_core.model.ops import sink_softmax
from ham_core.model.policies import run_policy

GUESSES = 5                  # the model's top guesses kept per position (GLTR-style tooltips)


class TruncationWarning(UserWarning):
    """A text longer than the model's maximum was cut (the message says by how much)."""


def check_tau(value, what: str = "tau") -> float:
    """A threshold as a float: finite and >= 0 (0 caches every token, above 2 caches none)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HAMInputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise HAMInputError(
            f"{what} must be a finite number >= 0 (0 caches every token, above 2 none), got {value!r}"
        )
    return x


def layer_taus(n_layers: int, tau: Union[float, Sequence[float]] = 0.5,
               layer_tau: Optional[Mapping[int, float]] = None) -> List[float]:
    """Per-layer thresholds [L] from a global tau (or one per layer) and {layer: tau} overrides."""
    if isinstance(tau, (list, tuple)) or (isinstance(tau, torch.Tensor) and tau.dim() == 1):
        values = [check_tau(t) for t in list(tau)]
        if len(values) != n_layers:
            raise HAMInputError(f"tau needs one value per layer ({n_layers}), got {len(values)}")
    else:
        values = [check_tau(tau)] * n_layers
    for layer, value in dict(layer_tau or {}).items():
        if not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise HAMInputError(f"layer {layer!r} does not exist: the model has layers 0..{n_layers - 1}")
        values[layer] = check_tau(value, f"tau of layer {layer}")
    return values


def prepare_tokens(model: HAMModel, tokenizer, text: str):
    """Tokens of `text`, cut to model.cfg.max_tokens -> (tokens, total count, notice or "")."""
    if not isinstance(text, str):
        raise HAMInputError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise HAMInputError("the text is empty (or only whitespace): give some text to read")
    tokens = tokenizer.tokenize(text)
    limit = model.cfg.max_tokens
    if len(tokens) <= limit:
        return tokens, len(tokens), ""
    notice = (f"the text has {len(tokens):,} tokens; only the first {limit:,} were read "
              f"(the maximum for this model)")
    return tokens[:limit], len(tokens), notice


@dataclass
class Reads:
    """What one query's attention read in one layer (H heads, n keys it could read)."""

    query: int
    layer: int
    keys: List[int]               # cached token positions <= query, ascending
    weights: torch.Tensor         # [H, n] weight of each key, per head
    sink: torch.Tensor            # [H] the sink's share ("read nothing"); weights + sink = 1

    @property
    def mean(self) -> torch.Tensor:
        """[n] weights averaged over heads."""
        return self.weights.mean(0)

    @property
    def mean_sink(self) -> float:
        return float(self.sink.mean())

    def top(self, k: Optional[int] = None, head: Optional[int] = None) -> List[Tuple[int, float]]:
        """(key position, weight) pairs, largest first: one head's, or averaged over heads."""
        w = self.mean if head is None else self.weights[head]
        order = w.argsort(descending=True, stable=True)[:k]
        return [(self.keys[i], float(w[i])) for i in order.tolist()]


@dataclass
class ReadContext:
    """What computing attention reads needs, copied out of one forward (this call's own tensors:
    nothing is kept on the model, so concurrent analyses never share it)."""

    q: List[torch.Tensor]                 # per layer [T, H, D] attention queries (HAMLayer.read_query)
    k: List[torch.Tensor]                 # per layer [T, H, D] unit keys
    visible: List[torch.Tensor]           # per layer [T] cached mask or [T, T] query-by-key
    temperature: torch.Tensor             # [L, H] per-head logit scale c_h

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.q, *self.k, *self.visible, self.temperature))

    def reads(self, query: int, layer: int) -> Reads:
        """Attention reads of token `query` in `layer`: the keys it could read and their weights."""
        T, L = self.q[0].shape[0], len(self.q)
        if not isinstance(query, int) or isinstance(query, bool) or not 0 <= query < T:
            raise HAMInputError(f"query must be a token index in 0..{T - 1}, got {query!r}")
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < L:
            raise HAMInputError(f"layer must be in 0..{L - 1}, got {layer!r}")
        q, k, visible = self.q[layer], self.k[layer], self.visible[layer]
        row = (visible if visible.dim() == 1 else visible[query])[: query + 1]
        keys = row.nonzero().flatten()
        with torch.no_grad():
            weights, sink = sink_softmax(torch.einsum("hd,nhd->hn", q[query], k[keys]) * self.temperature[layer][:, None])
        return Reads(query, layer, keys.tolist(), weights.float().cpu(), sink.float().cpu())

    def read_map(self, layer: int, top: int = 8, head: Optional[int] = None) -> ReadMap:
        """The `top` largest reads of every token in `layer` (one head, or averaged over heads);
        each row agrees with `reads(query, layer)`."""
        L, H = len(self.q), self.q[0].shape[1]
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < L:
            raise HAMInputError(f"layer must be in 0..{L - 1}, got {layer!r}")
        if head is not None and not (isinstance(head, int) and 0 <= head < H):
            raise HAMInputError(f"head must be None (mean) or in 0..{H - 1}, got {head!r}")
        return read_map(self.q[layer], self.k[layer], self.visible[layer], self.temperature[layer], layer, top, head)


@dataclass
class StepValues:
    """Steps 1-2 and step 7's gates of every layer as the analysed forward computed them: [L, T, H] each."""

    k_norm: torch.Tensor                  # ||k|| (1 after the L2 norm; shown so the claim is checkable)
    v_norm: torch.Tensor                  # ||v||
    alpha: torch.Tensor                   # decay exp(g), in (0, 1)
    beta: torch.Tensor                    # write strength, in (0, 1)
    gate_rnn: torch.Tensor                # g^R: share of the RNN's read-out used, in (0, 1)
    gate_attn: torch.Tensor               # g^A: share of the attention's read-out used, in (0, 1)

    @classmethod
    def from_projections(cls, projections) -> "StepValues":
        """A layer without an RNN (the Transformer) has no decay or write strength: both read 0,
        a memory that keeps nothing and is written nothing."""
        stack = lambda f: torch.stack([f(p)[0] for p in projections]).float().cpu()  # noqa: E731
        rnn = lambda f: lambda p: torch.zeros_like(p.gate_rnn) if p.g is None else f(p)   # noqa: E731
        return cls(stack(lambda p: p.k.norm(dim=-1)), stack(lambda p: p.v.norm(dim=-1)),
                   stack(rnn(lambda p: p.g.exp())), stack(rnn(lambda p: p.beta)),
                   stack(lambda p: p.gate_rnn), stack(lambda p: p.gate_attn))


@dataclass
class Analysis:
    """One text read by one model at per-layer thresholds `tau` under a selection policy."""

    model: str
    device: str
    policy: str
    tau: List[float]                       # [L]
    tokens: list                           # [T] tokenizer Tokens (id, text, start, end)
    lm_surprisal: List[Optional[float]]    # [T] -log p(token | earlier) in nats; None for the first
    surprise_heads: torch.Tensor           # [L, T, H] RNN surprise per head
    cached: torch.Tensor                   # [L, T] bool: in the layer's KV cache (read by some query)
    kv_peak: List[int]                     # [L] most keys any query could read
    loss: Optional[float]                  # mean next-token loss, nats/token (None for one token)
    perplexity: Optional[float]
    kv_fraction: float                     # peak KV cache / full KV cache
    kv_bytes_peak: int
    kv_bytes_full: int
    state_bytes: int                       # RNN state, fixed whatever the length
    n_tokens_total: int                    # tokens in the whole text (> n_tokens when truncated)
    notice: str = ""                       # why the text was cut, "" when it was not
    seed: int = 0
    query_reads: Optional[List[Reads]] = None   # reads of the `query` token in every layer
    steps: Optional[StepValues] = field(default=None, repr=False, compare=False)
    context: Optional[ReadContext] = field(default=None, repr=False, compare=False)
    guess_ids: Optional[torch.Tensor] = None    # [T, GUESSES] the model's top guesses for token t
    guess_probs: Optional[torch.Tensor] = None  # [T, GUESSES] from the tokens before it, most likely
    # first (row 0, which nothing predicts, is -1 / 0)
    surprise_scale: Optional[List[float]] = None   # [L] each layer's surprise unit (docs/DESIGN.md step 5)
    head_rule: str = "max"                 # how heads combine into the layer's surprise (HAMConfig.head_rule)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def truncated(self) -> bool:
        return self.n_tokens_total > self.n_tokens

    @property
    def surprise(self) -> torch.Tensor:
        """[L, T] layer surprise: the heads combined by the model's rule (what routing uses)."""
        return layer_surprise(self.surprise_heads, self.head_rule)

    def reads(self, query: int, layer: int) -> Reads:
        """Attention reads of token `query` in `layer`: the keys it could read and their weights."""
        return self.context.reads(query, layer)

    def read_map(self, layer: int, top: int = 8, head: Optional[int] = None) -> ReadMap:
        """The `top` largest reads of every token in `layer` (see ReadContext.read_map)."""
        return self.context.read_map(layer, top, head)

    @property
    def kv_bytes_layers(self) -> List[int]:
        """[L] peak KV-cache bytes of each layer (keys and values of its peak cache)."""
        per_key = self.kv_bytes_full // max(self.n_tokens * len(self.tau), 1)
        return [int(p) * per_key for p in self.kv_peak]

    def to_dict(self, reads: int = 0, per_head: bool = False) -> dict:
        """The CLI's JSON: model, device, n_tokens, truncated, tau, surprise_scale, head_rule, policy, loss, perplexity,
        kv_fraction, kv_bytes_peak, kv_bytes_full, tokens [{text, start, end, lm_surprisal,
        surprise, cached}]; with reads=K each token also has "reads": per layer its K largest
        reads [[position, weight], ...] (weights averaged over heads, largest first), or with
        per_head per layer per head [L][H][K] that head's own reads: a lookup one head makes
        with weight 0.8 is a 0.2 smear in the average over four heads."""
        surprise = self.surprise.T.tolist()                  # [T][L]
        cached = self.cached.T.tolist()
        tokens = [
            {"text": tok.text, "start": tok.start, "end": tok.end,
             "lm_surprisal": None if lm is None else round(lm, 5),
             "surprise": [round(x, 5) for x in s], "cached": [bool(c) for c in kept]}
            for tok, lm, s, kept in zip(self.tokens, self.lm_surprisal, surprise, cached)
        ]
        if reads > 0:
            L, H = len(self.tau), self.surprise_heads.shape[-1]
            pair = lambda m, i: [[key, round(w, 5)] for key, w in m.row(i)]   # noqa: E731
            if per_head:
                maps = [[self.read_map(layer, top=reads, head=h) for h in range(H)] for layer in range(L)]
                for i, token in enumerate(tokens):
                    token["reads"] = [[pair(m, i) for m in heads] for heads in maps]
            else:
                maps = [self.read_map(layer, top=reads) for layer in range(L)]
                for i, token in enumerate(tokens):
                    token["reads"] = [pair(m, i) for m in maps]
        return {
            "model": self.model, "device": self.device, "n_tokens": self.n_tokens, "truncated": self.truncated,
            "tau": list(self.tau), "surprise_scale": self.surprise_scale, "head_rule": self.head_rule,
            "policy": self.policy, "loss": self.loss, "perplexity": self.perplexity,
            "kv_fraction": self.kv_fraction, "kv_bytes_peak": self.kv_bytes_peak,
            "kv_bytes_full": self.kv_bytes_full, "tokens": tokens,
        }


def describe_model(model: HAMModel) -> str:
    cfg = model.cfg
    return f"HAM {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model} ({model.num_parameters():,} parameters)"


def analyze(
    model: HAMModel,
    tokenizer,
    text: str,
    tau: Union[float, Sequence[float]] = 0.5,
    policy: str = "ham",
    layer_tau: Optional[Mapping[int, float]] = None,
    query: Optional[int] = None,
    *,
    seed: int = 0,
    model_name: Optional[str] = None,
) -> Analysis:
    """Read `text` at thresholds `tau` (global, or one per layer; `layer_tau` overrides single
    layers) with selection `policy`; `query` also fills `query_reads` for that token."""
    tokens, total, notice = prepare_tokens(model, tokenizer, text)
    taus = layer_taus(model.cfg.n_layers, tau, layer_tau)
    ids = torch.tensor([[t.id for t in tokens]], device=model.device)
    with torch.no_grad():
        out = run_policy(model, ids, taus, policy, seed=seed, projections=True)
        nll = next_token_nll(out.logits, ids)[0].double().cpu()
        probs, guess_ids = torch.softmax(out.logits[0, :-1].float(), -1).topk(min(GUESSES, out.logits.shape[-1]), dim=-1)
    if not (torch.isfinite(nll).all() and torch.isfinite(out.surprise).all()):
        raise HAMInputError("the model produced numbers that are not finite (NaN or infinity) for this text, "
                            "so there is nothing meaningful to show; check the model's weights")
    loss = float(nll.mean()) if len(nll) else None
    result = Analysis(
        model=model_name or describe_model(model),
        device=device_label(model.device),
        policy=policy,
        tau=taus,
        tokens=list(tokens),
        lm_surprisal=[None] + nll.tolist(),
        surprise_heads=out.surprise[0].float().cpu(),
        cached=out.cached[0].cpu(),
        kv_peak=out.kv_peak[0].tolist(),
        loss=loss,
        perplexity=None if loss is None else math.exp(min(loss, 700.0)),
        kv_fraction=float(out.kv_fraction[0]),
        kv_bytes_peak=int(out.kv_bytes_peak[0]),
        kv_bytes_full=int(out.kv_bytes_full),
        state_bytes=int(out.state_bytes),
        n_tokens_total=total,
        notice=notice,
        seed=seed,
        guess_ids=torch.cat([guess_ids.new_full((1, guess_ids.shape[1]), -1), guess_ids]).int().cpu(),
        guess_probs=torch.cat([probs.new_zeros(1, probs.shape[1]), probs]).cpu(),
        surprise_scale=model.cfg.surprise_scales(),
        head_rule=model.cfg.head_rule,
        steps=StepValues.from_projections(out.projections),
        context=ReadContext([b.ham.read_query(p.q[0]).detach() for b, p in zip(model.blocks, out.projections)],
                            [p.k[0] for p in out.projections],
                            [v[0] for v in out.visible],
                            torch.stack([b.ham.temperature for b in model.blocks]).detach().clone()),
    )
    if query is not None:
        result.query_reads = [result.reads(query, layer) for layer in range(len(taus))]
    return result
