"""Tokenizer: exact round trip, offsets that tile the original string, file errors.

A tiny tokenizer is trained here on a few paragraphs; the shipped assets/lm/tokenizer.json is
checked too when it exists.
"""
from __future__ import annotations

import argparse
import json

import pytest

from ham_core.errors import HAMInputError
from ham_core.cli.data import add_cli
from ham_core.model.tokenizer import (DEFAULT_TOKENIZER_PATH, EOT, HAMTokenizer, Token, tokenizer_stats,
                                      train_tokenizer)

PARAGRAPHS = [
    "The jury said it did find that many of the registration and election laws are outmoded.",
    "She walked to the lighthouse at dawn, and the keeper's dog followed her all the way.",
    "In the morning the fishermen went out; in the evening they came back with nothing.",
    "\"Don't worry,\" he said. \"We'll get there -- we always do.\"\n\nThe end.",
]

TRICKY = [
    "",
    " ",
    "Hello,  world!\n\n\tTabs\t\tand   spaces   ",
    "naïve café, façade, Zürich",
    "e\u0301 (combining accent) vs \u00e9",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧 and a flag 🇫🇷",
    "שלום עולם — مرحبا بالعالم — mixed RTL",
    "日本語のテキスト、中文文本，한국어",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑ x² ≤ ∞",
    "\r\nwindows\r\nline\rends\x00nul\u200bzero-width\ufeff",
    f"a literal {EOT} inside{EOT}",
    "     leading and trailing spaces     ",
    "x" * 300,
]


@pytest.fixture(scope="module")
def tiny():
    return train_tokenizer(PARAGRAPHS * 3, vocab_size=300)


def _tokenizers(tiny):
    yield tiny
    if DEFAULT_TOKENIZER_PATH.is_file():
        yield HAMTokenizer.from_file(DEFAULT_TOKENIZER_PATH)


def _check_spans(tok: HAMTokenizer, text: str):
    tokens = tok.tokenize(text)
    assert [t.id for t in tokens] == tok.encode(text)
    pos = 0
    for t in tokens:
        assert isinstance(t, Token)
        assert t.start == pos and t.end >= t.start  # contiguous, in order
        assert t.text == text[t.start:t.end]
        pos = t.end
    assert pos == len(text)  # every character in exactly one span
    return tokens


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_round_trip_exact(tiny, text):
    for tok in _tokenizers(tiny):
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        # Our byte-level decode agrees with the HF decoder.
        assert tok._tok.decode(ids, skip_special_tokens=False) == text


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_offsets_tile_the_text(tiny, text):
    for tok in _tokenizers(tiny):
        _check_spans(tok, text)


def test_split_character_belongs_to_first_token(tiny):
    text = "a😀b"  # the tiny vocabulary has no token for the emoji: its 4 bytes are 4 tokens
    tokens = _check_spans(tiny, text)
    assert [(t.text, t.start, t.end) for t in tokens] == [
        ("a", 0, 1), ("😀", 1, 2), ("", 2, 2), ("", 2, 2), ("", 2, 2), ("b", 2, 3)]
    # Shown by the token that completes it, never as escape codes.
    assert tiny.token_strings([t.id for t in tokens]) == ["a", "", "", "", "😀", "b"]


@pytest.mark.parametrize("text", ["שלום עולם", "مرحبا بالعالم", "Cats 🐈‍⬛ and 🇳🇴 👍🏽", "日本語のテキスト"])
def test_token_strings_of_any_script_are_characters(tiny, text):
    ids = tiny.encode(text)
    strings = tiny.token_strings(ids)
    assert "".join(strings) == text and not any("\\x" in s for s in strings)
    assert tiny.token_strings(ids[:-1] + [ids[-1]])[-1] == strings[-1]
    cut = tiny.token_strings(ids[:2])                      # a sequence that stops inside a character
    assert not any("\\x" in s for s in cut) and "".join(cut) == tiny.decode(ids[:2])


def test_special_token_and_sizes(tiny):
    assert tiny.eot_id == 0
    assert tiny.encode(EOT) == [0]
    assert tiny.decode([0]) == EOT
    assert 257 < tiny.vocab_size <= 300
    strings = tiny.token_strings(tiny.encode("In the morning"))
    assert "".join(strings) == "In the morning" and " the" in strings  # a frequent word merged


def test_save_and_load(tiny, tmp_path):
    path = tiny.save(tmp_path / "nested" / "tokenizer.json")
    again = HAMTokenizer.from_file(path)
    assert again.vocab_size == tiny.vocab_size
    for text in TRICKY:
        assert again.encode(text) == tiny.encode(text)


def test_train_writes_out_path(tmp_path):
    tok = train_tokenizer(PARAGRAPHS, vocab_size=280, out_path=tmp_path / "t.json")
    assert HAMTokenizer.from_file(tmp_path / "t.json").encode("the end") == tok.encode("the end")


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(HAMInputError, match="not found.*nope/tokenizer.json"):
        HAMTokenizer.from_file(path)


@pytest.mark.parametrize("content", ["{not json", '{"hello": 1}', ""])
def test_corrupt_file_names_it(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(HAMInputError, match="broken.json"):
        HAMTokenizer.from_file(path)


def test_file_without_eot_at_zero(tiny, tmp_path):
    data = json.loads(tiny._tok.to_str())
    data["added_tokens"][0]["content"] = "<pad>"
    data["model"]["vocab"]["<pad>"] = data["model"]["vocab"].pop(EOT)
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(HAMInputError, match="other.json.*id 0"):
        HAMTokenizer.from_file(path)


def test_bad_inputs(tiny):
    with pytest.raises(HAMInputError, match="vocab_size"):
        train_tokenizer(PARAGRAPHS, vocab_size=100)
    with pytest.raises(HAMInputError, match="no texts"):
        train_tokenizer([], vocab_size=300)
    with pytest.raises(HAMInputError, match="outside the vocabulary"):
        tiny.decode([tiny.vocab_size])
    with pytest.raises(HAMInputError, match="surrogate"):
        tiny.encode("bad \ud800")
    with pytest.raises(HAMInputError, match="must be a str"):
        tiny.encode(b"bytes")


def test_stats(tiny):
    s = tokenizer_stats(tiny, PARAGRAPHS)
    assert s["tokens"] == sum(len(tiny.encode(p)) for p in PARAGRAPHS)
    assert s["chars_per_token"] == pytest.approx(s["characters"] / s["tokens"])
    assert s["tokens_per_word"] > 1


def test_cli_trains_from_corpus_dir(tmp_path, capsys):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for split, texts in (("train", PARAGRAPHS * 2), ("valid", PARAGRAPHS[:1])):
        lines = [json.dumps({"text": t, "source": "test"}) for t in texts]
        (corpus_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    out = tmp_path / "tok.json"
    args = parser.parse_args(["tokenizer", "--corpus", str(corpus_dir), "--vocab-size", "290", "--out", str(out)])
    args.func(args)
    assert "valid:" in capsys.readouterr().out
    assert HAMTokenizer.from_file(out).vocab_size <= 290
    args = parser.parse_args(["tokenizer", "--corpus", str(tmp_path / "none"), "--out", str(out)])
    with pytest.raises(SystemExit, match="^error: no corpus file"):
        args.func(args)
