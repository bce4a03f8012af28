"""The Architectures page: the four comparison models on the page's text, or a plain notice."""
from __future__ import annotations

import pytest

from app.architecture_charts import architectures_quality_figure, cache_position_figure
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
