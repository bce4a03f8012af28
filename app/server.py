"""HAM Lab's server: `python -m streamlit run app/server.py`.

It serves the pages of app/streamlit_app.py unchanged. What it adds is a start-up step: while
the server starts and the first browser loads the page, a background thread imports the model
code, loads the models and reads the default preset at the default threshold into the shared
result store, so the first visitor does not wait for any of it. (`streamlit run
app/streamlit_app.py` serves the same app, only without that head start.)
"""
from __future__ import annotations

import sys
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:           # `streamlit run` puts app/ on the path, not the project
    sys.path.insert(0, str(ROOT))

from app.engine.warmup import warm  # noqa: E402


def preload() -> None:
    """The Read page's modules (Streamlit, plotly, pandas; no torch), imported before anyone asks."""
    import streamlit.emojis  # noqa: F401 - what st.set_page_config reads to check the page icon

    from app.drawing import charts, viewdata  # noqa: F401
    from app.engine import curves, models, results, shipped  # noqa: F401
    from app.session import text_store  # noqa: F401
    from app.widgets import chart_view, clickview, inputs, panels, share, tour  # noqa: F401


@asynccontextmanager
async def lifespan(_app):
    threading.Thread(target=warm, kwargs=dict(preload=preload), name="ham-lab-warm", daemon=True).start()
    yield


app = st.App("streamlit_app.py", lifespan=lifespan)
