"""The server's head start: warm() leaves the default preset's first view computed in the shared
store (and the model loaded), so the first visitor's page finds them there."""
from __future__ import annotations

from app import engine, results, warmup
from app.presets import DEFAULT_PRESET, PRESETS
from app.shared import results_store


def test_warm_computes_the_first_view(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_RECALL_MODEL", str(tmp_path / "no_recall_model"))
    monkeypatch.setenv("HAM_LAB_THREADS", "1")
    results_store().clear()
    warmup.warm()
    bundle = engine.get_bundle()
    entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
    assert ("result",) + entry.key + (results.grid_taus(bundle, results.DEFAULT_TAU),) in results_store()


def test_warm_never_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tmp_path / "nothing_here"))
    warmup.warm()                     # the page will say what is wrong; the server keeps starting
