"""Pure drawing: Plotly figures, colour bins, the token view's HTML and the layer diagram, as
plain functions of numbers and results. Imports neither Streamlit, torch nor ham_core."""
