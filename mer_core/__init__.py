"""MER Bench library: datasets, preprocessing, models, honest LOSO training,
metrics, run store and explanations for micro-expression recognition.

Layers, each importing only the ones below it (tests/test_layers.py holds the
order): errors/paths/config/keyvalue/parallel -> store -> datasets -> preprocess
-> models -> evaluation -> training -> explain -> jobs -> cli (and dashboard).

The library never imports Streamlit; the dashboard is a thin reader on top.
"""

__version__ = "0.1.0"
