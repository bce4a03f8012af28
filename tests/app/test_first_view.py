"""A preset's first view comes from the results shipped in assets/precomputed/ without torch,
and it is the view the model computes; the app runs without Triton.

The shipped results are stamped with the shipped model's hash, so these tests use the model in
assets/lm, each page run in a fresh interpreter where sys.modules says what a run imported."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIRST_VIEW = """
import json, sys
sys.path.insert(0, {root!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=300).run()
view = [json.loads(c.proto.json) for c in at.get("bidi_component") if c.proto.component_name == "ham_lab.token_view"]
view = [json.loads(v) if isinstance(v, str) else v for v in view]      # the component's data is one JSON text
main = [(type(e).__name__, str(getattr(e, "value", ""))) for e in at.main if type(e).__name__ in
        ("Markdown", "Caption", "Metric", "Title", "Subheader", "Info", "Warning")]
print(json.dumps({{
    "imported": sorted(m for m in ("torch", "triton") if m in sys.modules),
    "errors": [e.value for e in at.error] + [str(e.value) for e in at.exception],
    "tokens": len(view[0]["tips"]["rows"]) if view else 0,
    "readout": {{m.label: m.value for m in at.metric}},
    "html": [h.proto.body for h in at.get("html")],
    "charts": [json.loads(c.proto.spec) for c in at.get("plotly_chart")],
    "view": view[0] if view else None,
    "main": main,
}}))
"""


def first_view(tmp_path, **env) -> dict:
    """The Read page's first run on the default preset, in a fresh interpreter."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAM_LAB_", "HAM_KERNELS"))}
    clean.update(HAM_LAB_TEXT_STORE=str(tmp_path / "texts"), HAM_LAB_THREADS="1", **env)
    script = FIRST_VIEW.format(root=str(ROOT), app=str(ROOT / "app" / "streamlit_app.py"))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_presets_whole_first_view_imports_no_torch(tmp_path):
    from app.settings.presets import DEFAULT_PRESET, PRESETS
    from ham_core.model.checkpoint import default_model_dir, load_tokenizer

    got = first_view(tmp_path)
    assert not got["errors"], got["errors"]
    assert got["imported"] == [], f"the first view imported {got['imported']}"
    assert got["tokens"] == len(load_tokenizer(default_model_dir()).encode(PRESETS[DEFAULT_PRESET]))
    assert {"KV cache (all layers)", "of a full cache", "loss"} <= set(got["readout"])
    assert any('id="ham-kv"' in h for h in got["html"]) and any('id="ham-bought"' in h for h in got["html"])
    (chart,) = got["charts"]
    names = {trace.get("name") for trace in chart["data"]}
    assert {"HAM surprise", "random", "recent window", "sinks + window", "HOLA residual"} <= names


def test_the_shipped_first_view_is_the_one_the_model_computes(tmp_path):
    """Without the shipped first views (the sweeps kept, so the chart has every policy either
    way) the model computes the same page: every number, token, read and the chart."""
    only_sweeps = tmp_path / "precomputed"
    only_sweeps.mkdir()
    for path in (ROOT / "assets" / "precomputed").glob("*.json"):
        shutil.copy(path, only_sweeps)
    shipped = first_view(tmp_path)
    computed = first_view(tmp_path, HAM_LAB_PRECOMPUTED=str(only_sweeps))
    assert "torch" in computed["imported"]
    for part in ("tokens", "readout", "html", "charts", "view", "main"):
        assert shipped[part] == computed[part], part


NO_TRITON = """
import sys
class NoTriton:                      # as on a machine where Triton is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ImportError("No module named 'triton'")
sys.meta_path.insert(0, NoTriton())
sys.path.insert(0, {root!r})
from app import settings
from app.engine import models, results
from app.settings.presets import DEFAULT_PRESET, PRESETS
bundle = models.get_bundle()
entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
r = results.computed_result(bundle, entry, results.grid_taus(bundle, settings.DEFAULT_TAU))
print(round(r.loss, 4), bundle.device, "triton" in sys.modules)
"""


def test_the_app_computes_without_triton(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAM_LAB_", "HAM_KERNELS"))}
    out = subprocess.run([sys.executable, "-c", NO_TRITON.format(root=str(ROOT))], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(env, HAM_LAB_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    loss, device, imported = out.stdout.split()
    assert float(loss) > 0 and device == "CPU" and imported == "False"
