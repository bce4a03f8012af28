"""HAM Lab, the teaching app: `streamlit run app/streamlit_app.py`.

Four pages share one text and one threshold (kept in st.session_state): Read (token view,
thresholds, memory-vs-quality chart), Step through, Recall lab, How it works.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:             # `streamlit run` puts app/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import common  # noqa: E402

st.set_page_config(page_title="HAM Lab", page_icon=":material/memory:", layout="wide")

PAGES = ROOT / "app" / "views"   # not "pages/": that name also turns on the old auto-navigation
pages = [
    st.Page(str(PAGES / "read.py"), title="Read a text", icon=":material/menu_book:", default=True, url_path="read"),
    st.Page(str(PAGES / "step.py"), title="Step through", icon=":material/play_circle:", url_path="step"),
    st.Page(str(PAGES / "recall.py"), title="Recall lab", icon=":material/key:", url_path="recall"),
    st.Page(str(PAGES / "how.py"), title="How it works", icon=":material/settings:", url_path="how"),
]
page = st.navigation(pages)
common.init_state()
common.sidebar(page.url_path)   # guarded inside, so a fault shows in the sidebar
common.guard(page.run)    # each page guards its own body; this catches what escapes (its module code)
