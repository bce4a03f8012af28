"""Results computed ahead of time (app.precompute): the shipped files match the shipped models and
the numbers a fresh computation gives; a file for another model, text or token limit is never
used; and the Read page shows a matching preset's full chart with no click and no sweep."""
from __future__ import annotations

import shutil

import pytest

from app import settings
from app import precompute
from app.engine import shipped
from app.settings import TAU_GRID
from app.settings.presets import PRESETS
from ham_core.model.checkpoint import default_model_dir, default_recall_dir, load_bundle

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shipped_files_match_the_shipped_models():
    assert precompute.check(default_model_dir(), default_recall_dir(), settings.DEFAULTS.max_tokens) == [], \
        "the models changed: run python -m app.precompute"


def test_shipped_rows_are_what_a_fresh_sweep_gives():
    model, tokenizer = load_bundle()
    name = min(PRESETS, key=lambda n: len(tokenizer.encode(PRESETS[n])))
    rows = shipped.lookup_sweep(default_model_dir(), PRESETS[name], TAU_GRID)
    taus = [0.0, 0.3, 2.5]
    fresh = shipped.sweep_rows(model, tokenizer.encode(PRESETS[name]), taus)
    by_key = {(r["policy"], r["tau"]): r for r in rows.ham + rows.policies}
    for row in fresh.ham + fresh.policies:
        old = by_key[(row["policy"], row["tau"])]
        assert old["kv_bytes_peak"] == row["kv_bytes_peak"]
        assert old["loss"] == pytest.approx(row["loss"], abs=1e-4)


def test_a_file_is_used_only_for_its_model_and_text(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_PRECOMPUTED", str(tmp_path / "pre"))
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    written = precompute.write_presets(model_dir, 64, tmp_path / "pre")
    assert sorted(p.suffix for p in written) == [".json"] * len(PRESETS) + [".npz"] * len(PRESETS)
    _, tokenizer = load_bundle(model_dir)
    text = PRESETS["Repetitive text"]
    read = text[: tokenizer.tokenize(text)[63].end]
    rows = shipped.lookup_sweep(model_dir, read, TAU_GRID)
    assert rows is not None and {r["policy"] for r in rows.policies} == {"random", "window", "sinks", "hola"}
    assert [r["tau"] for r in rows.ham] == list(TAU_GRID)
    assert shipped.lookup_sweep(model_dir, text, TAU_GRID) is None            # another token limit
    assert shipped.lookup_sweep(model_dir, read + " ", TAU_GRID) is None      # another text
    assert shipped.lookup_sweep(model_dir, read, TAU_GRID[:-1]) is None       # another slider grid
    view = (shipped.VIEW_TAUS[0],) * 2        # the tiny model's two layers
    assert shipped.lookup_view(model_dir, read, view) is not None
    assert shipped.lookup_view(model_dir, read + " ", view) is None           # another text
    assert shipped.lookup_view(model_dir, read, (0.55, 0.55)) is None         # a threshold not shipped
    (model_dir / "config.json").write_text((model_dir / "config.json").read_text() + "\n")
    assert shipped.lookup_sweep(model_dir, read, TAU_GRID) is None            # another model
    assert shipped.lookup_view(model_dir, read, view) is None


def test_read_page_shows_a_precomputed_preset_without_a_sweep(tiny_model_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app.engine import results
    from app.engine.store import reset_results_store, results_store
    from test_app import settle

    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_TEXT_STORE", str(tmp_path / "texts"))
    monkeypatch.setenv("HAM_LAB_RECALL_MODEL", str(tmp_path / "no_recall_model"))
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "96")
    monkeypatch.setenv("HAM_LAB_PRECOMPUTED", str(tmp_path / "pre"))
    precompute.write_presets(tiny_model_dir, 96, tmp_path / "pre")
    reset_results_store()
    before = results_store().computed.get("result", 0)

    def no_forward(*args, **kwargs):
        raise AssertionError("the first view ran the model")

    monkeypatch.setattr(results, "_forward", no_forward)
    at = AppTest.from_file(str(precompute.ROOT / "app" / "streamlit_app.py"), default_timeout=180)
    at.query_params["preset"] = "Facts, then questions"
    settle(at.run())
    assert not at.exception and not at.error
    chart = str(at.get("plotly_chart")[0].proto)
    assert "HAM surprise" in chart and "recent window" in chart and "HOLA residual" in chart
    assert not [b for b in at.button if b.key == "w_compare"]
    # the view's threshold, and full cache and no cache (what the cache bought per token, and the
    # chart's noise), not a sweep of the whole grid; all three shipped, so none ran the model
    assert results_store().computed.get("result", 0) - before == 3


def test_shipped_recall_rows_are_what_a_fresh_run_gives():
    from ham_core.analysis import recall
    from ham_core.data.recall_task import load_task
    from ham_core.model.checkpoint import load_model

    task = shipped.recall_settings(load_task(default_recall_dir()))
    rows = shipped.lookup_recall(default_recall_dir(), task)
    fresh = recall.recall_accuracy(load_model(default_recall_dir()), ("ham", "window"), fractions=[0.25],
                                   n_pairs=task["n_pairs"], length=task["length"],
                                   seeds=range(task["first_seed"], task["first_seed"] + task["n"]))
    for row in fresh:
        old = next(r for r in rows if r["policy"] == row.policy and r["target"] == row.target)
        assert old["tau"] == pytest.approx(row.tau, abs=1e-4)
        assert old["kv_fraction"] == pytest.approx(row.kv_fraction, abs=1e-6)
        assert old["accuracy"] == pytest.approx(row.accuracy, abs=1e-6)
