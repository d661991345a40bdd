"""Overview: an animated magnified showcase clip, the Lesson in the guide, the viewer's theme respected."""
from __future__ import annotations

import tomllib
from pathlib import Path

from apptest_helpers import page_app

REPO = Path(__file__).resolve().parent.parent


def test_overview_shows_the_magnified_showcase_clip(isolated_cache):
    shared = REPO / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():
        (isolated_cache / "datasets").symlink_to(shared, target_is_directory=True)
    at = page_app("home")
    assert not at.exception, at.exception
    import json

    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    animated = [f for f in figs if f.get("frames")]
    assert animated and "magnified" in animated[0]["layout"]["title"]["text"]


def test_the_theme_follows_the_viewer():
    theme = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["theme"]
    assert "base" not in theme  # a forced base overrides the viewer's light/dark choice
    assert not {"backgroundColor", "textColor", "secondaryBackgroundColor"} & set(theme)
