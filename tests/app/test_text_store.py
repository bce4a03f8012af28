"""The pasted-text store behind links (app.text_store): round trip, bad keys, bounded by size and
age, and off when asked."""
from __future__ import annotations

import os
import time

import pytest

from app import text_store
from app.shared import text_key


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_TEXT_STORE", str(tmp_path))
    monkeypatch.delenv("HAM_LAB_STORE_TEXTS", raising=False)
    return tmp_path


def test_pasted_text_round_trip_and_bad_keys(store_dir):
    key = text_store.remember_text("a stored text")
    assert key == text_key("a stored text")
    assert text_store.recall_text(key) == "a stored text"
    for bad in ("../x", key[:12], key.upper(), "0" * 64, None, 5):
        assert text_store.recall_text(bad) is None
    (store_dir / f"{key}.txt").write_text("edited on disk")
    assert text_store.recall_text(key) is None                              # not the text the link named


def test_text_store_is_bounded_by_size(store_dir, monkeypatch):
    monkeypatch.setenv("HAM_LAB_TEXT_STORE_MB", "0.01")                  # ~10 KB
    keys = []
    for i in range(12):
        keys.append(text_store.remember_text(f"text {i} " + "x" * 2000))
        stamp = time.time() - 100 + i                                   # distinct, recent ages
        os.utime(store_dir / f"{keys[-1]}.txt", (stamp, stamp))
    total = sum(p.stat().st_size for p in store_dir.glob("*.txt"))
    assert total <= 0.01 * 2 ** 20 and text_store.recall_text(keys[-1]) is not None
    assert text_store.recall_text(keys[0]) is None                          # the oldest went first
    assert text_store.remember_text("y" * 20_000) is None                   # alone larger than the cap


def test_text_store_is_bounded_by_age(store_dir, monkeypatch):
    monkeypatch.setenv("HAM_LAB_TEXT_STORE_DAYS", "1")
    old = text_store.remember_text("an old text")
    os.utime(store_dir / f"{old}.txt", (0, time.time() - 2 * 86400))
    assert text_store.recall_text(old) is None
    text_store.remember_text("a new text")                                  # storing prunes the folder
    assert not (store_dir / f"{old}.txt").exists()


def test_storing_texts_can_be_turned_off(store_dir, monkeypatch):
    key = text_store.remember_text("kept before")
    monkeypatch.setenv("HAM_LAB_STORE_TEXTS", "0")
    assert text_store.remember_text("a private note") is None and text_store.recall_text(key) is None
    assert [p.name for p in store_dir.glob("*.txt")] == [f"{key}.txt"]
