"""The server's head start: warm() loads the model and leaves the default preset's q and k in the
shared store, so the first visitor's clicks find them there; it waits for the first page to be
painted (or a few idle seconds), so it never holds that paint back."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from app import settings
from app.engine import models, results, warmup
from app.engine.store import reset_results_store, results_store
from app.settings.presets import DEFAULT_PRESET, PRESETS


def test_warm_loads_the_model_and_reads_the_default_view(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_RECALL_MODEL", str(tmp_path / "no_recall_model"))
    monkeypatch.setenv("HAM_LAB_THREADS", "1")
    reset_results_store()
    warmup.warm(wait_s=0, after_paint_s=0)
    bundle = models.get_bundle()
    entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
    assert bundle.loaded
    assert ("context",) + entry.key + (results.grid_taus(bundle, settings.DEFAULT_TAU),) in results_store()


def test_warm_waits_for_the_first_paint(tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tmp_path / "nothing_here"))
    monkeypatch.setattr(warmup, "_PAINTED", threading.Event())
    monkeypatch.setattr(warmup, "first_view", lambda: None)     # the torch-free step does not wait
    started = threading.Event()
    monkeypatch.setattr(models, "get_bundle", lambda: started.set() or models.bundle_at(tmp_path / "nothing_here"))
    thread = threading.Thread(target=warmup.warm, args=(60, 0), daemon=True)
    thread.start()
    assert not started.wait(0.3)              # nothing painted yet: the model waits
    warmup.painted()
    thread.join(30)
    assert started.is_set() and not thread.is_alive()


def test_the_first_step_imports_no_torch():
    """Done while the first page may be drawing: the shipped default view, no torch."""
    code = ("import sys; from app.server import preload; from app.engine import warmup; preload(); warmup.first_view(); "
            "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAM_LAB_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(warmup.__file__).parents[2], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "[]"


def test_warm_never_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_MODEL", str(tmp_path / "nothing_here"))
    warmup.warm(wait_s=0, after_paint_s=0)   # the page will say what is wrong; the server keeps starting
