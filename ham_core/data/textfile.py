"""Reading a text from a file or stdin without trusting its size or encoding.

A model reads at most `max_tokens` tokens, and no token spans more than the tokenizer's longest
piece (15 bytes for the shipped one), so only a bounded prefix of any input can matter:
`read_prefix` reads that many bytes and says whether there was more (`/dev/zero` or a 100 MB
file cost what 4,096 tokens need). `decode` turns the bytes into text: UTF-8, or the UTF-16 /
UTF-32 that a byte-order mark announces; anything else is a one-line HAMInputError.
"""
from __future__ import annotations

import codecs
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ham_core.errors import HAMInputError

# Longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
UNIT_BYTES = {"utf-8": 1, "utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}


def prefix_bytes(tokenizer, n_tokens: int) -> int:
    """UTF-8 bytes that surely hold the first `n_tokens` tokens, with room for the piece the
    cut splits: n_tokens x the longest token, plus a margin."""
    return int(n_tokens) * tokenizer.max_token_bytes + 256


def sniff_encoding(data: bytes) -> Tuple[str, int]:
    """(encoding, length of its byte-order mark): a BOM decides; without one, UTF-8."""
    for bom, name in BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return "utf-8", 0


@dataclass
class RawText:
    """The first bytes of an input, and what is known of the rest."""

    data: bytes                   # at most the bytes asked for (times the encoding's unit size)
    name: str                     # "stdin" or the path, for messages
    size: Optional[int]           # the whole input's size in bytes when known (a regular file)
    cut: bool                     # there was more than `data`

    @property
    def encoding(self) -> str:
        return sniff_encoding(self.data)[0]


def _open(source: str):
    if source == "-":
        return sys.stdin.buffer, "stdin", None
    path = Path(source)
    if not path.exists():
        raise HAMInputError(f"file not found: {source}")
    if path.is_dir():
        raise HAMInputError(f"{source} is a folder, not a text file")
    stream = path.open("rb")
    st = os.fstat(stream.fileno())
    return stream, source, st.st_size if path.is_file() else None


def check_source(source: str) -> None:
    """Fail early (before a model loads) for a missing file or a folder."""
    if source != "-":
        _open(source)[0].close()


def read_prefix(source: str, max_bytes: int) -> RawText:
    """At most `max_bytes` UTF-8 bytes of a file (or stdin for '-'); a UTF-16 or UTF-32 input
    (by its BOM) gets the same number of characters, i.e. 2 or 4 times the bytes."""
    stream, name, size = _open(source)
    try:
        data = stream.read(max_bytes + 1)
        unit = UNIT_BYTES[sniff_encoding(data)[0]]
        if unit > 1:
            data += stream.read((max_bytes + 1) * unit - len(data)) if len(data) > max_bytes else b""
        limit = max_bytes * unit
        cut = len(data) > limit
        return RawText(data[:limit], name, size, cut)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def decode(raw: RawText) -> str:
    """The text of `raw` (a cut input may end inside a character: that piece is dropped)."""
    encoding, bom = sniff_encoding(raw.data)
    body = raw.data[bom:]
    if encoding == "utf-8" and b"\x00" in body:
        raise HAMInputError(f"{raw.name} looks like a binary file (it contains NUL bytes); give a UTF-8 text file")
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        text = decoder.decode(body, final=not raw.cut)
    except UnicodeDecodeError as e:
        what = "UTF-8" if encoding == "utf-8" else f"{encoding.upper()} (as its byte-order mark says)"
        raise HAMInputError(f"{raw.name} is not valid {what} text "
                            f"(byte 0x{body[e.start]:02x} at offset {e.start + bom})") from None
    if not text.strip():
        if raw.cut:
            raise HAMInputError(f"{raw.name} starts with more than {len(raw.data):,} bytes of whitespace: no text to read")
        raise HAMInputError(f"{raw.name} is empty" if not text else f"{raw.name} holds only whitespace: no text to read")
    return text
