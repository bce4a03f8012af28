"""Pure parts of the app: input cleaning, uploads, links, charts, the per-token CSV."""
from __future__ import annotations

import codecs
import csv
import io
import math

import pytest

from app.drawing import charts, memory_chart, tables
from app.engine import texts
from app.session import links
from app.settings.presets import DEFAULT_PRESET, PRESETS


def test_presets_are_six_kinds_of_text():
    assert len(PRESETS) >= 6 and DEFAULT_PRESET in PRESETS
    story = PRESETS["Story with a rare name"]
    assert story.count("Vandermeer") >= 3                           # the rare name recurs
    assert "Questions" in PRESETS["Facts, then questions"]
    assert "def " in PRESETS["Code snippet"] and any(ch.isdigit() for ch in PRESETS["Numbers and dates"])
    assert all(100 < len(t) < 2000 for t in PRESETS.values())


def test_clean_text_cuts_and_notes():
    long = texts.clean_text("x" * (texts.MAX_CHARS + 10))
    assert texts.clean_text("a\r\nb\rc").text == "a\nb\nc" and not texts.clean_text("a\r\nb").notices
    assert len(long.text) == texts.MAX_CHARS and "only the first" in long.notices[0]
    ctrl = texts.clean_text("a\x00b\x07c\nd\te")
    assert any("2 control" in n for n in ctrl.notices)                # newline and tab are not counted
    rtl = texts.clean_text("\u05e9\u05dc\u05d5\u05dd")
    assert any("right-to-left" in n for n in rtl.notices)
    surrogate = texts.clean_text("a\ud800b")
    assert surrogate.text == "a?b" and surrogate.notices
    assert texts.clean_text("  \n ").empty and not texts.clean_text("🐈").empty


def test_uploads_binary_and_bad_utf8_give_notices():
    assert texts.decode_upload("héllo".encode()).text == "héllo"
    assert texts.decode_upload(b"\xef\xbb\xbfbom").text == "bom"
    bad = texts.decode_upload(b"caf\xe9 au lait")
    assert bad.text == "caf\ufffd au lait" and "not valid UTF-8" in bad.notices[0]
    binary = texts.decode_upload(bytes(range(256)) * 40)
    assert binary.empty and "binary" in binary.notices[0]
    big = texts.decode_upload(b"a" * 5000, max_bytes=1000)
    assert len(big.text) == 1000 and "only the first 1,000" in big.notices[0]


def test_uploads_in_utf16_crlf_and_empty():
    text = "Windows line ends\r\nשלום 🐈\r\nend"
    for data in (text.encode("utf-16"), codecs.BOM_UTF16_BE + text.encode("utf-16-be"), text.encode("utf-8-sig")):
        up = texts.decode_upload(data)
        assert up.notices == [] and up.text == text
        cleaned = texts.clean_text(up.text)
        assert cleaned.text == "Windows line ends\nשלום 🐈\nend"
        assert not any("control" in n for n in cleaned.notices)          # CRLF is ordinary text
    assert texts.decode_upload(b"").notices == ["The file is empty: there is no text to read."]
    assert "only whitespace" in texts.decode_upload(b" \r\n ").notices[0]
    cut = texts.decode_upload("é".encode() * 600, max_bytes=1001)       # the cut falls inside a character
    assert cut.text == "é" * 500 and "\ufffd" not in cut.text
    odd = texts.decode_upload(codecs.BOM_UTF16_LE + b"a\x00\x00\xd8b\x00")  # a lone surrogate in UTF-16
    assert "UTF-16-LE" in odd.notices[0] and odd.text.startswith("a")
    fake = texts.decode_upload(codecs.BOM_UTF16_LE + b"\x01\x00\x07\x00" * 100)   # controls behind a BOM
    assert fake.empty and "does not read as text" in fake.notices[-1]


def test_params_round_trip_and_reject_garbage(tmp_path, monkeypatch):
    view = links.ViewState(preset="Code snippet", tau=0.25, layer=2, metric="head", head=1, token=7, reads=0)
    params = links.to_params(view)
    assert params == {"preset": "Code snippet", "tau": "0.25", "layer": "3", "metric": "head", "head": "2", "tok": "7",
                      "reads": "1"}
    back = links.parse_params(params, n_layers=4, n_heads=4)
    assert (back.preset, back.tau, back.layer, back.metric, back.head, back.token, back.reads) == \
        ("Code snippet", 0.25, 2, "head", 1, 7, 0)
    assert "reads" not in links.to_params(links.ViewState(preset="Code snippet"))     # the heads' mean
    junk = links.parse_params({"preset": "<script>", "tau": "nan", "layer": "99", "metric": "x", "tok": "-3",
                               "text": "../../etc/passwd", "reads": "9"}, n_layers=4, n_heads=4)
    assert junk.preset is None and junk.tau is None and junk.layer == 3 and junk.metric == "min"
    assert junk.token is None and junk.text_hash is None and junk.reads is None
    h = "ab" * 32
    assert links.parse_params({"text": h}, 4, 4).text_hash == h
    assert links.parse_params({"text": h[:12]}, 4, 4).text_hash is None     # short keys are not links


ROWS = [dict(policy="ham", tau=t, kv_fraction=f, kv_bytes_peak=int(f * 1e6), loss=l)
        for t, f, l in [(0.0, 1.0, 3.0), (0.3, 0.5, 3.1), (2.5, 0.0, 3.6)]]
ROWS += [dict(policy="random", tau=0.3, kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.4)]


def test_memory_quality_figure():
    fig = memory_chart.memory_quality_figure(ROWS, dict(kv_fraction=0.5, kv_bytes_peak=500_000, loss=3.1))
    names = [t.name for t in fig.data]
    assert names == ["HAM surprise", "random", "RNN only (no cache): 3.600 nats",
                     "full cache (Transformer-like): 3.000 nats", "current threshold"]
    ham = fig.data[0]
    assert list(ham.x) == [0.0, 50.0, 100.0] and list(ham.y) == [3.6, 3.1, 3.0]
    assert "perplexity" in ham.hovertemplate and "KB" in ham.customdata[1][0]
    assert math.isclose(ham.customdata[2][1], math.exp(3.0))
    assert list(fig.data[1].x) == [0.0, 50.0, 100.0]                 # every policy joins RNN only and full
    html = charts.figure_html(fig)
    assert 'src="http' not in html and len(html) > 1_000_000       # plotly.js inlined, no CDN script


def test_small_figures_and_bytes():
    assert charts.fmt_bytes(512) == "512 B" and charts.fmt_bytes(2048) == "2.0 KB"
    assert charts.fmt_bytes(3 * 1024 ** 2) == "3.0 MB"
    assert charts.cache_fill_figure([[1, 0], [2, 1]], 2, 10).data[0].name == "layer 1"
    rec = charts.recall_figure([dict(policy="ham", kv_fraction=0.1, accuracy=0.9)])
    assert rec.data[0].y == (90.0,)


@pytest.fixture
def result(tiny_model_dir, monkeypatch):
    from app.engine import models, results

    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "64")
    bundle = models.get_bundle()
    entry = results.text_entry(bundle, "=SUM(A1) is a formula; Ada met Ada again.\nEnd.")
    return results.result_for(bundle, entry, results.grid_taus(bundle, 0.0))


def test_csv_has_every_token_and_layer(result):
    rows = list(csv.reader(io.StringIO(tables.csv_text(result))))
    L, T, H = result.surprise.shape
    assert len(rows) == T + 1 and len(rows[0]) == 5 + L * (H + 2)
    assert rows[1][1].startswith("'=")                              # no formula injection
    assert rows[1][4] == "" and rows[2][4] != ""                    # no surprisal for the first token
    assert all(r[5 + H + 1] == "1" for r in rows[1:])               # tau 0: every token cached


def test_reads_of_a_result(result):
    T = len(result.tokens)
    reads, sink = result.reads(T - 1, 0)
    assert reads and 0 <= sink <= 1 and math.isclose(sum(reads.values()) + sink, 1.0, abs_tol=1e-4) or len(reads) == 8
    m = result.read_map(0)
    assert dict(m.row(T - 1)) == pytest.approx(reads, abs=1e-6)


def test_equal_memory_sentence_names_the_lowest_policy_at_the_threshold():
    from app.drawing.memory_chart import equal_memory_sentence

    rows = [dict(policy="ham", tau=0.7, kv_fraction=0.25, loss=4.30), dict(policy="window", tau=0.7, kv_fraction=0.25, loss=4.25),
            dict(policy="random", tau=0.7, kv_fraction=0.25, loss=4.40), dict(policy="ham", tau=0.5, kv_fraction=0.5, loss=4.2)]
    said = equal_memory_sentence(rows, 0.7, noise=0.01)
    assert "25% of the full cache" in said and "recent window gives the lowest loss, 0.0500 nats/token below HAM" in said
    assert "most recent tokens" in said
    rows[1]["loss"] = 4.295                                   # HAM behind by less than the noise
    assert "within the noise" in equal_memory_sentence(rows, 0.7, noise=0.01)
    rows[1]["loss"] = 4.50
    assert "HAM's picks give the lowest loss, 0.1000 nats/token below the next (random)" in equal_memory_sentence(rows, 0.7)
    assert equal_memory_sentence(rows, 0.5) is None          # HAM alone at that threshold: nothing to compare
