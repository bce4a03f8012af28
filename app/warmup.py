"""The app's head start: what the first visitor would otherwise wait for, done in the background
(app/server.py runs `warm` in a thread as the server starts).

A preset's first view is painted from shipped results without torch (app.precompute), so the
warm-up waits until a page has been drawn, or until nobody has asked for one for a few seconds,
before it imports torch and loads the models: on a 2-core laptop that work, done at the same
time, would hold back the first paint it no longer serves.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("ham_lab")

IDLE_START_S = 5.0           # with no visitor by then, warm up anyway
_PAINTED = threading.Event()


def painted() -> None:
    """A page has been drawn (streamlit_app.py calls this at the end of every run)."""
    _PAINTED.set()


def warm(wait_s: float = IDLE_START_S) -> None:
    """Best effort: a failure here is only logged, and the page reports it when it asks for
    the same thing itself."""
    _PAINTED.wait(wait_s)
    # Calls outside a session are fine for the caches used here; Streamlit would warn once per
    # call that there is no session, which is noise in the console.
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from app import engine, results
        from app.presets import DEFAULT_PRESET, PRESETS

        bundle = engine.get_bundle()
        bundle.model                                  # imports torch and loads the weights
        entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
        # One forward of the default view: its q and k go to the store, so a click on another
        # token of the first view (its reads) does not wait for a forward.
        results.computed_result(bundle, entry, results.grid_taus(bundle, results.DEFAULT_TAU))
        engine.get_recall_bundle()
    except Exception:  # noqa: BLE001
        log.warning("warming up the app failed; pages will load what they need", exc_info=True)
    finally:
        quiet.setLevel(level)
