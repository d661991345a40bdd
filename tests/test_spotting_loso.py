"""Spotting under LOSO: parameters chosen on training subjects only, stored runs, resume, `mer spot`."""
from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
import pandas as pd
import pytest

from mer_core.cli import main
from mer_core.datasets._common import Problems
from mer_core.spotting import loso, spotters
from mer_core.spotting.features import FLOW_DIMS, compute
from mer_core.spotting.tables import LongDataset, validate_intervals, video_table
from mer_core.store.db import RunStore

TINY_LONG = ["--dataset-option", "subjects=2", "--dataset-option", "videos_per_subject=1",
             "--dataset-option", "min_seconds=4", "--dataset-option", "max_seconds=4",
             "--dataset-option", "fps=20", "--dataset-option", "size=48", "--dataset-option", "max_micro=2",
             "--dataset-option", "max_macro=1"]


def fake_dataset(subjects: int = 3, videos: int = 1, n: int = 240) -> LongDataset:
    """Videos with one micro (apex 60) and one macro (apex 160) interval each; no file behind them."""
    rows, iv = [], []
    for s in range(subjects):
        for v in range(videos):
            vid = f"p{s}/v{v}"
            rows.append(dict(video=vid, dataset="fake", subject=f"fake:p{s}", name=f"v{v}", path=f"/none/{vid}",
                             source="video", n_frames=n, fps=30.0))
            iv += [dict(video=vid, onset=55, apex=60, offset=66, type="micro", label="negative"),
                   dict(video=vid, onset=140, apex=160, offset=190, type="macro", label="positive")]
    table = video_table(rows)
    return LongDataset("fake", table, validate_intervals(iv, table, Problems()))


@pytest.fixture
def fake(monkeypatch):
    """A fake dataset whose features are noise with a bump at each apex (no video is decoded); a small grid."""
    ds = fake_dataset()
    monkeypatch.setattr(spotters, "THRESHOLD_QUANTILES", np.linspace(0.5, 0.99, 6))
    monkeypatch.setattr(spotters, "DISTANCE_FACTORS", (1.0, 2.0))
    monkeypatch.setattr(spotters.LearnedSpotter, "MAX_ITER", 10)

    def features(video, kind):
        rng = np.random.default_rng(zlib.crc32(video["video"].encode()))
        n = int(video["n_frames"])
        t = np.arange(n)
        bump = {k: np.exp(-0.5 * ((t - a) / 3.0) ** 2) for k, a in (("micro", 60), ("macro", 160))}
        if kind == "curves":
            return {k: (rng.random(n) * 0.6 + 2 * bump[k]).astype(np.float32) for k in ("micro", "macro")}
        flow = rng.random((n, FLOW_DIMS)).astype(np.float32)
        flow[:, 0] += 3 * bump["micro"]
        flow[:, 16] += 3 * bump["macro"]
        return {"flow": flow}

    monkeypatch.setattr(spotters, "video_features", features)
    return ds


@pytest.mark.parametrize("spotter", ["motion_curve", "learned"])
def test_parameters_are_chosen_on_the_training_subjects_only(fake, monkeypatch, spotter):
    seen: list[tuple[str, set[str]]] = []
    real_choose, real_fit = loso.choose_params, spotters.LearnedSpotter.fit

    def choose(scores, truth, fps):
        seen.append(("choose", set(scores) | set(truth["video"])))
        return real_choose(scores, truth, fps)

    def fit(self, videos, truth, *, seed=0):
        seen.append(("fit", {v["video"] for v in videos} | set(truth["video"])))
        return real_fit(self, videos, truth, seed=seed)

    monkeypatch.setattr(loso, "choose_params", choose)
    monkeypatch.setattr(spotters.LearnedSpotter, "fit", fit)
    for fold in loso.spot_folds(fake):
        seen.clear()
        result = loso.run_fold(fake, fold, spotter)
        test = set(fold.test)
        assert test == set(fake.videos.loc[fake.videos["subject"] == fold.subject, "video"])
        assert seen and all(not (videos & test) for _, videos in seen), (fold.subject, seen)
        chosen = [videos for what, videos in seen if what == "choose"]
        assert chosen == [set(fold.train)]  # every training video, and nothing else
        assert set(result.predicted["video"]) <= test and set(result.scores) == test


def test_the_chosen_threshold_ignores_whatever_the_test_subject_holds(fake, monkeypatch):
    fold = loso.spot_folds(fake)[0]
    before = loso.run_fold(fake, fold, "motion_curve").params
    real = spotters.video_features
    monkeypatch.setattr(spotters, "video_features", lambda v, k: {key: a * (50.0 if v["video"] in fold.test else 1.0)
                                                                  for key, a in real(v, k).items()})
    altered = LongDataset(fake.name, fake.videos, fake.intervals[~fake.intervals["video"].isin(fold.test)])
    assert loso.run_fold(altered, fold, "motion_curve").params == before


def test_a_stopped_run_keeps_its_folds_and_resumes_with_the_rest(fake, monkeypatch):
    calls: list[int] = []
    real = loso.run_fold
    monkeypatch.setattr(loso, "run_fold", lambda ds, fold, *a, **k: calls.append(fold.index) or real(ds, fold, *a, **k))
    state = {"stop": False}

    def progress(e):
        if e["event"] == "fold_done" and e["done"] == 1:
            state["stop"] = True

    config = loso.SpotConfig(dataset="long-manifest", spotter="motion_curve")
    with RunStore() as store:
        rid = loso.run_spotting(config, store=store, dataset=fake, progress=progress, should_stop=lambda: state["stop"])
        run = store.get_spot_run(rid)
        assert run["status"] == "cancelled" and store.spot_done_folds(rid) == {0}
        kept = store.spot_folds(rid).set_index("fold_index")["finished"].to_dict()
        stored = store.spot_intervals(rid)
        assert calls == [0]
        loso.run_spotting(config, store=store, dataset=fake, run_id=rid)
        assert calls == [0, 1, 2]
        run = store.get_spot_run(rid)
        assert run["status"] == "done" and store.spot_done_folds(rid) == {0, 1, 2}
        assert store.spot_folds(rid).set_index("fold_index").loc[0, "finished"] == kept[0]
        again = store.spot_intervals(rid)
        pd.testing.assert_frame_equal(again[again["fold"] == 0].reset_index(drop=True), stored.reset_index(drop=True))
        assert [c["fold"] for c in run["summary"]["chosen"]] == [0, 1, 2]
        assert all(c["micro"]["threshold"] is not None for c in run["summary"]["chosen"])
        with pytest.raises(Exception, match="other settings"):
            loso.run_spotting(loso.SpotConfig(dataset="long-manifest", spotter="learned"), store=store, dataset=fake,
                              run_id=rid)


def test_features_of_a_long_recording_are_computed_with_bounded_memory():
    """Frames are streamed through: the memory held does not grow with the video's length."""
    def frames(n):
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (64, 64), dtype=np.uint8)
        for i in range(n):
            yield i, base

    peaks = []
    for n in (120, 480):
        tracemalloc.start()
        out = compute(frames(n), 10.0, "curves")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out["micro"].shape == out["macro"].shape == (n,)
    assert peaks[1] < 1.3 * peaks[0], peaks  # 4x the frames: no 4x the memory (a frame is 16 KB as floats)


def test_mer_spot_end_to_end_with_spot_then_recognise(tmp_path, capsys):
    from fixtures_clips import make_clip_manifest, tiny_config
    from mer_core.training.engine import run_experiment

    rec = run_experiment(tiny_config(make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3),
                                     epochs=1, class_set="composite3"))
    assert main(["spot", *TINY_LONG, "--recognise", rec, "--json"]) == 0
    out = capsys.readouterr().out
    import json

    shown = json.loads(out)
    s = shown["summary"]
    assert shown["status"] == "done" and shown["n_folds"] == 2
    assert set(s["scores"]) == {"overall", "micro", "macro"} and s["n_truth"] > 0
    rec_fig = s["recognition"]
    assert rec_fig["run"] == rec and set(rec_fig["classes"]) == {"negative", "positive", "surprise"}
    with RunStore() as store:
        pred = store.spot_intervals(shown["id"], "predicted")
        labelled = pred[pred["pred_label"] != ""]
        assert len(labelled) == len(pred) - rec_fig["no_input"]
        assert labelled["pred_label"].isin(["negative", "positive", "surprise"]).all()
    f1, uf1 = rec_fig["all"]["spot_f1"], rec_fig["all"]["recognition_uf1"]
    if f1 is not None and uf1 is not None:
        assert rec_fig["all"]["strs"] == pytest.approx(f1 * uf1)
    assert main(["spot", "--list"]) == 0
    assert shown["id"] in capsys.readouterr().out


def test_mer_spot_as_a_background_job(capsys):
    from mer_core.jobs import queue
    from mer_core.jobs.spot_job import SpotRunner
    from mer_core.jobs.worker import run_job

    with RunStore() as store:
        job_id = queue.submit_spotting(loso.SpotConfig(dataset_options=dict(
            subjects=2, videos_per_subject=1, min_seconds=4, max_seconds=4, fps=20, size=48)), store=store,
            start=False)
        job = queue.get_job(store, job_id)
        assert job["kind"] == "spotting" and job["model"] == "spotter motion_curve"
        assert run_job(job_id, store=store, kick_next=False, runner_cls=SpotRunner) == 0
        job = queue.get_job(store, job_id)
        assert job["status"] == "done" and job["folds_done"] == 2
        assert store.get_spot_run(job["run_id"])["status"] == "done"
    assert main(["spot", "--show", job["run_id"]]) == 0
    assert "chosen on the training subjects" in capsys.readouterr().out
    # the same spotter on one video of one's own, with the thresholds the run's folds chose
    from mer_core.spotting.apply import spot_video

    with RunStore() as store:
        store_videos = store.get_spot_run(job["run_id"])["videos"]
        chosen = store.spot_folds(job["run_id"])["params"].tolist()
    video = store_videos[0]
    found = spot_video(video["path"], run_id=job["run_id"], cropped=True)
    assert found["n_frames"] == video["n_frames"] and set(found["intervals"]["type"]) <= {"micro", "macro"}
    thresholds = sorted(c["micro"]["threshold"] for c in chosen)
    assert found["params"]["micro"]["threshold"] == pytest.approx(float(np.median(thresholds)))
    assert (found["intervals"]["score"] >= found["intervals"]["type"].map(
        {k: v["threshold"] for k, v in found["params"].items()})).all()
