"""MER Bench library: datasets, preprocessing, models, honest LOSO training,
metrics, run store and explanations for micro-expression recognition.

The library never imports Streamlit; the dashboard is a thin reader on top.
"""

__version__ = "0.1.0"
