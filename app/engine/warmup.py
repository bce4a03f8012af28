"""The app's head start: what the first visitor would otherwise wait for, done in the background
(app/server.py runs `warm` in a thread as the server starts).

Two steps. At once, while the browser is still starting: the Read page's modules (Streamlit,
plotly, pandas; no torch: the server names them) and the default preset's shipped first view
(app.engine.shipped) into the shared store, so the first page's run only draws. Then, once a page has been drawn or nobody has
asked for one for a few seconds, torch and the models: a preset's first view needs neither, and
on a 2-core laptop that work, done at the same time, would hold back the paint it no longer serves.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("ham_lab")

IDLE_START_S = 5.0           # with no visitor by then, warm up anyway
# After the first page's run, the browser still draws what it was sent (seconds on a busy laptop)
# and the server still sends it; importing torch holds Python's lock for long stretches, so it
# waits this long more.
AFTER_PAINT_S = 3.0
_PAINTED = threading.Event()


def painted() -> None:
    """A page has been drawn (streamlit_app.py calls this at the end of every run)."""
    _PAINTED.set()


def first_view() -> None:
    """The default preset's results: shipped, so without torch (a model without shipped results
    computes them, which the first page would do anyway)."""
    from app.engine import curves, models, results, shipped
    from app.settings.presets import DEFAULT_PRESET, PRESETS

    bundle = models.get_bundle()
    entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
    for tau in shipped.VIEW_TAUS:
        results.result_for(bundle, entry, results.grid_taus(bundle, tau))
    curves.shipped_sweep(bundle, entry)


def warm(wait_s: float = IDLE_START_S, after_paint_s: float = AFTER_PAINT_S,
         preload: Callable[[], None] = lambda: None) -> None:
    """`preload()` (the first page's imports), the first view, then torch and the models. Best
    effort: a failure here is only logged, and the page reports it when it asks for the same
    thing itself."""
    # Calls outside a session are fine for the caches used here; Streamlit would warn once per
    # call that there is no session, which is noise in the console.
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        preload()
        first_view()
        if _PAINTED.wait(wait_s):
            time.sleep(after_paint_s)
        from app.engine import models, results
        from app.settings import DEFAULT_TAU
        from app.settings.presets import DEFAULT_PRESET, PRESETS

        bundle = models.get_bundle()
        bundle.model                                  # imports torch and loads the weights
        entry = results.text_entry(bundle, PRESETS[DEFAULT_PRESET])
        # One forward of the default view: its q and k go to the store, so a click on another
        # token of the first view (its reads) does not wait for a forward.
        results.computed_result(bundle, entry, results.grid_taus(bundle, DEFAULT_TAU))
        models.get_recall_bundle()
    except Exception:  # noqa: BLE001
        log.warning("warming up the app failed; pages will load what they need", exc_info=True)
    finally:
        quiet.setLevel(level)
