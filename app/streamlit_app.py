"""HAM Lab, the teaching app: `streamlit run app/server.py` (which serves this script).

Four pages share one text and one threshold (kept in st.session_state): Read (token view,
thresholds, memory-vs-quality chart), Step through, Recall lab, How it works; a guided tour
(app.tour) walks through them.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:             # `streamlit run` puts app/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import common, share, tour, warmup  # noqa: E402

st.set_page_config(page_title="HAM Lab", page_icon="🧠", layout="wide")   # an emoji: a material icon is fetched from a CDN

PAGES = ROOT / "app" / "views"   # not "pages/": that name also turns on the old auto-navigation
pages = [
    st.Page(str(PAGES / "read.py"), title="Read a text", icon=":material/menu_book:", default=True, url_path="read"),
    st.Page(str(PAGES / "step.py"), title="Step through", icon=":material/play_circle:", url_path="step"),
    st.Page(str(PAGES / "recall.py"), title="Recall lab", icon=":material/key:", url_path="recall"),
    st.Page(str(PAGES / "how.py"), title="How it works", icon=":material/settings:", url_path="how"),
    st.Page(str(PAGES / "architectures.py"), title="Architectures", icon=":material/compare:", url_path="architectures"),
]
page = st.navigation(pages)
common.init_state()
tour.follow({p.url_path: p for p in pages}, page.url_path)   # a tour step may open another page
common.sidebar(page.url_path)   # guarded inside, so a fault shows in the sidebar
with st.sidebar:
    st.button("Guided tour", key="w_tour_restart", icon=":material/tour:", on_click=tour.enter, args=(0,),
              help=f"{len(tour.STEPS)} short steps through what the app shows; each sets the view it talks about.")
    share.copy_link_button()
common.guard(tour.card)
common.guard(page.run)    # each page guards its own body; this catches what escapes (its module code)
warmup.painted()          # the model may load now (app.warmup)
