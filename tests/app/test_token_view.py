"""The token-view HTML: every token is escaped text, ids are deterministic, colours are sane."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from app.token_view import (
    TokenCell, colour_for, page, render_legend, render_view, text_colour, visible_text,
)

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
    out = render_view(cells, vmin=0, vmax=1, selected=0, prefix="s")
    assert out == (
        '<div class="ham-view" id="s-view" style="--ham-size:0.95rem">'
        '<span id="s-t0" class="ham-tok ham-cached ham-selected" data-i="0" '
        'style="background:rgb(68, 1, 84);color:#ffffff" title="t0">Hi</span>'
        '<span id="s-t1" class="ham-tok ham-read" data-i="1" '
        'style="background:rgb(253, 231, 37);color:#000000;outline-color:rgba(216, 27, 96, 1.0)" '
        'title="t1" data-read="0.5000"> &lt;b&gt;</span></div>'
    )


def test_count_mode_badges_and_selection():
    cells = [TokenCell("a", 0.2, cached=3), TokenCell("b", 0.2, cached=0)]
    out = render_view(cells, vmin=0, vmax=1, count_mode=True, selected=1)
    assert '<sup class="ham-count">3</sup>' in out
    assert out.count("ham-count") == 1
    assert 'class="ham-tok ham-selected"' in out


@pytest.mark.parametrize("scale", ["viridis", "cividis"])
def test_colours_span_the_scale_and_text_contrast(scale):
    lo, hi = colour_for(0, 0, 1, scale), colour_for(1, 0, 1, scale)
    assert lo != hi
    assert text_colour(lo) == "#ffffff" and text_colour(hi) == "#000000"
    assert colour_for(-5, 0, 1, scale) == lo and colour_for(7, 0, 1, scale) == hi
    assert colour_for(None, 0, 1, scale) == colour_for(float("nan"), 0, 1, scale) == (200, 200, 200)


def test_legend_and_page_are_self_contained():
    legend = render_legend("surprise <L1>", 0, 2, show_reads=True)
    assert "surprise &lt;L1&gt;" in legend and "linear-gradient" in legend
    doc = page(render_view(_cells(["x"]), vmin=0, vmax=1) + legend)
    assert doc.startswith("<!doctype html>") and "http" not in doc      # nothing fetched from a CDN


def test_bars_escape_labels_and_scale_widths():
    from app.token_view import bucket_counts, render_bars

    out = render_bars(["#1 '<script>'", "#2 'a&b'"], [0.5, 0.25], prefix="b")
    assert "<script>" not in out and "&lt;script&gt;" in out and "a&amp;b" in out
    assert "width:100.0%" in out and "width:50.0%" in out and 'id="b"' in out
    labels, counts, colours = bucket_counts([0.0, 0.1, 0.95, 3.0, float("nan")], 0.0, 1.0, n=4)
    assert counts == [2, 0, 0, 2] and labels[-1].endswith("+") and len(colours) == 4


@pytest.mark.parametrize("text", ["שלום עולם, and مرحبا بالعالم", "Cats 🐈‍⬛ and dogs 🐕; flags 🇳🇴, tones 👍🏽"])
def test_rtl_and_emoji_tokens_render_as_characters(text):
    """Byte-level tokens split these characters; the view shows each character once, in the
    token holding its first byte, and the rest as a neutral mark, never as escape codes."""
    from ham_core.model.tokenizer import train_tokenizer
    from app.token_view import CONTINUATION, token_label

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
