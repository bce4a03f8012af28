"""The pasted-text store behind links: a text pasted on one server is kept on disk under its
full SHA-256, so the address bar's link reopens it there (bounded by size and age, or off).

A classroom runs one server for thirty students: a link names its text by the full hash, never a
short prefix, and a file edited on disk no longer answers to its old link.

HAM_LAB_STORE_TEXTS     1 keeps pasted texts so links reopen them; 0 keeps nothing on disk
HAM_LAB_TEXT_STORE      folder of the store (default ~/.cache/ham_lab/texts)
HAM_LAB_TEXT_STORE_MB   size cap of that folder (default 50; oldest texts go first)
HAM_LAB_TEXT_STORE_DAYS age cap of a stored text (default 30)
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

from app.shared import KEY_HEX, env_number, text_key

DEFAULT_TEXT_STORE_MB = 50
DEFAULT_TEXT_STORE_DAYS = 30


def texts_stored() -> bool:
    return os.environ.get("HAM_LAB_STORE_TEXTS", "1").strip().lower() not in ("0", "false", "no", "off")


def text_store_dir() -> Path:
    return Path(os.environ.get("HAM_LAB_TEXT_STORE") or Path.home() / ".cache" / "ham_lab" / "texts")


_DISK_LOCK = threading.Lock()


def _prune(directory: Path, keep: Optional[Path] = None) -> None:
    """Delete texts older than the age cap, then the oldest until the folder fits its size cap."""
    max_bytes = env_number("HAM_LAB_TEXT_STORE_MB", DEFAULT_TEXT_STORE_MB) * 2 ** 20
    max_age = env_number("HAM_LAB_TEXT_STORE_DAYS", DEFAULT_TEXT_STORE_DAYS) * 86400
    now = time.time()
    files = []
    for path in directory.glob("*.txt"):
        try:
            st = path.stat()
        except OSError:
            continue
        if now - st.st_mtime > max_age and path != keep:
            path.unlink(missing_ok=True)
        else:
            files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size


def remember_text(text: str) -> Optional[str]:
    """Keep a pasted text so a link with its key reopens it on this server; returns the key, or
    None when storing is off, the text alone exceeds the size cap, or the disk refuses."""
    if not texts_stored():
        return None
    key = text_key(text)
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > env_number("HAM_LAB_TEXT_STORE_MB", DEFAULT_TEXT_STORE_MB) * 2 ** 20:
        return None
    try:
        with _DISK_LOCK:
            directory = text_store_dir()
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{key}.txt"
            if path.exists():
                os.utime(path)                 # in use again: the age cap counts from now
            else:
                tmp = directory / f".{key}.{threading.get_ident()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, path)
            _prune(directory, keep=path)
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
        if age > env_number("HAM_LAB_TEXT_STORE_DAYS", DEFAULT_TEXT_STORE_DAYS) * 86400:
            return None
        text = path.read_bytes().decode("utf-8", "surrogatepass")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text_key(text) == key else None   # a file edited on disk is not this link's text
