"""The token-view HTML: every token is escaped text, ids are deterministic, marks are plain
classes; the colour bins (app.drawing.colours): edges from the data, readable text on every colour."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from app.drawing.colours import MIN_CONTRAST, NO_VALUE, TEXT, contrast, fixed_bins, palette, quantile_bins, signed_bins, signed_palette
from app.drawing.token_view import TokenCell, bins_legend, page, render_legend, render_view, visible_text

NASTY = [
    "<script>alert(1)</script>", " <img src=x onerror=alert(1)>", ' "quoted"', " 'single'",
    " AT&T", " &amp;", " </span></div>", "\n", " \u202eevil", "\x00\x07",
]


class _Collect(HTMLParser):
    """Records every tag and attribute and the text of each token span."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.texts, self._depth = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "span" and dict(attrs).get("class", "").startswith("ham-tok"):
            self._depth = 1
            self.texts.append("")
        elif self._depth:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.texts[-1] += data


def _cells(texts, **kw):
    return [TokenCell(t, value=i / max(len(texts) - 1, 1), cached=i % 2,
                      tooltip=f"token {i}: {t!r} <b>&", **kw) for i, t in enumerate(texts)]


def test_nasty_tokens_render_as_text_not_markup():
    out = render_view(_cells(NASTY), vmin=0, vmax=1)
    parser = _Collect()
    parser.feed(out)
    assert set(parser.tags) == {"div", "span"}           # no script, img or anything else
    assert "<script" not in out and "<img" not in out
    assert not any(name.startswith("on") for name, _ in parser.attrs)   # no event handlers
    assert parser.texts[0] == "<script>alert(1)</script>"
    assert parser.texts[1] == " <img src=x onerror=alert(1)>"
    assert parser.texts[2] == ' "quoted"' and parser.texts[3] == " 'single'"
    assert parser.texts[4] == " AT&T" and parser.texts[5] == " &amp;"
    assert parser.texts[6] == " </span></div>"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "AT&amp;T" in out and "&amp;amp;" in out
    assert len(parser.texts) == len(NASTY)


def test_tooltips_are_escaped_attributes():
    out = render_view([TokenCell('x" onmouseover="alert(1)', 0.5, tooltip='a" onclick="alert(2)')], vmin=0, vmax=1)
    parser = _Collect()
    parser.feed(out)
    names = [n for n, _ in parser.attrs]
    assert "onclick" not in names and "onmouseover" not in names
    assert dict(parser.attrs)["title"] == 'a" onclick="alert(2)'


def test_invisible_and_direction_characters_are_shown():
    assert visible_text("\n") == "\u21b5\n"
    assert visible_text("\x00") == "\u2400"
    assert visible_text("a\u202eb") == "a\u27e8RLO\u27e9b"
    assert visible_text("") == "\u25e6"
    assert visible_text("\u05e9\u05dc\u05d5\u05dd") == "\u05e9\u05dc\u05d5\u05dd"   # RTL letters kept
    assert visible_text("\U0001f600") == "\U0001f600"


def test_ids_are_deterministic_and_unique():
    cells = _cells(["a", "b", "c"])
    one = render_view(cells, vmin=0, vmax=1, prefix="v1")
    two = render_view(_cells(["a", "b", "c"]), vmin=0, vmax=1, prefix="v1")
    assert one == two
    ids = re.findall(r'id="([^"]+)"', one)
    assert ids == ["v1-view", "v1-t0", "v1-t1", "v1-t2"]


def test_snapshot_small_view():
    cells = [TokenCell("Hi", 0.0, cached=1, tooltip="t0"), TokenCell(" <b>", 1.0, tooltip="t1", read=0.5)]
    bins = fixed_bins(0, 1, "x", n=2)
    lo, hi = bins.colours
    out = render_view(cells, bins=bins, selected=0, prefix="s")
    assert out == (
        '<div class="ham-view" id="s-view" style="--ham-size:0.95rem">'
        f'<span id="s-t0" class="ham-tok ham-cached ham-selected" data-i="0" style="background:rgb{lo}" '
        'title="t0">Hi</span>'
        f'<span id="s-t1" class="ham-tok ham-read" data-i="1" style="background:rgb{hi};'
        'outline-color:rgba(216, 27, 96, 1.0)" title="t1" data-read="0.5000"> &lt;b&gt;</span></div>'
    )
    assert 'title=' not in render_view([TokenCell("a", 0.5)], bins=bins)    # no tooltip, no title


def test_count_mode_draws_a_bar_not_a_superscript():
    cells = [TokenCell("a", 0.2, cached=3), TokenCell("b", 0.2, cached=0), TokenCell("c", 0.2, cached=4)]
    out = render_view(cells, vmin=0, vmax=1, count_mode=True, n_layers=4, selected=1)
    assert "<sup" not in out and "ham-cached" not in out
    assert out.count("ham-layers") == 2 and "--ham-n:0.750" in out and "--ham-n:1.000" in out
    assert 'class="ham-tok ham-selected"' in out


@pytest.mark.parametrize("scale", ["viridis", "cividis"])
def test_every_colour_keeps_black_text_readable(scale):
    colours = palette(scale) + signed_palette() + [NO_VALUE]
    assert all(contrast(c, TEXT) >= MIN_CONTRAST >= 4.5 for c in colours)      # WCAG AA and more
    seq = palette(scale)
    assert len(set(seq)) == len(seq) == 8                                      # eight distinct colours
    lum = [contrast(c, (0, 0, 0)) for c in seq]
    assert lum == sorted(lum) and lum[-1] - lum[0] > 5                         # dark to light, far apart


def test_quantile_bins_spread_a_skewed_layer_over_every_colour():
    skewed = [0.01 * 1.06 ** i for i in range(188)]          # most values small, a long tail
    linear = fixed_bins(0, max(skewed), "x")
    assert linear.counts(skewed)[0] > 0.4 * len(skewed)       # one colour would hold most tokens
    bins = quantile_bins(skewed, "x")
    counts = bins.counts(skewed)
    assert bins.n == 8 and sum(counts) == 188 and min(counts) >= 188 // 8 - 2
    assert bins.edges == sorted(bins.edges) and "1/8" in bins.note
    assert bins.colour(None) == bins.colour(float("nan")) == NO_VALUE
    assert bins.index(-5) == 0 and bins.index(1e9) == 7
    ties = quantile_bins([0.1] * 50 + [0.5] * 50 + [0.9] * 50, "x")
    assert 2 <= ties.n <= 8 and sum(ties.counts([0.1, 0.5, 0.9])) == 3
    flat = quantile_bins([0.3] * 20, "x", fallback=(0, 1))
    assert flat.edges[0] == 0 and flat.edges[-1] == 1 and "fixed" in flat.note


def test_signed_bins_are_symmetric_around_zero():
    values = [-0.3, -0.01, -0.002, 0.0, 0.001, 0.004, 0.02, 0.5, float("nan")]
    bins = signed_bins(values, "bought")
    inner = bins.edges[1:-1]
    assert inner == [-x for x in reversed(inner)] and 0.0 in inner and bins.n == 8
    assert bins.index(0.5) == 7 and bins.index(-0.3) == 0 and bins.index(0.0001) == 4 and bins.index(-0.0001) == 3
    assert signed_bins([], "x").n == 8 and signed_bins([0.0, 0.0], "x").n == 8


def test_legend_names_each_colour_and_the_scale():
    bins = quantile_bins([i / 100 for i in range(100)], "surprise <L1>")
    legend = bins_legend(bins, show_reads=True, mark=0.5, mark_label="underlined: τ")
    assert "surprise &lt;L1&gt;" in legend and legend.count("ham-swatch") >= 8
    assert legend.count("ham-tau") == 1 and "underlined: τ" in legend and "1/8" in legend
    assert all(html.escape(r) in legend for r in bins.ranges())
    old = render_legend("surprise", 0, 1)
    assert "fixed scale" in old
    doc = page(render_view(_cells(["x"]), vmin=0, vmax=1) + legend)
    assert doc.startswith("<!doctype html>") and "http" not in doc      # nothing fetched from a CDN


def test_bars_escape_labels_and_scale_widths():
    from app.drawing.token_view import render_bars

    out = render_bars(["#1 '<script>'", "#2 'a&b'"], [0.5, 0.25], prefix="b")
    assert "<script>" not in out and "&lt;script&gt;" in out and "a&amp;b" in out
    assert "width:100.0%" in out and "width:50.0%" in out and 'id="b"' in out


@pytest.mark.parametrize("text", ["שלום עולם, and مرحبا بالعالم", "Cats 🐈‍⬛ and dogs 🐕; flags 🇳🇴, tones 👍🏽"])
def test_rtl_and_emoji_tokens_render_as_characters(text):
    """Byte-level tokens split these characters; the view shows each character once, in the
    token holding its first byte, and the rest as a neutral mark, never as escape codes."""
    from ham_core.model.tokenizer import train_tokenizer
    from app.drawing.token_view import CONTINUATION, token_label

    tok = train_tokenizer(["plain English words only, nothing else"] * 4, vocab_size=280)
    tokens = tok.tokenize(text)
    assert any(t.text == "" for t in tokens)                      # the tokenizer did split characters
    out = render_view([TokenCell(t.text, 0.5, tooltip=token_label(t.text)) for t in tokens], vmin=0, vmax=1)
    parser = _Collect()
    parser.feed(out)
    assert "\\x" not in out and "\\u" not in out
    shown = "".join(parser.texts).replace(CONTINUATION, "").replace("\u27e8ZWJ\u27e9", "\u200d")
    assert shown == text
    labels = [token_label(t.text) for t in tokens]
    assert not any("\\x" in label for label in labels)
    assert any(ch in "".join(labels) for ch in "של🐈")


def test_a_selected_word_in_pieces_is_marked_as_one():
    # " Or", "l", "a", "ith": one word, Orlaith; selecting a piece marks the others with it, and
    # every piece carries its word's first index for the page's script (a click elsewhere).
    tokens = [" The", " Or", "l", "a", "ith", " came", "."]
    cells = [TokenCell(t, 0.5) for t in tokens]
    out = render_view(cells, vmin=0, vmax=1, selected=3)
    spans = re.findall(r'<span id="ham-t(\d+)" class="([^"]+)"[^>]*?(?: data-w="(\d+)")?>', out)
    by = {int(i): (cls.split(), w) for i, cls, w in spans}
    assert by[3][0] == ["ham-tok", "ham-selected"]
    assert all("ham-word" in by[i][0] and by[i][1] == "1" for i in (1, 2, 4))
    assert all("ham-word" not in by[i][0] and by[i][1] == "" for i in (0, 5, 6))
    assert "ham-word" not in render_view(cells, vmin=0, vmax=1, selected=5)        # a one-token word
