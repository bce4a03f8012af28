"""The Architectures page: the four comparison models on the page's text, or a plain notice."""
from __future__ import annotations

import pytest

from app.drawing.architecture_charts import architectures_quality_figure, cache_position_figure
from tests.app.test_app import app_env, clean, start  # noqa: F401 - app_env is a fixture

PAGE = "views/architectures.py"


def test_without_models_the_page_says_so(app_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HAM_LAB_COMPARE", str(app_env / "no_compare"))
    at = start()
    at.switch_page(PAGE).run()
    clean(at)
    assert at.title[0].value == "Architectures"
    assert "not here yet" in at.info[0].value and "no comparison models" in at.info[0].value
    assert not at.get("plotly_chart")


def test_with_models_both_charts_and_the_table(app_env, compare_models_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HAM_LAB_COMPARE", str(compare_models_dir))
    at = start()
    at.switch_page(PAGE).run()
    clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert "Transformer (every token)" in str(charts[0].proto) and "keys in the KV cache" in str(charts[1].proto)
    table = at.table[0].value
    assert list(table["architecture"])[:2] == ["Transformer (every token)", "GDN (RNN, no cache)"]
    differ = at.table[1].value
    assert len(differ) == 8 and set(differ["in HAM's cache"]) <= {"yes", "no"}
    at.select_slider(key="w_arch_fraction").set_value(0.5).run()
    clean(at)


def test_figures_draw_points_for_fixed_caches_and_lines_for_the_rest():
    rows = [{"model": "transformer", "kv_fraction": 1.0, "loss": 4.0}, {"model": "gdn", "kv_fraction": 0.0, "loss": 4.6},
            {"model": "ham", "kv_fraction": 0.25, "loss": 4.2}, {"model": "ham", "kv_fraction": 1.0, "loss": 4.05}]
    fig = architectures_quality_figure(rows)
    modes = {t.name: t.mode for t in fig.data}
    assert modes == {"Transformer (every token)": "markers", "GDN (RNN, no cache)": "markers",
                     "HAM (surprising tokens)": "lines+markers"}
    curves = cache_position_figure({"transformer": [2, 4, 6], "gdn": [0, 0, 0]}, 0.25)
    assert [list(t.y) for t in curves.data] == [[2, 4, 6], [0, 0, 0]]


def test_presets_are_precomputed_and_used_only_with_their_models(compare_models_dir, tmp_path, monkeypatch, capsys):
    from app import precompute
    from app.engine import architectures as pa
    from app.settings.presets import PRESETS
    from ham_core.analysis.compare import load_comparison

    monkeypatch.setenv("HAM_LAB_PRECOMPUTED", str(tmp_path / "pre"))
    assert precompute.write_architectures(tmp_path / "no_models", 128) == [] and "nothing written" in capsys.readouterr().out
    written = precompute.write_architectures(compare_models_dir, 128)
    assert len(written) == len(PRESETS)
    name, text = next(iter(PRESETS.items()))
    names = list(load_comparison(compare_models_dir))
    shipped = pa.lookup(name, compare_models_dir, names, text, 128)
    assert shipped == pa.results(load_comparison(compare_models_dir), text, 128)      # what the page would compute
    assert set(shipped["curves"]) == {"0.1", "0.25", "0.5"} and len(shipped["differ"]["0.25"]) == 8
    assert pa.lookup(name, compare_models_dir, names, text + " edited", 128) is None  # another text
    assert pa.lookup(name, compare_models_dir, names, text, 64) is None               # another token limit
    assert pa.lookup(None, compare_models_dir, names, text, 128) is None              # a pasted text
    other = tmp_path / "retrained"
    import shutil
    shutil.copytree(compare_models_dir, other)
    (other / "gdn" / "config.json").write_text((other / "gdn" / "config.json").read_text() + "\n")
    assert pa.lookup(name, other, names, text, 128) is None                           # another model file
