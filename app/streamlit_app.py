"""HAM Lab, the teaching app: `streamlit run app/server.py` (which serves this script).

Four pages share one text and one threshold (kept in the session: app.session.state): Read (token view,
thresholds, memory-vs-quality chart), Step through, Recall lab, How it works; Learning to look up
trains (or replays) a tiny model of its own; a guided tour
(app.widgets.tour) walks through them.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:             # `streamlit run` puts app/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.engine import warmup  # noqa: E402
from app.session import state  # noqa: E402
from app.widgets import page as page_parts, share, tour  # noqa: E402

st.set_page_config(page_title="HAM Lab", page_icon="🧠", layout="wide")   # an emoji: a material icon is fetched from a CDN

PAGES = ROOT / "app" / "views"   # not "pages/": that name also turns on the old auto-navigation
# Each page by its name, the name its own address uses (/step, /recall, /how). The Read page is
# the default, served at the root; Streamlit reserves no address for a default page, so /read
# would say "Page not found": a hidden page there sends the visitor to the root, link kept.
VIEWS = {
    "read": st.Page(str(PAGES / "read.py"), title="Read a text", icon=":material/menu_book:", default=True,
                    url_path="read-a-text"),
    "step": st.Page(str(PAGES / "step.py"), title="Step through", icon=":material/play_circle:", url_path="step"),
    "recall": st.Page(str(PAGES / "recall.py"), title="Recall lab", icon=":material/key:", url_path="recall"),
    "lookups": st.Page(str(PAGES / "lookups.py"), title="Learning to look up", icon=":material/school:",
                       url_path="lookups"),
    "how": st.Page(str(PAGES / "how.py"), title="How it works", icon=":material/settings:", url_path="how"),
    "architectures": st.Page(str(PAGES / "architectures.py"), title="Architectures", icon=":material/compare:",
                             url_path="architectures"),
}


def _to_read_page() -> None:
    st.switch_page(VIEWS["read"], query_params=st.query_params.to_dict())


page = st.navigation([*VIEWS.values(), st.Page(_to_read_page, title="Read a text", url_path="read",
                                               visibility="hidden")])
name = next((n for n, p in VIEWS.items() if p is page), None)
if name is None:
    page.run()             # the /read alias: straight to the root
state.init_state()
tour.follow(VIEWS, name)   # a tour step may open another page
page_parts.guard(tour.card)    # the offer sits at the top of the sidebar; a step's card is fixed over the page
page_parts.sidebar(name)   # guarded inside, so a fault shows in the sidebar
with st.sidebar:
    st.button("Guided tour", key="w_tour_restart", icon=":material/tour:", on_click=tour.enter, args=(0,),
              help=f"{len(tour.STEPS)} short steps through what the app shows; each sets the view it talks about.")
    share.copy_link_button()
page_parts.guard(page.run)    # each page guards its own body; this catches what escapes (its module code)
warmup.painted()          # the model may load now (app.engine.warmup)
