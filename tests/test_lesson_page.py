"""The Lesson page: every step draws its picture, on the showcase clip, with terms from one glossary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apptest_helpers import page_app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def synthetic_set(isolated_cache):
    """The default synthetic set `make test` generated, shared instead of generated again per test."""
    shared = REPO / "cache" / "datasets"
    if (shared / "synthetic" / "manifest.csv").exists():
        (isolated_cache / "datasets").symlink_to(shared, target_is_directory=True)
    return isolated_cache


def test_lesson_draws_every_step_on_the_showcase_clip(synthetic_set, monkeypatch):
    from dashboard.views.lesson import STEPS
    from mer_core.datasets import frames_check
    from mer_core.datasets.synthetic import showcase_clips

    decoded = []  # the Lesson needs the table only: checking the set's frames would double its first visit
    monkeypatch.setattr(frames_check, "check_frames", lambda *a, **k: decoded.append(1) or 0)
    at = page_app("lesson")
    assert not at.exception, at.exception
    assert decoded == []
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert headings == [f"#### {s}" for s in STEPS]
    assert len(at.get("plotly_chart")) >= 12
    assert any(showcase_clips()["positive"] in c.value for c in at.caption)
    # one numbering: every player names the clip's onset, apex and offset alike (the magnified one is cut from
    # the onset, and once numbered it from 0), and the page says once how frames are counted
    named = {_marks(chart) for chart in at.get("plotly_chart")} - {()}
    assert len(named) == 1 and len(next(iter(named))) == 3, named
    assert sum("Frames are numbered as in the clip's file, from 0" in c.value for c in at.caption) == 1
    # no run stored: the last step says how to get one
    assert any("mer run --dataset synthetic" in i.value for i in at.info)


def _marks(chart) -> tuple[str, ...]:
    """The onset/apex/offset labels a clip player draws above its slider ("<b>onset</b> 4", ...)."""
    import json
    import re

    layout = json.loads(chart.proto.spec).get("layout", {})
    return tuple(sorted(a["text"] for a in layout.get("annotations", [])
                        if re.fullmatch(r"<b>(onset|apex|offset)</b> \d+", str(a.get("text", "")))))


def test_lesson_names_the_moved_action_units_in_plain_words(synthetic_set):
    at = page_app("lesson")
    text = " ".join(m.value for m in at.markdown)
    assert "lip corner puller" in text and "a smile" in text  # the positive showcase clip moves AU12


def test_the_magnified_difference_shares_the_original_scale_and_is_livelier(synthetic_set):
    """Original and magnified apex-onset on one colour scale, the magnified one visibly stronger in the AU region."""
    from dashboard import plots_clip
    from dashboard.views.lesson import LESSON_EVM
    from mer_core.datasets import index_dataset
    from mer_core.datasets.synthetic import load_masks, showcase_clips
    from mer_core.config import PreprocessConfig
    from mer_core.preprocess.sample import sample_views
    import cv2

    table = index_dataset("synthetic")
    row = table[table["sample_id"] == "synthetic/" + showcase_clips()["positive"]].iloc[0].to_dict()
    views = sample_views(row, PreprocessConfig(**LESSON_EVM), size=128)
    clip, mag, a = views["clip"], views["magnified_clip"], views["apex_index"]
    au = cv2.resize(load_masks(row["mask_path"])["au"].astype(np.uint8), (128, 128)).astype(bool)
    d0, d1 = np.abs(clip[a] - clip[0]), np.abs(mag[a] - mag[0])
    assert d1[au].mean() > 2 * d0[au].mean()  # livelier where the face moves
    # motion, not noise: the magnified change is concentrated in the moving region
    assert d1[au].mean() > 1.5 * d1[~au].mean()
    bound = plots_clip.shared_bound(d0, d1)
    f0, f1 = plots_clip.signed_image(d0, "a", bound), plots_clip.signed_image(d1, "b", bound)
    assert (f0.data[0].zmin, f0.data[0].zmax) == (f1.data[0].zmin, f1.data[0].zmax)


def test_the_last_step_shows_where_a_stored_loso_run_looked(synthetic_set):
    """With a LOSO run on the set stored, the last step draws the held-out fold's saliency over the face;
    a newer run that kept no fold checkpoints is passed over, not shown as an error."""
    from mer_core.training.engine import run_experiment
    from mer_core.training.experiment import resolve_experiment

    over = {"epochs": 1, "executor": "sequential", "record_oracle": False}
    explained = run_experiment(resolve_experiment("synthetic", "baseline", "cpu", overrides=over))
    bare = run_experiment(resolve_experiment("synthetic", "baseline", "cpu",
                                             overrides={**over, "keep_checkpoints": False}))
    at = page_app("lesson")
    assert not at.exception, at.exception
    assert not any("mer run --dataset synthetic" in i.value for i in at.info)
    [image] = [i for i in at.get("image") if "saliency of run" in str(i.proto)]
    assert f"saliency of run {explained}" in str(image.proto) and bare not in str(image.proto)
    from mer_core.datasets.synthetic import showcase_clips
    from mer_core.store.db import RunStore

    with RunStore() as store:
        pred = store.predictions(explained).set_index("sample_id").loc["synthetic/" + showcase_clips()["positive"]]
        classes = store.get_run(explained)["classes"]
    said = f"true class: {classes[int(pred['y_true'])]} · predicted: {classes[int(pred['y_pred'])]}"
    assert any(m.value.startswith(said) for m in at.markdown), said  # class names, not indices
