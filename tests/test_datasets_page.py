"""The Datasets page: summary, clip browser and motion views on a tiny manifest dataset."""
import pytest

from apptest_helpers import page_app
from fixtures_clips import make_clip_manifest


@pytest.fixture
def tiny_manifest(tmp_path, monkeypatch):
    path = make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=3, size=32, frames=6)
    monkeypatch.setenv("MER_ROOT_MANIFEST", str(path.parent))
    return path


BROWSE, MOTION = "Browse clips", "Motion & magnification"


def test_datasets_page_renders_summary_browser_and_motion(tiny_manifest):
    at = page_app("datasets", dataset="manifest")
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["clips"] == "6" and labels["subjects"] == "2"
    assert any("Dataset check" in md.value for md in at.markdown)
    # the tabs are lazy: a first visit draws the summary only, not the flow and magnification
    assert len(at.get("plotly_chart")) == 2
    assert not [s for s in at.selectbox if s.label == "optical flow"]
    motion = page_app("datasets", dataset="manifest", tab=MOTION)
    assert not motion.exception, motion.exception
    # onset, apex, diff, flow x3, evm x3
    assert len(motion.get("plotly_chart")) >= 9
    at = page_app("datasets", dataset="manifest", tab=BROWSE)
    frame = [s for s in at.select_slider if s.label == "frame"]
    assert frame, "the frame slider"
    # the slider's current value names the marker it sits on (it opens on the apex)
    assert "apex" in frame[0].format_func(frame[0].value)


def test_compared_evm_differences_share_one_colour_scale(tiny_manifest):
    at = page_app("datasets", dataset="manifest", tab=MOTION)
    import json

    scales = []
    for c in at.get("plotly_chart"):
        fig = json.loads(c.proto.spec)
        title = (fig["layout"].get("title") or {}).get("text", "")
        if title.startswith("apex − onset, "):
            scales.append((fig["data"][0]["zmin"], fig["data"][0]["zmax"]))
    assert len(scales) == 2 and scales[0] == scales[1], scales


def test_synthetic_opens_on_the_showcase_clip(isolated_cache):
    from pathlib import Path

    from mer_core.datasets.synthetic import showcase_clips

    shared = Path(__file__).resolve().parent.parent / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():
        (isolated_cache / "datasets").symlink_to(shared, target_is_directory=True)
    want = "synthetic/" + showcase_clips()["positive"]
    at = page_app("datasets", dataset="synthetic", tab=BROWSE)
    assert not at.exception, at.exception
    assert [s.value for s in at.selectbox if s.label == "clip"] == [want]
    at = page_app("datasets", dataset="synthetic", tab=MOTION)
    assert [s.value for s in at.selectbox if s.label == "sample"] == [want]


def test_licensed_dataset_without_root_explains_how_to_set_it():
    at = page_app("datasets", dataset="casme2")
    assert not at.exception
    text = " ".join(i.value for i in at.info) + " ".join(e.label for e in at.expander)
    assert "MER_ROOT_CASME2" in text or "no root configured" in text


def test_the_generate_tab_writes_a_variant_that_its_printed_command_indexes(isolated_cache):
    from pathlib import Path

    from mer_core.datasets.registry import index_dataset

    at = page_app("datasets", dataset="synthetic", tab="Generate")
    wanted = {"subjects": 3, "clips_per_subject": 4, "size": 32, "frames": 8, "seed": 5}
    for box in at.number_input:
        if box.label in wanted:
            box.set_value(wanted[box.label])
    at = next(b for b in at.button if b.label == "Generate").click().run(timeout=120)
    assert not at.exception and not at.error, (at.exception, at.error)
    [written] = [s.value for s in at.success]
    manifest = Path(written.removeprefix("written: "))
    assert manifest.is_file() and manifest.is_relative_to(isolated_cache)
    [command] = [c.value for c in at.code]
    assert command.startswith("mer run --dataset synthetic ")
    options = {}
    for pair in command.split("--dataset-option ")[1:]:
        key, value = pair.strip().split("=")
        options[key] = float(value) if "." in value else int(value)
    assert {k: options[k] for k in wanted} == wanted
    table = index_dataset("synthetic", **options)  # the command's options name the set the tab wrote
    assert table["subject"].nunique() == 3 and Path(table.iloc[0]["frames"][0]).is_relative_to(manifest.parent)
