"""What the read page's token view shows, built from TextResults: the values and colour bins of
each colour mode, the component's data (escaped view, reads of every token, tooltips), the first
sentence that says what the reader is looking at. Pure functions (no Streamlit, no model), so
tests can check them directly; which token a first view shows is measured by the engine
(app.engine.results.first_view).
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from app.drawing.colours import Bins, fixed_bins, quantile_bins, signed_bins
from app.drawing.tables import LM_RANGE, SURPRISE_RANGE
from app.drawing.text import md
from app.drawing.token_view import TokenCell, bins_legend, legend_note, render_view, visible_text, word_of, word_text
from app.settings import tau_label

if TYPE_CHECKING:         # the types drawn, from the engine (results and their read maps)
    from app.engine.result_types import TextResult
    from ham_core.analysis.readmap import ReadMap

FIXED_RANGE = {"min": SURPRISE_RANGE, "head": SURPRISE_RANGE, "lm": LM_RANGE}   # the "fixed" scale's ranges
SCALE_MODES = {"spread": "spread (equal shares)", "fixed": "fixed range"}


def bought(r: TextResult, none: TextResult) -> np.ndarray:
    """[T] what the cache bought at each token: its loss without any cache minus its loss at
    r's thresholds (nats; positive: the cache helped). NaN for the first token."""
    return none.lm_surprisal.astype(np.float64) - r.lm_surprisal.astype(np.float64)


def metric_values(r: TextResult, metric: str, layer: int, head: int,
                  none: Optional[TextResult] = None) -> tuple[np.ndarray, str]:
    """Values to colour by [T] and what they are, in words."""
    if metric == "lm":
        return r.lm_surprisal, "next-token surprisal (nats)"
    if metric == "head":
        return r.surprise[layer, :, head], f"RNN surprise, layer {layer + 1} head {head + 1}"
    if metric == "bought" and none is not None:
        return bought(r, none), "what the cache bought (nats; loss without cache − loss now)"
    return r.layer_surprise[layer], f"RNN surprise, layer {layer + 1} (heads combined as it routes)"


def colour_bins(values: np.ndarray, metric: str, label: str, scale: str = "viridis", mode: str = "spread") -> Bins:
    """The colour bins of a mode: signed for the cache's gain, else spread over this text's
    values (quantiles) or a fixed range."""
    finite = [float(v) for v in values if v == v]
    if metric == "bought":
        return signed_bins(finite, label)
    lo, hi = FIXED_RANGE.get(metric, (0.0, 1.0))
    if mode == "fixed":
        return fixed_bins(lo, hi, label, scale)
    return quantile_bins(finite, label, scale, fallback=(lo, hi))


def surprise_bins(r: TextResult, layer: int, palette: str = "viridis", mode: str = "spread") -> Bins:
    """The colours of RNN surprise in `layer` over the whole text: every page that colours by
    surprise uses these, so a token has one colour on every page."""
    values, label = metric_values(r, "min", layer, 0)
    return colour_bins(values, "min", label, palette, mode)


def view_cells(r: TextResult, values: np.ndarray, layer: int, count_mode: bool,
               reads: Optional[dict] = None) -> list[TokenCell]:
    marks = (r.cached.sum(0) if count_mode else r.cached[layer]).tolist()
    vals, reads = values.tolist(), reads or {}
    return [TokenCell(text=t, value=None if math.isnan(vals[i]) else vals[i], cached=int(marks[i]), read=reads.get(i))
            for i, t in enumerate(r.tokens)]


def _r(x: float, digits: int = 3) -> Optional[float]:
    return None if x is None or x != x else round(float(x), digits)


def tip_rows(r: TextResult, gain: Optional[np.ndarray], shown: Callable[[Sequence[int]], list]) -> list:
    """Per token, for the tooltip: [text, surprisal, [surprise per layer], cached-in-layer bits,
    what the cache bought, [[guess, probability] x 5]]."""
    T = len(r.tokens)
    ids, probs = r.guess_ids.tolist(), np.round(r.guess_probs.astype(np.float64), 3).tolist()
    texts = iter(visible_text(t) for t in shown([i for row in ids for i in row if i >= 0]))
    guesses = [[[next(texts), p] for i, p in zip(row_i, row_p) if i >= 0] for row_i, row_p in zip(ids, probs)]
    surprise = np.round(r.layer_surprise.T.astype(np.float64), 3).tolist()      # [T][L]
    bits = (r.cached.T.astype(np.int64) << np.arange(r.cached.shape[0])).sum(1).tolist()
    lm = r.lm_surprisal.tolist()
    gains = [None] * T if gain is None else gain.tolist()
    return [[visible_text(t), _r(lm[i]), surprise[i], bits[i], _r(gains[i], 4), guesses[i]]
            for i, t in enumerate(r.tokens)]


def reads_payload(m: ReadMap) -> dict:
    """The reads of every token for the browser: key positions and weights in thousandths
    (reads under 0.05% are left out)."""
    thousandths = np.rint(1000 * m.weights).astype(np.int64)
    keep = (m.keys >= 0) & (thousandths > 0)
    keys, weights = m.keys.tolist(), thousandths.tolist()
    rows = keep.tolist()
    return {"keys": [[k for k, ok in zip(ks, row) if ok] for ks, row in zip(keys, rows)],
            "weights": [[w for w, ok in zip(ws, row) if ok] for ws, row in zip(weights, rows)]}


def selected_reads(m: ReadMap, query: Optional[int]) -> dict:
    """{key: weight} of the selected token (what the view rings before any script runs)."""
    return {} if query is None else dict(m.row(query))


def _json(value) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))   # the browser's JSON has no NaN


def view_data(r: TextResult, *, metric: str, layer: int, head: int, count_mode: bool, scale: str, mode: str,
              selected: Optional[int], read_map: ReadMap, none: Optional[TextResult],
              shown: Callable[[Sequence[int]], list], font_size: str = "0.95rem") -> tuple[str, Bins]:
    """The component's data as one JSON text (see app.widgets.clickview.show) and the colour bins it used.
    The reads and the tooltips, most of it, are encoded once per result (and layer) and kept:
    a slider move back to a threshold seen before encodes only the view's HTML."""
    values, label = metric_values(r, metric, layer, head, none)
    bins = colour_bins(values, metric, label, scale, mode)
    L = r.cached.shape[0]
    cells = view_cells(r, values, layer, count_mode, selected_reads(read_map, selected))
    cache_label = (f"cached: the bar under a token is as long as the share of the {L} layers that keep it"
                   if count_mode else f"in layer {layer + 1}'s cache")
    surprise_metric = metric in ("min", "head")
    mark = dict(mark=r.tau[layer] if surprise_metric else None,
                mark_label=f"underlined: the colour holding τ = {tau_label(r.tau[layer])} "
                           "(tokens at or above it enter the cache)")
    legend = bins_legend(bins, cache_label=cache_label, show_reads=True, count_mode=count_mode, note=False, **mark)
    # How the scale was chosen goes under the text, so the text starts higher on the page.
    html = (legend + render_view(cells, bins=bins, selected=selected, count_mode=count_mode, n_layers=L,
                                 font_size=font_size) + f'<div class="ham-legend">{legend_note(bins, **mark)}</div>')
    tips = r.memo(("tips json", none is not None), lambda: _json(
        {"layers": L, "rows": tip_rows(r, bought(r, none) if none is not None else None, shown)}))
    reads = r.memo(("reads json", read_map.layer, read_map.head), lambda: _json(reads_payload(read_map)))
    data = f'{{"html":{_json(html)},"prefix":"ham","selected":{_json(selected)},"reads":{reads},"tips":{tips}}}'
    return data, bins


def _quote(text: str) -> str:
    return "“" + md(visible_text(text).replace("\n", "")) + "”"


def _named(r: TextResult, i: int) -> str:
    """A token as a teacher would say it: its word, and the piece when the word has several."""
    start, end = word_of(r.tokens, i)
    if end - start > 1:
        return f"{_quote(word_text(r.tokens, i))} (token \\#{i}, its piece {_quote(r.tokens[i].strip())})"
    return f"{_quote(r.tokens[i].strip() or r.tokens[i])} (token \\#{i})"


def describe_selection(r: TextResult, query: int, layer: int, m: ReadMap) -> str:
    """One sentence to read aloud (markdown, user text escaped) saying what the view shows for
    this token: words, not token pieces, and no counting of tokens."""
    name = f"layer {layer + 1}"
    where = name if m.head is None else f"{name}, head {m.head + 1}"
    head = f"**What you see:** in {where}, {_named(r, query)}"
    top = m.strongest(query)
    if top is None:
        why = ("nothing before it is in this layer's cache" if not r.cached[layer, :query + 1].any()
               else "all its attention went to the sink, which holds nothing")
        return f"{head} reads nothing from the KV cache: {why}."
    key, weight = top
    if key == query:
        return f"{head} gives its largest share of attention ({weight:.0%}) to itself."
    run, offset = r.copy_match(query, key)
    word = word_text(r.tokens, query)
    if word and word_text(r.tokens, key) == word and word_of(r.tokens, key) != word_of(r.tokens, query):
        what = f"the same word written earlier, {_named(r, key)}"
    elif run and offset:
        what = f"{_named(r, key)}, which came after the same words earlier in the text (what came next last time)"
    elif run:
        what = f"{_named(r, key)}, the same words earlier in the text"
    else:
        what = f"{_named(r, key)}, further back in the text"
    surprise = float(r.layer_surprise[layer, key])
    return (f"{head} gives its largest share of attention ({weight:.0%}) to {what}. {name.capitalize()} kept that token in "
            f"its KV cache because the RNN was surprised by it there ({surprise:.2f}, at least the threshold "
            f"{tau_label(r.tau[layer])}).")
