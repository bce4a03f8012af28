"""What pages are built from: the sidebar and the page guard, the text inputs, the tour, the
share button, the panels and the token view's component. Streamlit, drawing, session, engine."""
