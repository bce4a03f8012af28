"""Byte-level BPE tokenizer for the small HAM language model, and a thin wrapper around it.

Training uses HF `tokenizers` (fast, Rust); everything the app shows is computed here from the
tokens' raw bytes, so that
  * `decode(encode(text)) == text` exactly, for any unicode (emoji, RTL, newlines, spaces), and
  * `tokenize(text)` gives character spans into the ORIGINAL Python string that cover it
    contiguously, each character in exactly one span. A character whose UTF-8 bytes are split
    across tokens belongs to the token holding its first byte; a token holding only the tail
    bytes gets an empty span at that position.
"""
from __future__ import annotations

import bisect
import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from ham_core.errors import HAMInputError

EOT = "<|endoftext|>"
DEFAULT_TOKENIZER_PATH = Path(__file__).resolve().parents[2] / "assets" / "lm" / "tokenizer.json"


def _byte_alphabet() -> dict[str, int]:
    """The byte-level alphabet: printable Latin-1 bytes stand for themselves, the other bytes
    (controls, space, ...) for chr(256 + k). Maps each alphabet character back to its byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    shifted = [b for b in range(256) if b not in keep]
    table = {chr(b): b for b in keep}
    table.update({chr(256 + k): b for k, b in enumerate(shifted)})
    return table


_CHAR_TO_BYTE = _byte_alphabet()


@dataclass(frozen=True)
class Token:
    """One token of a text: `text == original[start:end]` (character offsets)."""

    id: int
    text: str
    start: int
    end: int


class HAMTokenizer:
    """A byte-level BPE tokenizer with `<|endoftext|>` at id 0 (wraps a `tokenizers.Tokenizer`)."""

    def __init__(self, tokenizer: Tokenizer, name: str = "tokenizer"):
        if not isinstance(tokenizer.pre_tokenizer, pre_tokenizers.ByteLevel):
            raise HAMInputError(f"{name}: not a byte-level BPE tokenizer")
        if tokenizer.token_to_id(EOT) != 0:
            raise HAMInputError(f"{name}: the special token {EOT} must have id 0")
        self._tok = tokenizer
        special = {i: t.content for i, t in tokenizer.get_added_tokens_decoder().items()}
        self._bytes: list[bytes] = [b""] * tokenizer.get_vocab_size(with_added_tokens=True)
        for piece, i in tokenizer.get_vocab(with_added_tokens=True).items():
            if i in special:
                self._bytes[i] = special[i].encode("utf-8")
            elif all(c in _CHAR_TO_BYTE for c in piece):
                self._bytes[i] = bytes(_CHAR_TO_BYTE[c] for c in piece)
            else:
                raise HAMInputError(f"{name}: token {piece!r} is not made of byte-level characters")
        self._special = special
        self.max_token_bytes = max(len(b) for b in self._bytes)   # no token spans more bytes of text

    @classmethod
    def from_file(cls, path) -> "HAMTokenizer":
        """Load a tokenizer.json; a missing or unreadable file raises HAMInputError naming it."""
        path = Path(path)
        if not path.is_file():
            raise HAMInputError(f"tokenizer file not found: {path}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises plain Exception for bad JSON
            raise HAMInputError(f"tokenizer file {path} is corrupt or not a tokenizer: {e}") from None
        return cls(tok, name=f"tokenizer file {path}")

    def save(self, path) -> Path:
        """Write tokenizer.json (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(path))
        return path

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    @property
    def eot_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (a literal "<|endoftext|>" in the text becomes id 0)."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts at once (parallel in Rust)."""
        for t in texts:
            if not isinstance(t, str):
                raise HAMInputError(f"text to encode must be a str, got {type(t).__name__}")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise HAMInputError("text contains unpaired surrogate characters (not valid unicode)") from None
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_bytes(self, i: int) -> bytes:
        """The raw UTF-8 bytes that token id `i` stands for."""
        if not isinstance(i, int) or not 0 <= i < len(self._bytes):
            raise HAMInputError(f"token id {i!r} is outside the vocabulary (0..{len(self._bytes) - 1})")
        return self._bytes[i]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a token sequence; exact for any sequence produced by `encode`."""
        data = b"".join(self.token_bytes(int(i)) for i in ids)
        return data.decode("utf-8", errors="replace")  # only a cut mid-character is lossy

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Readable text of each token: every character goes to the token that completes it (holds
        its last byte), so a token holding only the first bytes of a character gets "" and no
        token ever shows escape codes; "".join(...) == decode(ids). Special tokens show their name."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        out = []
        for i in ids:
            i = int(i)
            if i in self._special:
                out.append(decoder.decode(b"", final=True) + self._special[i])
                decoder = codecs.getincrementaldecoder("utf-8")("replace")
            else:
                out.append(decoder.decode(self.token_bytes(i)))
        if out:
            out[-1] += decoder.decode(b"", final=True)     # bytes of a character the sequence never finished
        return out

    def tokenize(self, text: str) -> list[Token]:
        """Tokens of `text` with character spans into `text` (see the module docstring)."""
        ids = self.encode(text)
        char_starts, pos = [], 0  # byte offset at which each character starts
        for ch in text:
            char_starts.append(pos)
            o = ord(ch)
            pos += 1 if o < 0x80 else 2 if o < 0x800 else 3 if o < 0x10000 else 4
        tokens, b = [], 0
        for i in ids:
            b_end = b + len(self._bytes[i])
            # Characters whose first byte lies in [b, b_end) belong to this token.
            start, end = bisect.bisect_left(char_starts, b), bisect.bisect_left(char_starts, b_end)
            tokens.append(Token(i, text[start:end], start, end))
            b = b_end
        if b != pos:  # would mean the tokenizer changed the text (e.g. a normalizer)
            raise RuntimeError(f"token bytes ({b}) do not add up to the text's bytes ({pos})")
        return tokens


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, out_path=None) -> HAMTokenizer:
    """Train byte-level BPE on `texts` (all 256 bytes are in the vocabulary, so nothing is ever
    unknown); `<|endoftext|>` gets id 0. Saves to `out_path` when given."""
    if not isinstance(vocab_size, int) or vocab_size < 258:
        raise HAMInputError(f"vocab_size must be an integer >= 258 (256 bytes + {EOT} + 1), got {vocab_size!r}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    count = [0]

    def counted():
        for t in texts:
            count[0] += 1
            yield t

    tok.train_from_iterator(counted(), trainer=trainer)
    if count[0] == 0:
        raise HAMInputError("no texts to train the tokenizer on")
    ham = HAMTokenizer(tok)
    if out_path is not None:
        ham.save(out_path)
    return ham


def tokenizer_stats(tok: HAMTokenizer, texts: Sequence[str]) -> dict:
    """Tokens per word and characters per token over `texts` (words split on whitespace)."""
    n_tokens = sum(len(ids) for ids in tok.encode_batch(list(texts)))
    n_chars = sum(len(t) for t in texts)
    n_words = sum(len(t.split()) for t in texts)
    return {"documents": len(texts), "tokens": n_tokens, "words": n_words, "characters": n_chars,
            "tokens_per_word": n_tokens / max(n_words, 1), "chars_per_token": n_chars / max(n_tokens, 1)}
