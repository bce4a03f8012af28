"""The read page's views: the first view chosen by measurement, the component's data (escaped
view, reads of every token, tooltips), the KV readout, what the cache bought, the all-layers
strips, the colour bins on the default preset, and the honest memory-vs-quality chart.

Properties, not numbers: they hold for whatever model is loaded (the tiny random test model
here, the shipped one in the default-preset tests)."""
from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import numpy as np
import plotly.graph_objects as go
import pytest

from app import settings
from app.drawing import charts, memory_chart, tables, viewdata
from app.engine import results
from app.settings.presets import DEFAULT_PRESET, PRESETS
from app.widgets import clickview
from tests.app.test_app import app_env, clean, open_options, readout, set_text, settle, start  # noqa: F401 - app_env is a fixture

NASTY = ("<script>alert(1)</script> <img src=x onerror=alert(2)> \"quoted\" 'single' AT&T &amp; "
         "\u05e9\u05dc\u05d5\u05dd \u202eevil\u202c 🐈‍⬛ 👍🏽 </span></div> *bold* [link](x) ")


class Tags(HTMLParser):
    """Every tag and attribute name in a piece of HTML."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)


def tags_of(markup: str) -> Tags:
    t = Tags()
    t.feed(markup)
    return t


def strict_json(data: str) -> dict:
    """The component's data as the browser parses it (JSON.parse rejects NaN and Infinity)."""
    def refuse(name):
        raise ValueError(f"{name} in the component's data")
    assert isinstance(data, str)
    return json.loads(data, parse_constant=refuse)


def bundle_and_results(model_dir, monkeypatch, text: str, tau: float = 0.2, limit: int = 256):
    from app.engine import models, results

    if model_dir is not None:
        monkeypatch.setenv("HAM_LAB_MODEL", str(model_dir))
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", str(limit))
    bundle = models.get_bundle()
    entry = results.text_entry(bundle, text)
    L = bundle.cfg.n_layers
    get = lambda t: results.result_for(bundle, entry, results.grid_taus(bundle, t), layers=tuple(range(L)))  # noqa: E731
    return bundle, get(tau), get(0.0), get(settings.TAU_GRID[-1])


def view_of(bundle, r, none, layer=0, selected=None, metric="min", count_mode=False, mode="spread", head=None):
    from app.engine import results

    return viewdata.view_data(r, metric=metric, layer=layer, head=0, count_mode=count_mode, scale="viridis", mode=mode,
                              selected=selected, read_map=r.read_map(layer, head), none=none,
                              shown=lambda ids: results.shown_tokens(bundle, ids))


@pytest.fixture
def tiny(tiny_model_dir, monkeypatch):
    from tests.conftest import SAMPLE_TEXT

    return bundle_and_results(tiny_model_dir, monkeypatch, SAMPLE_TEXT)


@pytest.fixture
def nasty(tiny_model_dir, monkeypatch):
    return bundle_and_results(tiny_model_dir, monkeypatch, NASTY * 2)


# ---- the component's data -------------------------------------------------------------------

def test_view_data_ships_reads_and_tips_for_every_token(tiny):
    bundle, r, full, none = tiny
    T, L = len(r.tokens), r.cached.shape[0]
    for layer in range(L):
        data, bins = view_of(bundle, r, none, layer=layer, selected=T - 1)
        data = strict_json(data)
        keys, weights = data["reads"]["keys"], data["reads"]["weights"]
        assert len(keys) == len(weights) == len(data["tips"]["rows"]) == T and data["tips"]["layers"] == L
        m = r.read_map(layer)
        for q in range(T):
            assert all(k <= q and r.cached[layer, k] for k in keys[q])          # reads land on cached tokens
            assert all(0 < w <= 1000 for w in weights[q]) and weights[q] == sorted(weights[q], reverse=True)
            assert [w / 1000 for w in weights[q]] == pytest.approx([w for k, w in m.row(q) if k in keys[q]], abs=6e-4)
        assert data["selected"] == T - 1 and 'id="ham-t0"' in data["html"] and bins.n >= 2


def test_tip_rows_hold_guesses_surprise_and_cache_flags(tiny):
    bundle, r, full, none = tiny
    rows = strict_json(view_of(bundle, r, none)[0])["tips"]["rows"]
    L = r.cached.shape[0]
    assert rows[0][1] is None and rows[0][5] == []                  # nothing predicts the first token
    for i, (text, lm, surprise, bits, gain, guesses) in enumerate(rows[1:], start=1):
        assert lm == pytest.approx(float(r.lm_surprisal[i]), abs=1e-3) and len(surprise) == L
        assert [(bits >> l) & 1 for l in range(L)] == r.cached[:, i].astype(int).tolist()
        assert gain == pytest.approx(float(none.lm_surprisal[i] - r.lm_surprisal[i]), abs=1e-3)
        assert len(guesses) == 5 and [p for _, p in guesses] == sorted((p for _, p in guesses), reverse=True)
        if any(g == text for g, _ in guesses):                     # the real token among the guesses
            p = dict(guesses)[text]
            assert p == pytest.approx(math.exp(-lm), abs=2e-3) or len({g for g, _ in guesses}) < 5


def test_pasted_markup_stays_text_in_view_tips_and_panels(nasty):
    bundle, r, full, none = nasty
    for metric in ("min", "bought", "lm"):
        data, bins = view_of(bundle, r, none, selected=len(r.tokens) - 1, metric=metric)
        data = strict_json(data)
        t = tags_of(data["html"])
        assert t.tags <= {"div", "span", "b"} and not any(a.startswith("on") for a in t.attrs)
        assert "<script" not in data["html"] and "<img" not in data["html"]
    joined = "".join(row[0] for row in data["tips"]["rows"])
    assert "<script>" in joined and "onerror" in joined               # raw text: the script sets textContent
    extra = tables.kv_html(r) + tables.bought_html(r, full, none) + tables.multiples_html(
        r, len(r.tokens) - 1, [r.reads(len(r.tokens) - 1, layer) for layer in range(r.cached.shape[0])])
    t = tags_of(extra)
    assert t.tags <= {"style", "div", "span", "table", "caption", "tr", "th", "td"}
    assert not any(a.startswith("on") for a in t.attrs) and "<script" not in extra
    sentence = viewdata.describe_selection(r, len(r.tokens) - 2, 0, r.read_map(0))
    assert "<" not in sentence.replace("\\<", "") and "*bold*" not in sentence


def test_token_view_script_never_writes_markup_from_data():
    from pathlib import Path

    js = (Path(clickview.__file__).with_name("token_view.js")).read_text()
    assert js.count("innerHTML") == 1 and "box.innerHTML = d.html" in js   # only the escaped view
    assert "textContent" in js and "eval(" not in js and "http" not in js.replace("http://www.w3.org/2000/svg", "")


# ---- the first view ------------------------------------------------------------------------

def test_first_view_pick_is_a_real_read_and_the_sentence_says_so(tiny):
    bundle, r, full, none = tiny
    pick = results.first_view(r)
    assert pick is not None
    m = r.read_map(pick.layer, pick.head)
    assert pick.head is None or pick.head in results.open_heads(r, pick.layer)
    assert m.strongest(pick.query)[0] == pick.key < pick.query and r.cached[pick.layer, pick.key]
    sentence = viewdata.describe_selection(r, pick.query, pick.layer, m)
    assert f"layer {pick.layer + 1}" in sentence and f"token \\#{pick.key}" in sentence and "largest share of attention" in sentence
    assert sentence.endswith(").") and "kept that token in its KV cache because the RNN was surprised" in sentence
    assert "tokens after" not in sentence and "tokens earlier" not in sentence     # no counting of tokens aloud


@pytest.fixture
def story(monkeypatch):
    """The default preset read by the app's default model (the shipped one) at the default
    threshold, as the page's first view shows it."""
    from app.engine import results

    monkeypatch.delenv("HAM_LAB_MODEL", raising=False)
    bundle, r, full, none = bundle_and_results(None, monkeypatch, PRESETS[DEFAULT_PRESET], settings.DEFAULT_TAU, 1024)
    return bundle, r, full, none, results.first_view(r)


def test_a_word_of_several_tokens_is_named_as_the_word():
    tokens = [" The", " Or", "l", "a", "ith", ",", " said", " Orl", "aith", "."]
    assert viewdata.word_of(tokens, 3) == (1, 5) and viewdata.word_text(tokens, 3) == "Orlaith"
    assert viewdata.word_text(tokens, 8) == "Orlaith" and viewdata.word_of(tokens, 5) == (5, 6)


def test_default_preset_first_view_shows_a_later_mention_reading_an_earlier_one(story):
    bundle, r, full, none, pick = story
    sentence = viewdata.describe_selection(r, pick.query, pick.layer, r.read_map(pick.layer, pick.head))
    name = viewdata.word_text(r.tokens, pick.query)
    assert f"“{name}”" in sentence and "the same word written earlier" in sentence     # said as a name
    assert pick is not None, "nothing is read from any cache on the default preset"
    m = r.read_map(pick.layer, pick.head)
    key, weight = m.strongest(pick.query)
    assert weight == pytest.approx(pick.weight) and weight >= 0.5          # a lookup, visibly
    assert key == pick.key < pick.query - 1 and r.cached[pick.layer, key]     # an earlier cached token
    assert pick.repeat >= 1 and r.text.ids[key - pick.offset] == r.text.ids[pick.query]   # on or just after the same token


def test_open_heads_are_the_heads_whose_reads_a_layer_uses(tiny):
    import dataclasses

    bundle, r, full, none = tiny
    L, T, H = r.surprise.shape
    gate = np.full((L, T, H), 0.05, dtype=np.float32)
    gate[0, :, 1] = 0.6
    assert results.open_heads(dataclasses.replace(r, attn_gate=gate), 0) == [1]
    assert results.open_heads(dataclasses.replace(r, attn_gate=gate), 1) == []
    assert results.open_heads(dataclasses.replace(r, attn_gate=None), 0) == []
    assert r.attn_gate.shape == (L, T, H) and ((r.attn_gate > 0) & (r.attn_gate < 1)).all()


def test_the_sentence_names_the_head_whose_reads_are_shown(tiny):
    bundle, r, full, none = tiny
    query = len(r.tokens) - 1
    sentence = viewdata.describe_selection(r, query, 0, r.read_map(0, 1))
    assert sentence.startswith("**What you see:** in layer 1, head 2, ")
    assert "head" not in viewdata.describe_selection(r, query, 0, r.read_map(0)).split(",")[0]


def test_default_preset_colours_fill_at_least_four_of_eight_bins(story):
    bundle, r, full, none, pick = story
    data, bins = view_of(bundle, r, none, layer=pick.layer, selected=pick.query)
    values, _ = viewdata.metric_values(r, "min", pick.layer, 0)
    counts = bins.counts(values.tolist())
    assert bins.n == 8 and sum(c > 0 for c in counts) >= 4, counts
    assert sum(counts) == len(r.tokens)


# ---- the readout ---------------------------------------------------------------------------

def test_kv_readout_never_counts_more_tokens_than_the_text(tiny):
    bundle, r, full, none = tiny
    T, L = len(r.tokens), r.cached.shape[0]
    for x in (r, full, none):
        rows = tables.kv_rows(x)
        assert len(rows) == L + 1
        assert all(0 <= row["tokens"] <= row["of"] == T for row in rows[:L])
        assert rows[L]["tokens"] is None                                    # no summed token count
        assert sum(row["bytes"] for row in rows[:L]) == rows[L]["bytes"] == x.kv_bytes_peak
        assert 0 <= rows[L]["share"] <= 1
    assert [row["tokens"] for row in tables.kv_rows(full)[:L]] == [T] * L
    assert [row["tokens"] for row in tables.kv_rows(none)[:L]] == [0] * L
    html = tables.kv_html(r)
    assert f"of {T:,}" in html and f"of {L * T:,}" not in html


def test_totals_compare_no_cache_now_and_full(tiny):
    bundle, r, full, none = tiny
    names = [t["name"] for t in tables.totals(full, r, none)]
    assert names[0].startswith("no cache") and names[1].startswith("current") and names[2].startswith("full")
    t = tables.totals(full, r, none)
    sentence = tables.bought_sentence(r, full, none)
    assert f"{none.loss - r.loss:+.4f}" in sentence and f"{none.loss - full.loss:+.4f}" in sentence
    assert t[0]["kv_bytes"] == 0 and t[2]["share"] == 1.0 and t[1]["perplexity"] == pytest.approx(math.exp(r.loss))
    gain = viewdata.bought(r, none)
    assert math.isnan(gain[0]) and np.nanmean(gain) == pytest.approx(none.loss - r.loss, abs=1e-4)


def test_all_layer_strips_one_row_per_layer(tiny):
    bundle, r, full, none = tiny
    q = len(r.tokens) - 1
    per_layer = [r.reads(q, layer) for layer in range(r.cached.shape[0])]
    html = tables.multiples_html(r, q, per_layer)
    for layer, (reads, _) in enumerate(per_layer):
        assert f'id="ham-strip-{layer}"' in html
    assert html.count("ham-strip-read") == sum(len(reads) for reads, _ in per_layer)


# ---- the chart -----------------------------------------------------------------------------

ROWS = [dict(policy="ham", tau=t, kv_fraction=f, kv_bytes_peak=int(f * 1e6), loss=l)
        for t, f, l in [(0.0, 1.0, 3.000), (0.3, 0.5, 3.001), (0.5, 0.2, 3.0025), (2.5, 0.0, 3.004)]]
ROWS += [dict(policy="window", tau=0.3, kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.003)]


def test_chart_states_its_range_marks_noise_and_joins_the_ends():
    noise = 0.01
    fig = memory_chart.memory_quality_figure(ROWS, dict(kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.001), noise=noise)
    window = next(t for t in fig.data if t.name == "recent window")
    assert list(window.x) == [0.0, 50.0, 100.0] and window.y[0] == 3.004 and window.y[-1] == 3.0
    band = fig.layout.shapes[0]
    assert band.y0 == pytest.approx(3.004 - noise) and band.y1 == pytest.approx(3.004 + noise)
    lo, hi = fig.layout.yaxis.range
    assert lo <= 3.004 - noise and hi >= 3.004 + noise                    # the axis never hides the noise
    names = " ".join(t.name for t in fig.data)                       # the ends are named in the legend
    assert "RNN only (no cache): 3.004 nats" in names and "full cache" in names and "noise" in names
    assert not fig.layout.annotations                                 # nothing written inside the plot
    sentence = memory_chart.range_sentence([r["loss"] for r in ROWS], noise)
    assert "0.0040 nats/token" in sentence and "0.13% of the loss" in sentence and "±0.0100" in sentence


def test_current_point_is_added_to_a_kept_figure():
    base = memory_chart.memory_quality_figure(ROWS, None, noise=0.01).to_dict()
    before = json.dumps(base, sort_keys=True, default=str)
    whole = memory_chart.memory_quality_figure(ROWS, dict(kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.001), noise=0.01)
    fig = memory_chart.with_current(base, dict(kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.001))
    assert json.dumps(base, sort_keys=True, default=str) == before                  # the kept figure is untouched
    assert [t.get("name") for t in fig["data"]] == [t.name for t in whole.data]
    star = fig["data"][-1]
    assert star["x"] == [50.0] and star["y"] == [3.001] and star["marker"]["symbol"] == "star"
    assert fig["layout"]["yaxis"]["range"] == list(whole.layout.yaxis.range)
    far = memory_chart.with_current(base, dict(kv_fraction=0.1, kv_bytes_peak=1, loss=3.5))
    lo, hi = far["layout"]["yaxis"]["range"]
    assert lo < 3.0 and hi > 3.5                                                    # widened to show it
    assert "plotly" in charts.figure_html(fig)[:5000].lower()
    # drawn without a second check: the same figure as the checked one, star and all
    assert memory_chart.checked_figure(far).to_dict() == go.Figure(far).to_dict()


def test_chart_font_scale_grows_every_label():
    small = memory_chart.memory_quality_figure(ROWS, noise=0.01)
    big = memory_chart.memory_quality_figure(ROWS, noise=0.01, font_scale=1.5)
    assert big.layout.font.size == round(1.5 * small.layout.font.size)
    assert big.layout.title.font.size > small.layout.title.font.size
    assert big.layout.legend.font.size > small.layout.legend.font.size
    assert all(b.marker.size > s.marker.size for b, s in zip(big.data, small.data) if s.marker.size)
    assert charts.recall_figure([], font_scale=2).layout.font.size == 2 * charts.FONT


def test_an_outlier_is_marked_not_allowed_to_flatten_the_curves():
    rows = ROWS + [dict(policy="random", tau=0.5, kv_fraction=0.2, kv_bytes_peak=1, loss=3.9)]   # a spike
    fig = memory_chart.memory_quality_figure(rows, noise=0.001)
    lo, hi = fig.layout.yaxis.range
    assert hi < 3.05 and lo <= 3.0                                    # the axis stays on HAM's curve and the ends
    off = next(t for t in fig.data if t.name.startswith("off the scale"))
    assert list(off.x) == [20.0] and off.y[0] == hi and off.customdata[0][1] == 3.9   # marked at the edge
    assert memory_chart.memory_quality_figure(ROWS, noise=0.001).data[-1].name.startswith("noise")  # no spike: no mark


def test_the_headline_reads_aloud():
    said = memory_chart.headline(3.001, 0.5, 3.004, 3.0, ROWS, 0.3)
    assert said.startswith("With 50% of a full cache's memory, HAM gets 75% of what a full cache gains")
    assert "(recent window) gets 25%" in said
    assert memory_chart.headline(3.0, 0.5, 3.0, 3.0).startswith("With 50% of a full cache's memory, the loss is")


def test_noise_and_the_verdict():
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 1.0, 400)
    assert memory_chart.paired_noise(a, a) == 0.0
    assert memory_chart.paired_noise(a + rng.normal(0, 0.2, 400), a) == pytest.approx(2 * 0.2 / 20, rel=0.2)
    assert memory_chart.paired_noise([1.0], [2.0]) == math.inf
    assert memory_chart.cache_verdict(3.0, 3.002, 0.01, 400) is not None           # inside the noise: no curve
    assert memory_chart.cache_verdict(3.0, 3.2, 0.01, 400) is None                 # a real difference: a curve
    assert "too short" in memory_chart.cache_verdict(3.0, 3.2, 0.01, 10)


# ---- the page ------------------------------------------------------------------------------

def component_data(at) -> dict:
    el = at.get("bidi_component")[0].proto
    return strict_json(json.loads(el.json))            # a JSON text sent as a JSON string


def test_page_first_view_selects_a_read_by_measurement(app_env):
    at = start()
    clean(at)
    data = component_data(at)
    q, layer = at.session_state["token"], at.session_state["layer"]
    assert data["selected"] == q
    keys = data["reads"]["keys"][q]
    assert keys and keys[0] < q                                   # its strongest read: an earlier token
    assert f'id="ham-t{keys[0]}" class="ham-tok ham-cached' in data["html"]
    assert any(m.value.startswith("**What you see:** in layer " + str(layer + 1)) for m in at.markdown)
    reads = open_options(at).radio(key="w_reads").value          # the first view's choice: a head or the mean
    said = next(m.value for m in at.markdown if m.value.startswith("**What you see:**"))
    assert (f", head {reads.split()[-1]}," in said) == reads.startswith("head ")


def test_page_cache_bought_mode_and_count_marks(app_env):
    at = start()
    at.selectbox(key="w_metric").select("bought").run()
    clean(at)
    data = component_data(at)
    assert "what the cache bought" in data["html"] and "brown" in data["html"]
    assert all(row[4] is not None for row in data["tips"]["rows"][1:])
    tables = " ".join(h.proto.body for h in at.get("html"))
    assert "What the cache bought on this text" in tables and "full cache (Transformer-like)" in tables
    open_options(at).radio(key="w_marks").set_value("count of layers").run()
    clean(at)
    assert "ham-layers" in component_data(at)["html"] and "<sup" not in component_data(at)["html"]
    at.radio(key="w_scale_mode").set_value("fixed").run()
    assert "brown" in component_data(at)["html"]                  # a signed quantity keeps its own scale
    at.selectbox(key="w_metric").select("min").run()
    clean(at)
    assert "fixed scale" in component_data(at)["html"]


def test_page_readout_and_chart(app_env):
    at = start()
    clean(at)
    values = readout(at)
    assert values["KV cache (all layers)"].endswith("B") and values["of a full cache"].endswith("%")
    assert any(m.value.startswith("At these thresholds the cache bought") for m in at.markdown)
    T = len(component_data(at)["tips"]["rows"])
    body = next(h.proto.body for h in at.get("html") if "ham-kv" in h.proto.body)
    counts = [int(x.split(" of ")[0].rsplit(">", 1)[-1].replace(",", "")) for x in body.split("</td><td>") if " of " in x]
    assert counts and all(c <= T for c in counts)
    settle(at)          # a pasted text's curve ends come from the queue, as the page's polling sees them
    fig = at.get("plotly_chart")[0].proto
    assert "RNN only" in str(fig) and "noise" in str(fig)
    said = [i.value for i in at.info] + [c.value for c in at.caption]
    assert any("no measurable difference" in s or "whole range is" in s for s in said)


def test_page_pasted_markup_is_text(app_env):
    at = start()
    set_text(at, NASTY)
    clean(at)
    data = component_data(at)
    assert "<script" not in data["html"] and "&lt;" in data["html"] and "&amp;" in data["html"]
    assert tags_of(data["html"]).tags <= {"div", "span", "b"}
