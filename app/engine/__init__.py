"""The engine: the only part of the app that imports ham_core or torch (models, results and
curves, the shared store, the step-through, the recall lab, the shipped results, warm-up).
Nothing here imports Streamlit's pages, widgets, session or drawing."""
