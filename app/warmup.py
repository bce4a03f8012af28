"""The app's head start: what the first visitor would otherwise wait for, done as the server starts
(app/server.py runs `warm` in a background thread)."""
from __future__ import annotations

import logging

log = logging.getLogger("ham_lab")


def warm() -> None:
    """Best effort: a failure here is only logged, and the page reports it when it asks for
    the same thing itself."""
    # Calls outside a session are fine for the caches used here; Streamlit would warn once per
    # call that there is no session, which is noise in the console.
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from app import charts, curves, engine, results
        from app.presets import DEFAULT_PRESET, PRESETS

        bundle = engine.get_bundle()
        entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
        results.result_for(bundle, entry, results.grid_taus(bundle, results.DEFAULT_TAU))
        curves.shipped_sweep(bundle, entry)
        charts.memory_quality_figure(curves.ham_rows(bundle, entry))   # loads plotly's figure code
        import pandas  # noqa: F401 - Streamlit imports it on the first component or table drawn

        engine.get_recall_bundle()
    except Exception:  # noqa: BLE001
        log.warning("warming up the app failed; pages will load what they need", exc_info=True)
    finally:
        quiet.setLevel(level)
