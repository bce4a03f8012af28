"""The app's settings (app.settings): every HAM_LAB_* variable read in one place, junk falling
back to the default, and the constants it mirrors from ham_core held equal to them."""
from __future__ import annotations

import dataclasses

import pytest

from app import settings


def test_the_mirrored_constants_are_ham_cores():
    from ham_core.analysis.compare import default_compare_dir
    from ham_core.model import surprise_range
    from ham_core.model.checkpoint import default_model_dir, default_recall_dir

    assert (settings.TAU_FULL, settings.TAU_OFF) == (surprise_range.TAU_FULL, surprise_range.TAU_OFF)
    assert all(settings.caches_nothing(t) == surprise_range.caches_nothing(t) for t in (0.0, 1.9, 2.0, 2.01, 2.5))
    d = settings.DEFAULTS
    assert (d.model, d.recall_model, d.compare) == (default_model_dir(), default_recall_dir(), default_compare_dir())
    assert settings.TAU_GRID[-1] == settings.TAU_OFF and settings.DEFAULT_TAU in settings.TAU_GRID


def test_every_variable_is_read_and_junk_falls_back(monkeypatch, tmp_path):
    for name in settings.NAMES.values():
        monkeypatch.delenv(name, raising=False)
    assert settings.current() == settings.DEFAULTS
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "64")
    monkeypatch.setenv("HAM_LAB_MODEL", str(tmp_path))
    monkeypatch.setenv("HAM_LAB_STORE_TEXTS", "off")
    monkeypatch.setenv("HAM_LAB_WORKERS", "3")
    now = settings.current()
    assert (now.max_tokens, now.model, now.store_texts, now.workers) == (64, tmp_path, False, 3)
    for name, junk in (("HAM_LAB_MAX_TOKENS", "many"), ("HAM_LAB_CACHE_MB", "nan"), ("HAM_LAB_CACHE_MB", "0"),
                       ("HAM_LAB_TEXT_STORE_DAYS", "-1"), ("HAM_LAB_LIVE_TRAININGS", "inf"), ("HAM_LAB_MODEL", "")):
        monkeypatch.setenv(name, junk)
        field = next(f for f, n in settings.NAMES.items() if n == name)
        assert getattr(settings.current(), field) == getattr(settings.DEFAULTS, field), (name, junk)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.current().max_tokens = 1


def test_the_readme_lists_every_variable():
    from pathlib import Path

    readme = (Path(settings.ROOT) / "README.md").read_text(encoding="utf-8")
    assert [n for n in settings.NAMES.values() if f"`{n}`" not in readme] == []
