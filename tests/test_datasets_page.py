"""The Datasets page: summary, clip browser and motion views on a tiny manifest dataset."""
import pytest

from apptest_helpers import page_app
from fixtures_clips import make_clip_manifest


@pytest.fixture
def tiny_manifest(tmp_path, monkeypatch):
    path = make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=3, size=32, frames=6)
    monkeypatch.setenv("MER_ROOT_MANIFEST", str(path.parent))
    return path


def test_datasets_page_renders_summary_browser_and_motion(tiny_manifest):
    at = page_app("datasets", dataset="manifest")
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["clips"] == "6" and labels["subjects"] == "2"
    assert any("Dataset check" in md.value for md in at.markdown)
    charts = at.get("plotly_chart")
    # summary (2) + clip browser (animation, frame, difference) + motion (onset, apex, diff, flow x3, evm x4)
    assert len(charts) >= 10
    assert [s for s in at.slider if s.label == "frame"]


def test_licensed_dataset_without_root_explains_how_to_set_it():
    at = page_app("datasets", dataset="casme2")
    assert not at.exception
    text = " ".join(i.value for i in at.info) + " ".join(e.label for e in at.expander)
    assert "MER_ROOT_CASME2" in text or "no root configured" in text
