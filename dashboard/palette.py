"""The dashboard's colours, in one place: figures, overlays, status badges and help texts read them here.

A colour that means something (a blink, the true action units, the apex frame)
has one value on every page, and its name for help texts sits beside it, so a
caption can never say "blue" while the picture draws orange.
"""
from __future__ import annotations

# categorical series: classes, folds, runs, models (in this order)
CLASS_COLOURS = ["#2f6fdf", "#e8590c", "#2b8a3e", "#ae3ec9", "#f08c00", "#1098ad", "#c92a2a"]

ACCENT = "#2f6fdf"        # the one highlighted series: measured here, mean over folds, a point estimate
HIGHLIGHT = "#e8590c"     # one fold picked out of many grey ones, beside the ACCENT mean
HIGHLIGHT_NAME = "orange"
MUTED = "#adb5bd"         # reported elsewhere, neutral, reference lines
FAINT = "#ced4da"         # per-fold thin lines behind a mean
DARK = "#495057"          # chance levels and annotations
GOOD = "#2b8a3e"          # correct / true class / better
BAD = "#c92a2a"           # wrong prediction / worse
CLICK_TARGET = "#000"     # invisible click markers (opacity ~0)

# ground-truth regions of synthetic clips (outlines in Plotly figures and on overlay images)
AU = "#2b8a3e"
AU_NAME = "green"
BLINK = "#e8590c"
BLINK_NAME = "orange"
MASK_COLOURS = {"au": AU, "blink": BLINK}

# frames of a micro-expression
ONSET = "#1c83e1"          # Streamlit's "blue", so Markdown text (STREAMLIT_MARKERS) and figures agree
APEX = "#ff4b4b"           # Streamlit's "red"
OFFSET = "#803df5"         # Streamlit's "violet"
MARKER_COLOURS = {"onset": ONSET, "apex": APEX, "offset": OFFSET}
STREAMLIT_MARKERS = {"onset": "blue", "apex": "red", "offset": "violet"}  # the same, in Markdown text

# spotting timelines: what became of each interval (a hit, a true interval missed, a spotted one that is no truth)
SPOT_OUTCOME_COLOURS = {"hit": GOOD, "miss": HIGHLIGHT, "false_alarm": BAD, "ignored": MUTED, "found": "#ae3ec9"}
SPOT_OUTCOME_NAMES = {"hit": "green", "miss": "orange", "false_alarm": "red", "ignored": "grey", "found": "purple"}
SPOT_THRESHOLD = ACCENT   # the threshold a fold chose, drawn across its score curve

FLOW_ARROWS = "#ffd43b"   # optical-flow arrows drawn over a grey face

SOURCE_COLOURS = {"reported in paper": MUTED, "measured here, honest protocol": ACCENT}

# job status badges (Streamlit's named Markdown colours)
STATUS_COLOUR = {"queued": "gray", "running": "blue", "cancelling": "orange", "cancelled": "orange",
                 "failed": "red", "done": "green"}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """'#2b8a3e' -> (43, 138, 62), for images drawn with OpenCV."""
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
