"""The pasted-text store behind links (app.session.text_store): round trip, bad keys, bounded by size and
age, and off when asked."""
from __future__ import annotations

import os
import time

import pytest

from app.engine.store import text_key
from app.session import text_store


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
    now = time.time()
    monkeypatch.setattr(text_store.time, "time", lambda: now + 2 * 86400)     # two days pass
    assert text_store.recall_text(old) is None
    new = text_store.remember_text("a new text")                            # storing prunes the folder
    assert not (store_dir / f"{old}.txt").exists() and text_store.recall_text(new) == "a new text"


def disk_bytes(folder) -> int:
    return sum(max(p.stat().st_size, p.stat().st_blocks * 512) for p in folder.glob("*.txt"))


def test_text_store_is_bounded_in_files(store_dir, monkeypatch):
    monkeypatch.setenv("HAM_LAB_TEXT_STORE_FILES", "5")
    keys = [text_store.remember_text(f"tiny text {i}") for i in range(12)]
    assert sorted(p.name for p in store_dir.glob("*.txt")) == sorted(f"{k}.txt" for k in keys[-5:])
    text_store.remember_text("tiny text 7")                                  # opened again: now the newest
    text_store.remember_text("one more")
    assert (store_dir / f"{keys[7]}.txt").exists() and not (store_dir / f"{keys[8]}.txt").exists()


def test_text_store_counts_disk_blocks_not_only_bytes(store_dir, monkeypatch):
    """Tiny texts each hold a whole disk block: the cap is on what the folder takes on disk."""
    monkeypatch.setenv("HAM_LAB_TEXT_STORE_MB", "0.05")                  # ~51 KB
    for i in range(60):
        text_store.remember_text(f"t{i}")
    files = list(store_dir.glob("*.txt"))
    assert disk_bytes(store_dir) <= 0.05 * 2 ** 20
    assert sum(p.stat().st_size for p in files) < 500                      # by bytes alone all 60 would fit
    assert text_store.recall_text(text_key("t59")) == "t59"


def test_a_paste_does_not_list_the_folder(store_dir, monkeypatch):
    """The folder is listed once (and again only hourly); later pastes prune from the index."""
    for i in range(30):                                                     # texts of an earlier run
        (store_dir / f"{text_key(f'earlier {i}')}.txt").write_text(f"earlier {i}")
    text_store._INDEXES.clear()                                             # as in a fresh process
    monkeypatch.setenv("HAM_LAB_TEXT_STORE_FILES", "20")
    listed, real = [], os.scandir
    with monkeypatch.context() as m:
        m.setattr(text_store.os, "scandir", lambda *a: listed.append(a) or real(*a))
        m.setattr(type(store_dir), "glob", lambda *a, **k: pytest.fail("a paste listed the folder"))
        text_store.remember_text("first paste")
        for i in range(40):
            text_store.remember_text(f"paste {i}")
    assert len(listed) == 1                                                 # the first paste listed it
    assert len(list(store_dir.glob("*.txt"))) == 20                          # the earlier texts were counted
    assert text_store.recall_text(text_key("paste 39")) == "paste 39"


def test_storing_texts_can_be_turned_off(store_dir, monkeypatch):
    key = text_store.remember_text("kept before")
    monkeypatch.setenv("HAM_LAB_STORE_TEXTS", "0")
    assert text_store.remember_text("a private note") is None and text_store.recall_text(key) is None
    assert [p.name for p in store_dir.glob("*.txt")] == [f"{key}.txt"]
