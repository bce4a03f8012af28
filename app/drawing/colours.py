"""Colours of the token view: a few bins whose edges come from the data, on palettes light
enough that black text stays readable on every colour (WCAG contrast, tested).

Three ways to place the edges (`Bins`):
  * `quantile_bins`: each colour holds about the same share of this text's tokens (the default:
    a skewed layer no longer reads as one colour), the legend giving each colour's range;
  * `fixed_bins`: equal steps over a fixed range (comparable across layers and texts);
  * `signed_bins`: a signed quantity (what the cache bought) on a diverging palette, symmetric
    around 0 so that equal colours mean equal sizes on both sides.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from plotly.colors import diverging, sequential

RGB = tuple[int, int, int]
N_BINS = 8
TEXT = (0, 0, 0)                      # token text: black on every colour
MIN_CONTRAST = 5.0                    # WCAG AA asks 4.5 for body text; a margin for projectors
NO_VALUE = (215, 215, 215)            # a token with no value (the first token's surprisal)
PALETTES = {"viridis": sequential.Viridis, "cividis": sequential.Cividis}
SIGNED_PALETTE = diverging.BrBG       # brown: the cache hurt; blue-green: it helped (colour-blind safe)


def _rgb(colour: str) -> RGB:
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    return tuple(int(float(c)) for c in colour[colour.index("(") + 1:-1].split(","))  # type: ignore[return-value]


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour, 0 (black) to 1 (white)."""
    def lin(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def lighten(colours: Sequence[RGB], text: RGB = TEXT, target: float = MIN_CONTRAST) -> list[RGB]:
    """`colours` all mixed with the same, least share of white that gives `text` at least
    `target` contrast on every one (one share for all keeps the scale's order of lightness)."""
    for step in range(0, 101):
        f = step / 100
        mixed = [tuple(round(c + (255 - c) * f) for c in rgb) for rgb in colours]
        if all(contrast(m, text) >= target for m in mixed):  # type: ignore[arg-type]
            return mixed  # type: ignore[return-value]
    return [(255, 255, 255)] * len(colours)


def sample(stops: Sequence[str], x: float) -> RGB:
    """The colour at x in [0, 1] along a list of colour stops (linear between stops)."""
    rgbs = [_rgb(c) for c in stops]
    pos = min(max(x, 0.0), 1.0) * (len(rgbs) - 1)
    i = min(int(pos), len(rgbs) - 2)
    f = pos - i
    return tuple(round(a + (b - a) * f) for a, b in zip(rgbs[i], rgbs[i + 1]))  # type: ignore[return-value]


def palette(name: str, n: int = N_BINS) -> list[RGB]:
    """n readable colours along the named scale, low to high. The scale's darkest 30% is left
    out: lifting it to a readable lightness would make its colours alike."""
    stops = PALETTES.get(name, PALETTES["viridis"])
    return lighten([sample(stops, 0.3 + 0.7 * (k + 0.5) / n) for k in range(n)])


def signed_palette(n: int = N_BINS) -> list[RGB]:
    """n readable colours from 'hurt a lot' through neutral to 'helped a lot' (n even)."""
    return lighten([sample(SIGNED_PALETTE, 0.05 + 0.9 * (k + 0.5) / n) for k in range(n)])


def _finite(values: Sequence[Optional[float]]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return a[np.isfinite(a)]


def fmt(x: float) -> str:
    """A bin edge, to as many digits as its size needs."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else ("∞" if x > 0 else "−∞")
    digits = max(2, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{min(digits, 5)}f}".replace("-", "−")


@dataclass
class Bins:
    """Colour bins: value v falls in bin k when edges[k] <= v < edges[k + 1] (values beyond the
    ends fall in the end bins); `note` says in words how the edges were chosen."""

    edges: list[float]                # n + 1 increasing edges
    colours: list[RGB]                # n colours
    label: str                        # what the colour shows
    note: str                         # how the scale was chosen

    @property
    def n(self) -> int:
        return len(self.colours)

    def index(self, value: Optional[float]) -> Optional[int]:
        if value is None or not math.isfinite(value):
            return None
        return min(max(bisect.bisect_right(self.edges, value) - 1, 0), self.n - 1)

    def colour(self, value: Optional[float]) -> RGB:
        k = self.index(value)
        return NO_VALUE if k is None else self.colours[k]

    def counts(self, values: Sequence[Optional[float]]) -> list[int]:
        out = [0] * self.n
        for v in values:
            k = self.index(v)
            if k is not None:
                out[k] += 1
        return out

    def ranges(self) -> list[str]:
        """Each bin's range as text ('0.031–0.054', '−0.05 to −0.02'); the end bins say they are open."""
        out = []
        for k in range(self.n):
            lo, hi = self.edges[k], self.edges[k + 1]
            if k == 0 and self.n > 1:
                out.append(f"< {fmt(hi)}")
            elif k == self.n - 1 and self.n > 1:
                out.append(f"≥ {fmt(lo)}")
            else:                                  # "−0.05 to −0.02" reads better than "−0.05–−0.02"
                out.append(f"{fmt(lo)} to {fmt(hi)}" if lo < 0 else f"{fmt(lo)}–{fmt(hi)}")
        return out


def fixed_bins(lo: float, hi: float, label: str, scale: str = "viridis", n: int = N_BINS) -> Bins:
    edges = [lo + (hi - lo) * k / n for k in range(n + 1)]
    return Bins(edges, palette(scale, n), label, f"fixed scale {fmt(lo)}–{fmt(hi)} in {n} equal steps")


def quantile_bins(values: Sequence[Optional[float]], label: str, scale: str = "viridis", n: int = N_BINS,
                  fallback: tuple[float, float] = (0.0, 1.0)) -> Bins:
    """Edges at the data's quantiles, so each colour holds about 1/n of the tokens (tied values
    share a bin, so there may be fewer bins); too few distinct values -> the fixed fallback."""
    data = _finite(values)
    if len(np.unique(data)) < 3:
        return fixed_bins(*fallback, label, scale, n)
    edges = sorted(set(np.quantile(data, np.linspace(0, 1, n + 1)).tolist()))
    if len(edges) < 3:
        return fixed_bins(*fallback, label, scale, n)
    k = len(edges) - 1
    return Bins(edges, palette(scale, k), label,
                f"each colour holds about 1/{k} of this text's tokens (edges at the quantiles)")


def signed_bins(values: Sequence[Optional[float]], label: str, n: int = N_BINS) -> Bins:
    """Symmetric edges 0, ±q25, ±q50, ±q75 of |value| (n = 8): as many shades each side of 0."""
    data = np.abs(_finite(values))
    half = n // 2
    qs = np.quantile(data, [k / half for k in range(1, half)]) if len(data) else np.zeros(half - 1)
    steps = sorted(set(float(q) for q in qs if q > 0))
    if not steps:
        steps = [1e-3 * k for k in range(1, half)]
    while len(steps) < half - 1:                  # few distinct sizes: extend by doubling
        steps.append(steps[-1] * 2)
    edges = [-math.inf, *[-s for s in reversed(steps)], 0.0, *steps, math.inf]
    return Bins(edges, signed_palette(n), label,
                "brown: the cache made the token harder to predict; blue-green: easier. "
                "Symmetric shades at the quartiles of the size of the change")
