"""The seven steps of a HAM layer (docs/DESIGN.md section 2) for one token, as numbers and as
words: what the How-it-works page draws and says. Pure functions of plain numbers, no Streamlit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from app.drawing.charts import fmt_bytes
from app.drawing.token_view import token_label


@dataclass
class TokenLayer:
    """Everything the diagram shows for token `index` in layer `layer` (numbers per head)."""

    index: int
    text: str
    layer: int
    n_layers: int
    head_dim: int
    conv_size: int
    tau: float
    surprise: np.ndarray                 # [H] per-head RNN surprise, in the layer's units (routing reads it)
    cached: bool
    alpha: np.ndarray                    # [H] decay
    beta: np.ndarray                     # [H] write strength
    v_norm: np.ndarray                   # [H] ||v||
    gate_rnn: np.ndarray                 # [H] g^R
    gate_attn: np.ndarray                # [H] g^A
    reads: list                          # [(key index, key text, weight)] largest first
    sink: float
    layer_cached: int                    # tokens the layer keeps
    n_tokens: int
    state_bytes: int                     # RNN state of this layer
    next_text: Optional[str] = None      # the token after this one, and its surprisal (nats)
    next_surprisal: Optional[float] = None
    loss: Optional[float] = None         # the text's mean loss (shown for the last token)
    scale: float = 1.0                   # the layer's surprise scale (1: units are the cosine distance)
    head: Optional[int] = None           # whose reads `reads` and `sink` are (None: the heads' mean)
    rule: str = "min"                    # how the heads combine (the model's head_rule)
    routing: Optional[float] = None      # the layer's surprise under `rule`, as routing compared it with tau

    @property
    def heads(self) -> int:
        return len(self.surprise)

    @property
    def routing_surprise(self) -> float:
        """The one number compared with tau (the engine's, combined by the model; a snapshot made
        without it is read by min, how the first models routed)."""
        return float(np.min(self.surprise)) if self.routing is None else float(self.routing)

    @property
    def cosine(self) -> np.ndarray:
        """[H] the cosine distance itself (surprise / scale; a capped 2 reads as its lower bound)."""
        return self.surprise / self.scale


@dataclass
class Step:
    number: int
    title: str
    values: str                          # the live numbers, one line
    words: str                           # what they mean, in a sentence
    data: dict = field(default_factory=dict)   # numbers for the drawing (and the browser test)


def nums(values: Sequence[float], digits: int = 2) -> str:
    return ", ".join(f"{float(v):.{digits}f}" for v in values)


def surprise_words(e: float) -> str:
    """What a surprise value says about the RNN's guess (cosine distance, 0 to 2)."""
    if abs(e - 1.0) < 1e-6:
        return "no guess at all: the memory had nothing for this key (an empty guess counts as 1)"
    if e < 0.05:
        return "the RNN's guess was almost exactly the real value"
    if e < 0.3:
        return "the RNN's guess pointed the right way"
    if e < 0.7:
        return "the RNN's guess was partly right"
    if e < 1.0:
        return "the RNN's guess was barely related to the real value"
    if e < 1.3:
        return "the RNN's guess pointed slightly away from the real value"
    return "the RNN's guess pointed away from the real value"


def half_life(alpha: float) -> float:
    """Tokens after which a decay alpha per token leaves half the memory."""
    return math.inf if alpha >= 1 else math.log(0.5) / math.log(max(alpha, 1e-12))


def _span(values: np.ndarray, fmt: str) -> str:
    lo, hi = float(np.min(values)), float(np.max(values))
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def _life(life: float) -> str:
    return "∞" if math.isinf(life) else f"{life:.0f}" if life >= 10 else f"{life:.1f}"


def output(s: TokenLayer) -> tuple[str, str]:
    """What comes out after the last layer for this token: (numbers, words)."""
    if s.next_text is not None and s.next_surprisal is not None and s.next_surprisal == s.next_surprisal:
        return (f"next token {token_label(s.next_text)}: surprisal {s.next_surprisal:.2f} nats",
                f"after the last layer the model gave the next token a probability of {math.exp(-s.next_surprisal):.1%}")
    return ("last token of the text" + (f" · text loss {s.loss:.3f} nats/token" if s.loss is not None else ""),
            "there is no next token to predict; the loss is the mean surprisal over the text")


def default_token(tokens: Sequence[str], cached: Sequence[bool]) -> int:
    """The token a page opens on when none is chosen: the last one that entered the layer's
    cache and is not only whitespace (else the last that is not whitespace, else the last)."""
    shown = [i for i, t in enumerate(tokens) if t.strip()]
    kept = [i for i in shown if cached[i]]
    return (kept or shown or [len(tokens) - 1])[-1]


def cached_when(rule: str) -> str:
    """When a token enters the cache under a head rule, as the words before "the threshold"."""
    return {"max": "at least one head was surprised by it at least",
            "mean": "its heads' mean surprise reached"}.get(rule, "every head was surprised by it at least")


def _route_words(s: TokenLayer, e: float, low: int, high: int) -> str:
    """Step 5 in words: which heads decided, under the model's rule."""
    if s.cached:
        who = {"max": f"head {high + 1} found it surprising enough", "mean": "its heads' mean surprise reached τ"}
        return who.get(s.rule, "every head found it surprising enough") + \
            f", so its key and value enter layer {s.layer + 1}'s KV cache"
    why = {"max": f"no head found it surprising enough (the most surprised, head {high + 1}: {e:.2f} < τ)",
           "mean": f"its heads' mean surprise is below τ ({e:.2f} < τ)"}
    return why.get(s.rule, f"head {low + 1} predicted it well enough ({e:.2f} < τ)") + ", so only the RNN remembers it"


def steps(s: TokenLayer) -> list[Step]:
    """The seven steps for one token and layer, in the order the layer runs them."""
    tok = token_label(s.text)
    H = s.heads
    low, high = int(np.argmin(s.surprise)), int(np.argmax(s.surprise))
    e = s.routing_surprise
    cos = s.cosine
    scaled = s.scale != 1.0
    digits = 3 if scaled and float(np.min(cos)) < 0.1 else 2        # a calibrated layer's misses can be small
    surprise_values = f"surprise per head {nums(cos, digits)}" + (
        f" (cosine distance) → {nums(s.surprise)} in this layer's units" if scaled else "")
    units = f"{e / s.scale:.{digits}f} × {s.scale:.1f} = " if scaled else ""
    scale_words = (f" (this layer's surprise is read × {s.scale:.1f}, so that its typical token reads 0.5 and one τ "
                   "caches a like share of every layer)" if scaled else "")
    lives = sorted((half_life(a), h) for h, a in enumerate(s.alpha))
    reads = "; ".join(f"#{i} {token_label(t)} {w:.2f}" for i, t, w in s.reads[:3])
    gr, ga = float(np.mean(s.gate_rnn)), float(np.mean(s.gate_attn))
    if ga < 0.1:
        mix = "this layer barely listens to its cache here: the RNN carries the output"
    elif gr < 0.1:
        mix = "this layer relies on its cache here, hardly on the RNN"
    else:
        mix = "both paths feed the output"
    route_words = _route_words(s, e, low, high)
    whose = "its attention, averaged over heads," if s.head is None else f"head {s.head + 1}'s attention"
    if not s.reads:
        read_words = "nothing is in this layer's cache up to this token, so attention reads nothing"
    else:
        i, t, w = s.reads[0]
        read_words = (f"the largest share of {whose} goes to #{i} {token_label(t)} ({w:.0%})" if w >= s.sink else
                      f"the largest share of {whose} goes to the sink ({s.sink:.0%}): it reads little from the cache")
    return [
        Step(1, "Projections", f"{H} heads × {s.head_dim} numbers for q, k, v · ‖v‖ {nums(s.v_norm)}",
             f"token #{s.index} {tok} becomes a query (what to look for), a key (how to be found) and a value "
             f"(what to remember), after a width-{s.conv_size} convolution over the tokens before it",
             {"v_norm": [float(x) for x in s.v_norm]}),
        Step(2, "Gates", f"decay α {nums(s.alpha)} · write β {nums(s.beta)}",
             f"each head keeps {_span(s.alpha, '{:.0%}')} of its memory per token (half gone after "
             f"{_life(lives[0][0])}–{_life(lives[-1][0])} tokens) and writes {_span(s.beta, '{:.0%}')} of its error",
             {"alpha": [float(x) for x in s.alpha], "beta": [float(x) for x in s.beta]}),
        Step(3, "Prediction and surprise", surprise_values,
             f"{cos[low]:.{digits}f} (head {low + 1}, the lowest): {surprise_words(float(cos[low]))}"
             + ("" if H == 1 or high == low else
                f"; {cos[high]:.{digits}f} (head {high + 1}, the highest): {surprise_words(float(cos[high]))}"),
             {"surprise": [float(x) for x in s.surprise], "cosine": [float(x) for x in cos]}),
        Step(4, "RNN update", f"state {H} × {s.head_dim} × {s.head_dim} = {fmt_bytes(s.state_bytes)}, "
                              f"the same after {s.n_tokens:,} tokens",
             "the memory fades by α, then moves its answer for this key towards the value by β × the error: "
             "the same error that measured the surprise"),
        Step(5, "Routing", f"{s.rule} surprise {units}{e:.2f} {'≥' if s.cached else '<'} τ {s.tau:.2f} → "
                           f"{'cached' if s.cached else 'not cached'} · layer keeps {s.layer_cached} of {s.n_tokens}",
             route_words + scale_words, {s.rule: e, "tau": s.tau, "cached": s.cached, "scale": s.scale}),
        Step(6, "Selective attention", (f"reads {reads} · sink {s.sink:.2f}" if s.reads else "reads nothing")
             + ("" if s.head is None else f" (head {s.head + 1})"), read_words,
             {"reads": [[i, float(w)] for i, _, w in s.reads], "sink": float(s.sink), "head": s.head}),
        Step(7, "Combination", f"RNN gate g^R {nums(s.gate_rnn)} · cache gate g^A {nums(s.gate_attn)}",
             f"the RNN's read-out is used at {gr:.2f} on average and the cache's at {ga:.2f}: {mix}",
             {"gate_rnn": [float(x) for x in s.gate_rnn], "gate_attn": [float(x) for x in s.gate_attn]}),
    ]
