"""The text a paste or an upload gives the model: cut to what the token limit can use, line ends
and unpaired surrogates mended, control characters and right-to-left script noted, an upload's
encoding read from its byte-order mark (ham_core.data.textfile, as training reads files)."""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from ham_core.data.textfile import UNIT_BYTES, sniff_encoding

MAX_CHARS = 200_000           # longer pastes are cut before tokenising (the token limit cuts again)
MAX_UPLOAD_BYTES = 2_500_000 # the most an upload is read (the page passes what its token limit needs)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")


@dataclass
class CleanText:
    """The text the model will read, and notices for the user about what was changed or odd."""

    text: str
    notices: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def cut_text(raw: str, max_chars: int = MAX_CHARS) -> tuple[str, list[str]]:
    """The first `max_chars` characters of a paste, and the notice saying it was cut (if it was)."""
    if len(raw) <= max_chars:
        return raw, []
    return raw[:max_chars], [f"The text has {len(raw):,} characters; only the first {max_chars:,} are read, "
                             "more than the token limit can use."]


def clean_text(raw: str, max_chars: int = MAX_CHARS) -> CleanText:
    """Cut very long pastes, make every line end a newline, drop unpaired surrogates, and note
    control characters and RTL (each notice once)."""
    raw, notices = cut_text(raw, max_chars)
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")     # Windows and old Mac line ends are just line ends
    fixed = raw.encode("utf-8", "replace").decode("utf-8")
    if fixed != raw:
        notices.append("Some characters were not valid Unicode (unpaired surrogates) and became '?'.")
    n_control = len(_CONTROL.findall(fixed))
    if n_control:
        notices.append(f"The text has {n_control} control character(s); the view shows them as symbols such as \u2400.")
    if _RTL.search(fixed):
        notices.append("The text has right-to-left script; tokens are shown left to right, in reading order of the model.")
    return CleanText(fixed, notices)


def decode_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> CleanText:
    """Bytes of an uploaded .txt -> its text (UTF-8, or UTF-16 / UTF-32 with a byte-order mark),
    reading at most `max_bytes` UTF-8 bytes' worth, with notices (not exceptions) about the
    file itself: empty, binary, cut, not UTF-8. Notices about the text come from clean_text."""
    if not data:
        return CleanText("", ["The file is empty: there is no text to read."])
    encoding, bom = sniff_encoding(data)
    limit = max_bytes * UNIT_BYTES[encoding]
    note = []
    cut = len(data) > limit
    if cut:
        note.append(f"The file has {len(data):,} bytes; only the first {limit:,} are read, more than the token "
                    "limit can use.")
        data = data[:limit]
    body = data[bom:]
    if encoding == "utf-8":
        head = body[:4096]
        controls = sum(1 for b in head if (b < 32 and b not in (9, 10, 12, 13)) or b == 127)
        if head and ((b"\x00" in head and controls > 0.05 * len(head)) or controls > 0.3 * len(head)):
            return CleanText("", note + ["This file looks binary (many zero or control bytes), not text. "
                                         "Upload a plain .txt file (UTF-8, or UTF-16 with a byte-order mark)."])
    decoder = codecs.getincrementaldecoder(encoding)        # a cut inside a character drops that piece
    try:
        text = decoder("strict").decode(body, final=not cut)
    except UnicodeDecodeError:
        text = decoder("replace").decode(body, final=not cut)
        bad = text.count("\ufffd") - body.decode(encoding, "ignore").count("\ufffd")
        what = "UTF-8" if encoding == "utf-8" else f"{encoding.upper()} (as its byte-order mark says)"
        note.append(f"The file is not valid {what}; {bad} undecodable byte sequence(s) are shown as \ufffd.")
    head = text[:4096]
    if encoding != "utf-8" and sum(1 for c in head if ord(c) < 32 and c not in "\t\n\f\r") > 0.3 * len(head):
        return CleanText("", note + [f"This file starts with a {encoding.upper()} byte-order mark but does not read "
                                     "as text. Upload a plain .txt file."])
    if not text.strip():
        note.append("The file holds only whitespace: there is no text to read.")
    return CleanText(text, note)
