"""The pasted-text store behind links: a text pasted on one server is kept on disk under its
full SHA-256, so the address bar's link reopens it there (bounded by disk blocks, files and age,
or off). The folder is listed once per process (and hourly); each paste then prunes from an
index in memory, so a paste costs the same however many texts are kept.

A classroom runs one server for thirty students: a link names its text by the full hash, never a
short prefix, and a file edited on disk no longer answers to its old link.

Settings (app.settings): store_texts (HAM_LAB_STORE_TEXTS: 0 keeps nothing on disk), text_store
(the folder), text_store_mb (its disk cap, in allocated blocks), text_store_files (most texts
kept) and text_store_days (age cap); past a cap the oldest texts go first.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from app import settings
from app.engine.store import KEY_HEX, text_key


def texts_stored() -> bool:
    return settings.current().store_texts


def text_store_dir() -> Path:
    return settings.current().text_store


_DISK_LOCK = threading.Lock()
BLOCK = 512                   # st_blocks counts 512-byte units whatever the file system's block size
REINDEX_S = 3600              # a folder is listed again after this long (texts another process wrote)


def _disk_bytes(st: os.stat_result) -> int:
    """What a file takes on disk: its allocated blocks (a 10-byte text holds a whole block)."""
    return max(st.st_size, getattr(st, "st_blocks", 0) * BLOCK)


class _Index:
    """The store's files, oldest use first, with their disk bytes: listed once (and again every
    REINDEX_S), then kept up to date as texts are stored, so a paste prunes without listing
    the folder. Guarded by _DISK_LOCK."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.files: "OrderedDict[str, tuple[float, int]]" = OrderedDict()   # name -> (last use, disk bytes)
        self.disk = 0
        self.listed = time.monotonic()
        found = []
        with os.scandir(directory) as entries:
            for e in entries:
                if e.name.endswith(".txt") and len(e.name) == KEY_HEX + 4:
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    found.append((st.st_mtime, e.name, _disk_bytes(st)))
        for mtime, name, size in sorted(found):
            self.files[name] = (mtime, size)
            self.disk += size

    def used(self, name: str, when: float, size: int) -> None:
        """`name` was just written or opened: it is the newest."""
        self.forget(name)
        self.files[name] = (when, size)
        self.disk += size

    def forget(self, name: str) -> None:
        old = self.files.pop(name, None)
        if old is not None:
            self.disk -= old[1]

    def prune(self, keep: str) -> None:
        """Delete texts past the age cap, then the oldest until the folder fits its caps on disk
        bytes and on files; only the files deleted are touched."""
        now = settings.current()
        max_disk, max_files = now.text_store_mb * 2 ** 20, now.text_store_files
        oldest = time.time() - now.text_store_days * 86400
        while self.files:
            name, (last, _) = next(iter(self.files.items()))
            if name == keep or (last >= oldest and self.disk <= max_disk and len(self.files) <= max_files):
                break
            (self.directory / name).unlink(missing_ok=True)
            self.forget(name)


_INDEXES: dict = {}


def _index(directory: Path) -> _Index:
    index = _INDEXES.get(directory)
    if index is None or time.monotonic() - index.listed > REINDEX_S:
        index = _INDEXES[directory] = _Index(directory)
    return index


def remember_text(text: str) -> Optional[str]:
    """Keep a pasted text so a link with its key reopens it on this server; returns the key, or
    None when storing is off, the text alone exceeds the size cap, or the disk refuses."""
    if not texts_stored():
        return None
    key = text_key(text)
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > settings.current().text_store_mb * 2 ** 20:
        return None
    try:
        with _DISK_LOCK:
            directory = text_store_dir()
            directory.mkdir(parents=True, exist_ok=True)
            index = _index(directory)
            path = directory / f"{key}.txt"
            if not path.exists():
                tmp = directory / f".{key}.{threading.get_ident()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, path)
            now = time.time()
            os.utime(path, (now, now))         # in use (again): the age cap counts from now
            index.used(path.name, now, _disk_bytes(path.stat()))
            index.prune(keep=path.name)
            return key if path.exists() else None
    except OSError:
        return None                              # a read-only disk only loses the link feature


def recall_text(key: str) -> Optional[str]:
    """The stored text with this key, or None (not a key, not on this server, expired, or off)."""
    if not texts_stored() or not isinstance(key, str) or len(key) != KEY_HEX \
            or any(c not in "0123456789abcdef" for c in key):
        return None
    path = text_store_dir() / f"{key}.txt"
    try:
        age = time.time() - path.stat().st_mtime
        if age > settings.current().text_store_days * 86400:
            return None
        text = path.read_bytes().decode("utf-8", "surrogatepass")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text_key(text) == key else None   # a file edited on disk is not this link's text
