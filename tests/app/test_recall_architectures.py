"""The recall lab's "Four architectures on the recall task": the comparison's recall models on the
task's held-out sequences, shipped when the file matches them, or a plain notice without them."""
from __future__ import annotations

import shutil

from app.drawing.architecture_charts import architectures_quality_figure, recall_in_words
from tests.app.test_app import app_env, clean, start  # noqa: F401 - app_env is a fixture

PAGE = "views/recall.py"


def test_rows_for_each_architecture(recall_models_dir, one_thread):
    from app.engine import architectures as pa

    models = pa.load_recall(recall_models_dir)
    rows = pa.recall_rows(models)
    assert [r["model"] for r in rows] == ["transformer", "gdn"] + ["window"] * 4 + ["ham"] * 4
    assert [r["kv_fraction"] for r in rows[:2]] == [1.0, 0.0]
    assert all(set(r) == {"model", "kv_fraction", "accuracy"} and 0 <= r["accuracy"] <= 1 for r in rows)
    assert pa.recall_task()["n_pairs"] == 32 and len(pa.recall_task()["seeds"]) == 16   # compare --recall's task


def test_figure_and_words():
    rows = [{"model": "transformer", "kv_fraction": 1.0, "accuracy": 1.0}, {"model": "gdn", "kv_fraction": 0.0, "accuracy": 0.1},
            {"model": "ham", "kv_fraction": 0.1, "accuracy": 0.5}, {"model": "ham", "kv_fraction": 0.24, "accuracy": 0.95}]
    fig = architectures_quality_figure(rows, measure="accuracy")
    assert {t.name: list(t.y) for t in fig.data} == {"Transformer (every token)": [100.0], "GDN (RNN, no cache)": [10.0],
                                                    "HAM (surprising tokens)": [50.0, 95.0]}
    assert "accuracy" in fig.layout.yaxis.title.text
    words = recall_in_words(rows)
    assert "HAM 95% (with 24% of a full cache)" in words and "GDN, with no cache at all, 10%" in words
    assert "Transformer, which keeps every token, 100%" in words and "window" in words   # the why names the window
    assert recall_in_words([]) == ""
    assert "even with a full cache" not in words
    unlearned = rows + [{"model": "window", "kv_fraction": 0.25, "accuracy": 0.1}, {"model": "window", "kv_fraction": 1.0, "accuracy": 0.1}]
    assert "The window hybrid gets only 10% even with a full cache" in recall_in_words(unlearned)   # its training, not its window


def test_without_models_the_section_says_what_trains_them(app_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HAM_LAB_COMPARE", str(app_env / "no_compare"))
    at = start()
    at.switch_page(PAGE).run()
    clean(at)
    assert "Four architectures on the recall task" in [h.value for h in at.subheader]
    notice = at.info[-1].value
    assert "not here yet" in notice and "docs/TRAINING.md" in notice and "The paper's comparison" in notice
    assert not any("recall task, each architecture" in str(c.proto) for c in at.get("plotly_chart"))


def test_with_models_the_chart_words_and_table(app_env, recall_models_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HAM_LAB_COMPARE", str(recall_models_dir.parent))
    monkeypatch.setenv("HAM_LAB_PRECOMPUTED", str(app_env / "pre"))
    at = start()
    at.switch_page(PAGE).run()
    clean(at)
    chart = [c for c in at.get("plotly_chart") if "recall task, each architecture" in str(c.proto)]
    assert len(chart) == 1 and "window hybrid (last W tokens)" in str(chart[0].proto)
    assert any(m.value.startswith("Share of queries answered right: HAM") for m in at.markdown)
    table = at.table[-1].value
    assert list(table["architecture"])[:2] == ["Transformer (every token)", "GDN (RNN, no cache)"]
    shipped = "Computed ahead of time for these models"
    assert not any(shipped in c.value for c in at.caption)

    from app import precompute
    from app.engine.store import reset_results_store

    precompute.write_recall_architectures(recall_models_dir)
    reset_results_store()                    # nothing computed is left: what shows comes from the file
    at = start()
    at.switch_page(PAGE).run()
    clean(at)
    assert any(shipped in c.value for c in at.caption)
    assert at.table[-1].value.equals(table)


def test_precomputed_rows_are_used_only_with_their_models(recall_models_dir, tmp_path, monkeypatch, capsys, one_thread):
    from app import precompute
    from app.engine import architectures as pa

    monkeypatch.setenv("HAM_LAB_PRECOMPUTED", str(tmp_path / "pre"))
    assert precompute.write_recall_architectures(tmp_path / "no_models") is None
    assert "nothing written" in capsys.readouterr().out
    assert precompute.check_recall_architectures(tmp_path / "no_models") == []        # nothing to match
    assert precompute.check_recall_architectures(recall_models_dir) == ["architectures-recall.json"]
    precompute.write_recall_architectures(recall_models_dir)
    names = list(pa.load_recall(recall_models_dir))
    shipped = pa.lookup_recall(recall_models_dir, names)
    assert shipped == pa.recall_rows(pa.load_recall(recall_models_dir))              # what the page would compute
    assert precompute.check_recall_architectures(recall_models_dir) == []
    other = tmp_path / "retrained"
    shutil.copytree(recall_models_dir, other)
    (other / "ham" / "config.json").write_text((other / "ham" / "config.json").read_text() + "\n")
    assert pa.lookup_recall(other, names) is None                                     # another model file
    assert precompute.check_recall_architectures(other) == ["architectures-recall.json"]
