"""Per-text results: ham_core.analysis.analyze at each threshold setting, kept per threshold as
the views draw it (the curves over the grid of thresholds and the other policies:
app.engine.curves). No model math here: this module only calls ham_core.

The threshold runs one way: a page reads it from the session (app.session.state.tau), turns it
into per-layer thresholds (grid_taus) and asks result_for, which looks in the store
(app.engine.store), then in the shipped results (app.engine.shipped), then runs the model
(_forward, ham_core.analysis.analyze); nothing below calls back up.

Everything computed is kept in the server's one shared store (app.engine.store), keyed by the model,
the full SHA-256 of the text, the token limit and the thresholds: thirty sessions on one preset
run each threshold once between them, and a session never sees another text's numbers. What is
kept per threshold is small (surprise, cache marks, totals: ~90 KB for 1,024 tokens); the q and
k that attention reads are computed from are kept only while memory is free, and recomputed
by one forward when a view needs them again.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from app.engine import shipped
from app.engine.models import Bundle, HAMInputError, bundle_at, max_tokens, release_free_memory
from app.engine.result_types import ReadSummary, TextEntry, TextResult
from app.engine.store import VIEW, compute_gate, key, results_store, text_key
from app.settings import DEFAULT_TAU, TAU_GRID
from ham_core.analysis.readmap import LOOKUP_GATE, MemorableRead, ReadMap, memorable_read

if TYPE_CHECKING:     # torch: imported when a result is computed, not for one shipped (app.engine.shipped)
    from ham_core.analysis.analysis import Analysis, ReadContext

__all__ = ["HAMInputError", "ReadSummary", "TextEntry", "TextResult"]    # what pages hold and draw
TOP_READS = 8                   # reads listed, and drawn as arcs, per query

def shown_tokens(bundle: Bundle, ids) -> list:
    """Display text of token ids (the model's guesses): the vocabulary decoded once per model."""
    vocab = results_store().get_or_compute(
        ("vocab", bundle.key), lambda: bundle.tokenizer.token_strings(range(bundle.tokenizer.vocab_size)))
    return [vocab[int(i)] for i in ids]


def _summarise(context: ReadContext, query: int) -> ReadSummary:
    layers = []
    for layer in range(len(context.q)):
        r = context.reads(query, layer)
        per = {None: ([(i, w) for i, w in r.top(TOP_READS) if w > 0], r.mean_sink)}
        for h in range(r.sink.shape[0]):
            per[h] = ([(i, w) for i, w in r.top(TOP_READS, head=h) if w > 0], float(r.sink[h]))
        layers.append(per)
    return ReadSummary(layers)


def text_entry(bundle: Bundle, text: str) -> TextEntry:
    """The text cut to the app's token limit (HAM_LAB_MAX_TOKENS, at most the model's own),
    once per text and model on this server."""
    if not text.strip():
        raise HAMInputError("the text is empty (or only whitespace): give some text to read")
    limit = max_tokens(bundle.cfg)
    name = (bundle.key, text_key(text), limit)

    def cut() -> TextEntry:
        tokens = bundle.tokenizer.tokenize(text)
        notice, read_text, total = "", _cut(text, tokens, limit), len(tokens)
        if total > limit:
            notice = (f"The text is longer than the token limit: only its first {limit:,} tokens are read "
                      "(the limit is shown in the sidebar).")
            tokens = tokens[:limit]
        return TextEntry(name, read_text, notice, total, np.array([t.id for t in tokens], dtype=np.int32),
                         [t.text for t in tokens], [t.start for t in tokens], [t.end for t in tokens])

    return results_store().get_or_compute(("text",) + name, cut)


def _cut(text: str, tokens: list, limit: int) -> str:
    """The text up to the end of its limit-th token."""
    return text if len(tokens) <= limit else text[: tokens[limit - 1].end]


def read_text(model_dir, text: str, limit: int) -> tuple[str, int]:
    """(the part of `text` the model in `model_dir` reads with this token limit, its layers)."""
    bundle = bundle_at(model_dir)
    return _cut(text, bundle.tokenizer.tokenize(text), limit), bundle.cfg.n_layers


def grid_taus(bundle: Bundle, tau: float) -> tuple:
    return (float(tau),) * bundle.cfg.n_layers


def _forward(bundle: Bundle, entry: TextEntry, taus: tuple, priority: Optional[int] = VIEW) -> Analysis:
    """One read of the text at these thresholds (the only place this module runs the model),
    in one of the server's compute slots, by `priority` (app.engine.store: VIEW, a view waits for it,
    goes before sweeps; None: the caller holds a slot already)."""
    from ham_core.analysis.analysis import analyze

    with compute_gate().slot(priority) if priority is not None else nullcontext():
        try:
            return analyze(bundle.model, bundle.tokenizer, entry.read_text, tau=list(taus))
        finally:
            release_free_memory()


def _keep(bundle: Bundle, entry: TextEntry, taus: tuple, a: Analysis, queries=(), layers=()) -> TextResult:
    """The per-threshold result of a forward; its q and k are kept while memory is free, and
    the reads of `queries` (the asking session's selected token) and the read maps of `layers`
    (the layer it shows) are kept in any case."""
    store = results_store()
    store.offer(key("context", entry, taus), a.context, a.context.nbytes)
    for q in queries:
        if q is not None and 0 <= q < a.n_tokens:
            store.put(key("reads", entry, taus, q), _summarise(a.context, q))
    for layer in layers:
        store.put(key("readmap", entry, taus, layer, None), a.context.read_map(layer, TOP_READS))
    return TextResult(
        text=entry, tau=list(a.tau),
        lm_surprisal=np.array([math.nan if x is None else x for x in a.lm_surprisal], dtype=np.float32),
        surprise=a.surprise_heads.numpy(), layer_surprise=a.surprise.numpy(), cached=a.cached.numpy(),
        kv_tokens=np.array(a.kv_peak), loss=math.nan if a.loss is None else a.loss, kv_fraction=a.kv_fraction,
        kv_bytes_peak=a.kv_bytes_peak, kv_bytes_full=a.kv_bytes_full, state_bytes=a.state_bytes,
        kv_bytes_layers=a.kv_bytes_layers, guess_ids=a.guess_ids.numpy(), guess_probs=a.guess_probs.numpy(),
        attn_gate=a.steps.gate_attn.numpy(),
        _reader=_reader(bundle, entry, taus), _mapper=_mapper(bundle, entry, taus),
    )


def _context(bundle: Bundle, entry: TextEntry, taus: tuple) -> ReadContext:
    """The q and k of the forward at `taus`: from the store, or one forward when it was dropped."""
    return results_store().get_or_compute(key("context", entry, taus),
                                          lambda: _forward(bundle, entry, taus).context)


def _reader(bundle: Bundle, entry: TextEntry, taus: tuple) -> Callable[[int], ReadSummary]:
    def reads(query: int) -> ReadSummary:
        return results_store().get_or_compute(
            key("reads", entry, taus, query), lambda: _summarise(_context(bundle, entry, taus), query))

    return reads


def _mapper(bundle: Bundle, entry: TextEntry, taus: tuple) -> Callable[[int, Optional[int]], ReadMap]:
    def read_map(layer: int, head: Optional[int]) -> ReadMap:
        return results_store().get_or_compute(
            key("readmap", entry, taus, layer, head),
            lambda: _context(bundle, entry, taus).read_map(layer, TOP_READS, head))

    return read_map


def result_for(bundle: Bundle, entry: TextEntry, taus: tuple, query: Optional[int] = None,
               layers: tuple = (), priority: Optional[int] = VIEW) -> TextResult:
    """The result at any per-layer setting, computed once on this server (concurrent sessions
    asking for the same one wait for that one computation), or read from the results shipped
    for a preset's first view (app.precompute), which needs neither torch nor the model. The
    reads of `query` and the read maps of `layers` are computed with it, while its q and k are
    at hand."""
    taus = tuple(float(t) for t in taus)
    return results_store().get_or_compute(
        key("result", entry, taus),
        lambda: shipped_result(bundle, entry, taus) or computed_result(bundle, entry, taus, query, layers, priority))


def computed_result(bundle: Bundle, entry: TextEntry, taus: tuple, query: Optional[int] = None,
                    layers: tuple = (), priority: Optional[int] = VIEW) -> TextResult:
    """The result computed by the model now (never the shipped one), not itself stored."""
    taus = tuple(float(t) for t in taus)
    return _keep(bundle, entry, taus, _forward(bundle, entry, taus, priority), (query,), layers)


# What a shipped result holds (`python -m app.precompute` writes them with `result_arrays`): every field of
# a TextResult but its text; the reads and read maps it was shipped with go into the store.
_ARRAYS = ("lm_surprisal", "surprise", "layer_surprise", "cached", "kv_tokens", "guess_ids", "guess_probs",
           "attn_gate")
_NUMBERS = {"loss": float, "kv_fraction": float, "kv_bytes_peak": int, "kv_bytes_full": int, "state_bytes": int}
_LISTS = {"tau": float, "kv_bytes_layers": int}


def result_arrays(r: TextResult, queries: tuple = (), maps: tuple = ()) -> dict:
    """r as numpy arrays (no pickles): its fields, the reads of `queries` in every layer and head
    (keys -1 where a query read fewer than TOP_READS) and the read maps [(layer, head)]."""
    out = {name: getattr(r, name) for name in _ARRAYS}
    out.update({name: np.array(getattr(r, name)) for name in (*_NUMBERS, *_LISTS)})
    for q in queries:
        layers = r._reader(q).layers
        heads = [None, *range(len(layers[0]) - 1)]
        keys = np.full((len(layers), len(heads), TOP_READS), -1, dtype=np.int64)
        weights = np.zeros(keys.shape, dtype=np.float64)
        sinks = np.zeros(keys.shape[:2], dtype=np.float64)
        for l, per in enumerate(layers):
            for j, h in enumerate(heads):
                pairs, sinks[l, j] = per[h]
                for n, (k, w) in enumerate(pairs):
                    keys[l, j, n], weights[l, j, n] = k, w
        out.update({f"reads.{q}.keys": keys, f"reads.{q}.weights": weights, f"reads.{q}.sink": sinks})
    for layer, head in maps:
        m = r.read_map(layer, head)
        name = f"map.{layer}.{'mean' if head is None else head}"
        out.update({f"{name}.keys": m.keys, f"{name}.weights": m.weights, f"{name}.sink": m.sink})
    return out


def shipped_result(bundle: Bundle, entry: TextEntry, taus: tuple) -> Optional[TextResult]:
    """The result shipped for this text at `taus` (a preset's first view), None when there is
    none computed with this model; its reads and read maps are put in the store beside it."""
    arrays = shipped.lookup_view(bundle.directory, entry.read_text, taus) if bundle.trained else None
    if arrays is None:
        return None
    fields = {name: arrays[name] for name in _ARRAYS}
    fields.update({name: cast(arrays[name].item()) for name, cast in _NUMBERS.items()})
    fields.update({name: [cast(x) for x in arrays[name].tolist()] for name, cast in _LISTS.items()})
    store = results_store()
    for name in arrays:
        if not name.endswith(".keys"):
            continue
        prefix = name.removesuffix(".keys")
        kind, which = prefix.split(".", 1)
        keys, weights, sinks = (arrays[f"{prefix}.{part}"] for part in ("keys", "weights", "sink"))
        if kind == "reads":
            layers = [{(None if j == 0 else j - 1): ([(int(k), float(w)) for k, w in zip(keys[l, j], weights[l, j])
                                                     if k >= 0], float(sinks[l, j]))
                       for j in range(keys.shape[1])} for l in range(keys.shape[0])]
            store.put(key("reads", entry, taus, int(which)), ReadSummary(layers))
        else:
            layer, head = which.split(".")
            head = None if head == "mean" else int(head)
            store.put(key("readmap", entry, taus, int(layer), head), ReadMap(int(layer), head, keys, weights, sinks))
    return TextResult(text=entry, **fields, _reader=_reader(bundle, entry, taus), _mapper=_mapper(bundle, entry, taus))


def stored_result(bundle: Bundle, entry: TextEntry, taus: tuple) -> Optional[TextResult]:
    """The result at `taus` if this server holds it, None otherwise (nothing is computed)."""
    return results_store().get(key("result", entry, tuple(float(t) for t in taus)))


def ready_result(bundle: Bundle, entry: TextEntry, taus: tuple) -> Optional[TextResult]:
    """The result at `taus` if this server holds it or it was shipped (a preset's first view),
    None otherwise: nothing waits for the model."""
    found = stored_result(bundle, entry, taus)
    if found is None and bundle.trained and shipped.lookup_view(bundle.directory, entry.read_text, taus) is not None:
        found = result_for(bundle, entry, taus)            # from the shipped arrays: no model
    return found


def step_values(bundle: Bundle, entry: TextEntry, taus: tuple) -> dict:
    """Steps 1-2 and 7 as the layers computed them in the forward at `taus`: ||k||, ||v||, the
    decay alpha, the write strength beta and the mixing gates g^R and g^A, numpy [L, T, H] each."""
    taus = tuple(float(t) for t in taus)

    def compute() -> dict:
        s = _forward(bundle, entry, taus).steps
        return {"k_norm": s.k_norm.numpy(), "v_norm": s.v_norm.numpy(), "alpha": s.alpha.numpy(),
                "beta": s.beta.numpy(), "gate_rnn": s.gate_rnn.numpy(), "gate_attn": s.gate_attn.numpy()}

    return results_store().get_or_compute(key("steps", entry, taus), compute)


def read_ids(entry: TextEntry) -> list:
    """Token ids of the text as read (after the token limit)."""
    return entry.ids.tolist()


def open_heads(r: TextResult, layer: int) -> list:
    """Heads of `layer` whose attention gate is, on average over this text, at least LOOKUP_GATE:
    the heads whose reads the layer uses (a shut head's sharp read changes nothing)."""
    if r.attn_gate is None:
        return []
    return [h for h, g in enumerate(r.attn_gate[layer].mean(0)) if g >= LOOKUP_GATE]


def first_view(r: TextResult) -> Optional[MemorableRead]:
    """The layer, token and reads (a head, or the heads' mean) a first screen shows, measured on
    this model and text (see ham_core.analysis.readmap.memorable_read): a lookup is usually one
    head's, which the mean over heads dilutes."""
    return memorable_read(r.text.ids.tolist(), [r.read_map(layer, head) for layer, head in first_view_maps(r)])


def first_view_maps(r: TextResult) -> list:
    """[(layer, head)] of the read maps first_view looks through: every layer's heads' mean
    (head None) and each open head's own."""
    L = r.cached.shape[0]
    return [(layer, None) for layer in range(L)] + [(layer, h) for layer in range(L) for h in open_heads(r, layer)]


def first_view_arrays(model_dir, text: str) -> tuple[dict, dict]:
    """The first view of `text` as the Read page draws it with the model in `model_dir`: the
    results at shipped.VIEW_TAUS, the read maps the page's choice of a first token looks through
    and that token's reads, as arrays (result_arrays, prefixed "<i>." for the i-th thresholds);
    and what the file says of them (model, text, thresholds, the first token)."""
    bundle = bundle_at(model_dir)
    entry = text_entry(bundle, text)
    L = bundle.cfg.n_layers
    arrays, taus, pick = {}, [], None
    for i, tau in enumerate(shipped.VIEW_TAUS):
        r = computed_result(bundle, entry, grid_taus(bundle, tau), layers=tuple(range(L)))
        first = tau == DEFAULT_TAU
        pick = first_view(r) if first else pick
        part = result_arrays(r, (pick.query,) if first and pick else (), first_view_maps(r) if first else ())
        arrays.update({f"{i}.{name}": a for name, a in part.items()})
        taus.append(list(r.tau))
    meta = {"model": shipped.model_hash(model_dir), "text": text_key(entry.read_text), "taus": taus,
            "first_token": None if pick is None else pick.query}
    return arrays, meta


def preset_sweep(model_dir, text: str) -> tuple[TextEntry, "shipped.SweepRows"]:
    """The text as the app reads it with the model in `model_dir`, and its sweep over TAU_GRID
    (what a preset's .json ships)."""
    bundle = bundle_at(model_dir)
    entry = text_entry(bundle, text)
    return entry, shipped.sweep_rows(bundle.model, entry.ids.tolist(), TAU_GRID)
