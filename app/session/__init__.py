"""One visitor's session: the keys, defaults and typed accessors of st.session_state, the URL's
links and the pasted-text store behind them. No ham_core, no torch."""
