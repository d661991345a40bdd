"""The run-level explanation report: measures per method, cache, job, CLI, paired comparison, Faithfulness tab."""
import json

import numpy as np
import pytest
import torch

from apptest_helpers import page_app
from mer_core.cli import main
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.explain.compare import compare_reports
from mer_core.explain.report import (ReportConfig, chance_verdict, explanation_report, report_path,
                                     report_sentences)
from mer_core.explain.runs import RunExplainer
from mer_core.jobs import queue as jobs
from mer_core.jobs.report_job import ReportRunner
from mer_core.jobs.worker import run_job
from mer_core.store.db import RunStore
from mer_core.store.jobs import EXPLAIN_REPORT
from mer_core.training.engine import run_experiment
from fixtures_clips import cache_at

SMALL = dict(max_samples=4, steps=4, sanity_samples=1)


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    """A tiny synthetic DenseAttention run (ground-truth masks, own attention) in its own cache."""
    root = tmp_path_factory.mktemp("report_cache")
    with cache_at(root):
        cfg = ExperimentConfig.from_dict(dict(
            dataset="synthetic", dataset_options=dict(subjects=3, clips_per_subject=3, size=32, frames=12),
            model="dense_attention", model_options={"block_layers": [2, 2]}, epochs=1, batch_size=8,
            executor="sequential"))
        rid = run_experiment(cfg, run_id="synth-attn")
    return {"root": str(root), "run": rid}


@pytest.fixture
def env(isolated_cache, synth_run, monkeypatch):
    monkeypatch.setenv("MER_CACHE", synth_run["root"])
    return synth_run


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"non-JSON {c}")))


def test_the_report_measures_every_method_and_is_cached_as_strict_json(env):
    rid = env["run"]
    cfg = ReportConfig(methods=("saliency", "gradcam", "attention"), **SMALL)
    assert explanation_report(rid, cfg, compute=False) is None
    seen = []
    report = explanation_report(rid, cfg, progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (5, 5) and len(report["sample_ids"]) == 4  # 4 clips + 1 randomisation clip
    assert report["methods"] == ["saliency", "gradcam", "attention"]
    for method, s in report["summary"].items():
        m = s["measures"]
        for name in ("deletion_auc", "insertion_auc", "morf_auc", "lerf_auc", "infidelity", "roc_auc", "au_share"):
            assert name in m, (method, name)
        d = m["deletion_auc"]
        assert d["low"] <= d["mean"] <= d["high"] and d["chance"] is not None
        assert m["roc_auc"]["chance"] == 0.5
        assert s["sanity"]["n"] == 1
        assert ("attention_rank_corr" in m) == (method != "attention")
    path = report_path(RunExplainer(rid), cfg, report["sample_ids"])
    assert _strict(path.read_text())["run"] == rid
    assert explanation_report(rid, cfg, compute=False) == report


def test_the_report_job_runs_through_the_queue_and_caches(env, monkeypatch):
    rid = env["run"]
    settings = dict(methods=["saliency"], max_samples=3, steps=3, sanity_samples=0, road=False)
    with RunStore() as store:
        job_id = jobs.submit_explain_report(rid, settings, store=store, start=False)
        job = jobs.get_job(store, job_id)
        assert job["kind"] == EXPLAIN_REPORT and "job" not in job["config"] and job["run_id"] == rid
        launched = []
        monkeypatch.setattr(jobs, "_launch", lambda jid, *a, **k: launched.append((jid, k)) or _Proc())
        jobs.kick(store)
        assert launched == [(job_id, {"module": jobs.WORKERS[EXPLAIN_REPORT]})]  # the report worker, not the LOSO one
        with store.tx() as c:  # back to queued, then run here as the worker process would
            c.execute("UPDATE jobs SET status='queued', pid=NULL WHERE id=?", (job_id,))
        assert run_job(job_id, store=store, kick_next=False, runner_cls=ReportRunner) == 0
        done = jobs.get_job(store, job_id)
    assert done["status"] == "done" and done["progress"] == 1.0 and "3 clips" in done["message"]
    assert explanation_report(rid, ReportConfig.from_dict(settings), compute=False) is not None
    with pytest.raises(MerError, match="unknown method"):
        jobs.submit_explain_report(rid, {"methods": ["guesswork"]}, start=False)


class _Proc:
    pid = 2**22 + 9

    def poll(self):
        return None


def test_cli_explain_report(env, capsys):
    code = main(["explain-report", env["run"], "--methods", "saliency", "--max-samples", "2", "--steps", "2",
                 "--sanity-samples", "0", "--no-road", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    got = json.loads(out)
    assert list(got["summary"]) == ["saliency"] and len(got["sample_ids"]) == 2
    assert main(["explain-report", "ghost-run"]) == 2


def _fake(run, model, values, measure="au_share", method="integrated_gradients"):
    return {"run": run, "model": model, "methods": [method],
            "rows": [{"sample_id": f"s{i}", "method": method, measure: v} for i, v in enumerate(values)]}


def test_paired_comparison_of_two_runs_reports():
    a = _fake("r1", "MFDAN", [0.6, 0.7, 0.65, 0.8, 0.75, 0.7])
    b = _fake("r2", "DenseAttention", [0.3, 0.35, 0.3, 0.4, 0.45, 0.3])
    out = compare_reports(a, b, measure="au_share", method="integrated_gradients")
    assert out["n_clips"] == 6 and out["delta"] > 0
    assert out["p_value"] == pytest.approx(2 / 64)  # exact sign-flip test: only the all-+ and all-- patterns
    assert out["sentence"].startswith("MFDAN's Integrated Gradients localise the true AUs better than "
                                      "DenseAttention's") and "p = 0.0312" in out["sentence"]
    flipped = compare_reports(b, a, measure="au_share")
    assert flipped["sentence"].startswith("MFDAN's Integrated Gradients")
    worse_deletion = compare_reports(_fake("r1", "A", [0.5, 0.6], "deletion_auc"),
                                     _fake("r2", "B", [0.2, 0.3], "deletion_auc"), measure="deletion_auc")
    assert worse_deletion["sentence"].startswith("B's Integrated Gradients do better on deletion area")
    assert "no evidence" in worse_deletion["sentence"]  # 2 clips cannot reach p < 0.05
    with pytest.raises(MerError, match="share no clip"):
        compare_reports(a, _fake("r3", "X", []))
    balanced = compare_reports(_fake("r1", "A", [0.6, 0.4]), _fake("r2", "B", [0.4, 0.6]))
    assert balanced["delta"] == 0 and balanced["p_value"] == 1.0  # +d and -d: every pattern reaches |mean| 0
    assert "no evidence" in balanced["sentence"]
    many = compare_reports(_fake("r1", "A", [0.5 + 0.01 * i for i in range(20)]), _fake("r2", "B", [0.4] * 20))
    assert many["p_value"] == pytest.approx(1 / 5001)  # 2^20 > 5000 patterns: Monte Carlo, (hits + 1) / (n + 1)


def test_sentences_name_a_method_below_chance_and_one_failing_the_sanity_check():
    below = {"mean": 0.1, "low": 0.05, "high": 0.15, "chance": 0.2, "n": 8}
    assert chance_verdict("au_share", below) == "below" and chance_verdict("deletion_auc", below) == "above"
    assert chance_verdict("au_share", {**below, "high": 0.3}) == "at"
    report = {"model": "DenseAttention", "summary": {
        "gradcam": {"measures": {"au_share": below}, "sanity": None},
        "attention": {"measures": {}, "sanity": {"flagged": 2, "n": 3, "spearman": 0.9, "ssim": 0.8}}}}
    s = report_sentences(report)
    assert len(s) == 2
    assert s[0].startswith("DenseAttention's Grad-CAM scores below chance on mass on true AUs")
    assert s[1].startswith("DenseAttention's attention fails the randomisation check on 2 of 3 clips")


def test_faithfulness_tab_offers_the_job_then_renders_the_cached_report(env, monkeypatch):
    from dashboard.views.explain import K_VIEW
    from dashboard.views.explain_faithfulness import K_METHODS, K_SAMPLES, K_STEPS

    rid = env["run"]
    monkeypatch.setattr(jobs, "_launch", lambda jid, *a, **k: _Proc())
    at = page_app("explain", run=rid)
    at.session_state[K_VIEW] = "Faithfulness"
    at.session_state[K_METHODS] = ["saliency"]
    at.session_state[K_SAMPLES] = 2
    at.session_state[K_STEPS] = 2
    at.run()
    assert not at.exception, at.exception
    button = [b for b in at.button if b.label == "Compute the report in the background"]
    assert len(button) == 1
    button[0].click()
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        queued = jobs.list_jobs(store)
    assert (queued["run_id"] == rid).any() and (queued["protocol"] == "explanation report").any()
    explanation_report(rid, ReportConfig(methods=("saliency",), max_samples=2, steps=2))  # what the job would do
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["method"]) == {"Saliency"} and "deletion area" in set(table["measure"])
    assert any("what the measures mean" in e.label for e in at.expander)


# --- Explain items: Grad-CAM layer, overlays, pointing, shared scales, report comparison, report jobs ------
class EmptyCoarse(torch.nn.Module):
    """Grad-CAM on 'coarse' is all zero (its evidence is negative everywhere); on 'fine' it is not."""

    def __init__(self) -> None:
        super().__init__()
        self.fine = torch.nn.Conv2d(1, 1, 1, bias=False)
        self.coarse = torch.nn.MaxPool2d(2)
        with torch.no_grad():
            self.fine.weight.fill_(1.0)

    def forward(self, x):
        c = self.coarse(torch.relu(self.fine(x))) + 1  # always positive
        s = c.flatten(1).sum(1)
        return torch.stack([-s, s], -1)

    def gradcam_layers(self):
        return {"fine": self.fine, "coarse": self.coarse}


def test_the_default_gradcam_layer_gives_a_non_empty_map():
    from mer_core.explain.attributions import explain

    x = np.random.default_rng(0).normal(size=(1, 8, 8)).astype(np.float32)
    e = explain(EmptyCoarse(), x, 0, "gradcam")
    assert e.options["layer"] == "fine" and e.options["empty_layers"] == ["coarse"]
    assert (e.combined > 0).any()
    chosen = explain(EmptyCoarse(), x, 0, "gradcam", layer="coarse")  # a layer the user picks is kept
    assert chosen.options["layer"] == "coarse" and not (chosen.combined > 0).any()


def test_overlays_are_drawn_on_a_display_resolution_face_aligned_with_the_input(env):
    import cv2

    from dashboard import reads

    rid = env["run"]
    ex = RunExplainer(rid)
    sid = ex.sample_ids()[0]
    small = ex.face(sid)
    big = ex.display_face(sid)
    n = small.shape[0]
    assert n <= 64 and big.shape == (256, 256)  # the model reads a small input; the overlay gets 256 px
    down = cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(down.ravel(), small.ravel())[0, 1] > 0.9  # the same crop, only sharper
    assert reads.sample_view(rid, sid)["face"].shape == (256, 256)


def test_pointing_is_explained_and_a_map_below_chance_gets_a_sentence(env):
    from dashboard.views.explain import score_caption

    low = score_caption({"au_share": 0.1, "au_area": 0.2, "blink_share": 0.0, "pointing": 0.0})
    assert "pointing miss (pointing game: is the map's strongest pixel inside a true AU region" in low
    assert "Below chance" in low
    assert "Below chance" not in score_caption({"au_share": 0.5, "au_area": 0.2, "blink_share": 0.0, "pointing": 1.0})
    at = page_app("explain", run=env["run"], sample=RunExplainer(env["run"]).sample_ids()[0])
    assert not at.exception, at.exception
    assert any("pointing game:" in c.value for c in at.caption)


def test_per_channel_pictures_share_one_signed_scale_over_the_face():
    from dashboard.views.explain import channel_pictures

    arr = np.zeros((8, 8), np.float32)
    arr[2, 2], arr[5, 5] = 1.0, -1.0
    face = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    pics, top = channel_pictures({"strong": arr, "weak": arr / 4}, face, size=8)
    assert top == 1.0
    strong, weak = pics[0].astype(int), pics[1].astype(int)
    assert strong[2, 2, 0] > weak[2, 2, 0] > strong[0, 0, 0]  # red: the weaker channel is paler on one scale
    assert strong[5, 5, 2] > strong[5, 5, 0]  # negative = blue
    assert strong[0, 7, 0] > strong[0, 0, 0]  # zero attribution: the face (bright on the right) shows through
    assert np.array_equal(pics[0][7, :4], pics[1][7, :4])


def test_compare_loader_pairs_the_newest_reports_of_two_runs(env):
    from dashboard import reads

    rid = env["run"]
    with pytest.raises(MerError, match="no explanation report with occlusion"):
        reads.compare_explain_reports(rid, rid, method="occlusion")
    explanation_report(rid, ReportConfig(methods=("saliency", "gradcam"), max_samples=3, steps=2, road=False,
                                         infidelity=False, sanity_samples=0))
    out = reads.compare_explain_reports(rid, rid, measure="roc_auc", method="saliency", method_b="gradcam")
    assert out["n_clips"] >= 1 and out["method_b"] == "gradcam"
    assert "Grad-CAM" in out["sentence"] and "Saliency" in out["sentence"] and "p = " in out["sentence"]


def test_a_report_job_is_listed_on_the_jobs_page(env, monkeypatch):
    monkeypatch.setattr(jobs, "_launch", lambda jid, *a, **k: _Proc())
    job_id = jobs.submit_explain_report(env["run"], {"methods": ["saliency"]}, start=False)
    at = page_app("jobs")
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert job_id in shown.to_string()


# --- measured time estimates ----------------------------------------------------------------------
IG = "integrated_gradients"


def _fake_clock(monkeypatch, costs, events=None):
    """report._clock becomes a counter that only the patched map and randomisation functions advance.

    ``costs``: method -> seconds one map of it takes; 'sanity' -> seconds of one randomisation check.
    """
    from mer_core.explain import report as rep

    now = [1000.0]
    real_map, real_check = rep._method_map, rep.randomisation_check
    monkeypatch.setattr(rep, "_clock", lambda: now[0])

    def timed_map(ex, c, method, cache=True):
        out = real_map(ex, c, method, cache)
        now[0] += costs.get(method, 0.0)
        if events is not None:
            events.append(("map", method, c.sid))
        return out

    def timed_check(*a, **k):
        out = real_check(*a, **k)
        now[0] += costs.get("sanity", 0.0)
        if events is not None:
            events.append(("sanity", None, None))
        return out

    monkeypatch.setattr(rep, "_method_map", timed_map)
    monkeypatch.setattr(rep, "randomisation_check", timed_check)


def test_slow_parts_are_timed_on_the_first_clip_and_announced_before_their_pass(env, monkeypatch):
    events: list = []
    _fake_clock(monkeypatch, {IG: 30.0, "sanity": 7.0}, events)
    cfg = ReportConfig(methods=("saliency", IG), max_samples=4, steps=2, road=False, infidelity=False,
                       sanity_samples=2, seed=11)
    report = explanation_report(env["run"], cfg, note=lambda e: events.append(("note", e["part"], e)))
    notes = {e[1]: e[2] for e in events if e[0] == "note"}
    assert set(notes) == {IG, "sanity", "total"}  # Saliency is fast: no note of its own
    ig_maps = [i for i, e in enumerate(events) if e[:2] == ("map", IG)]
    checks = [i for i, e in enumerate(events) if e[0] == "sanity"]
    first_note = min(i for i, e in enumerate(events) if e[0] == "note")
    assert len(ig_maps) == 4 and len(checks) == 4  # 2 methods x 2 clips
    assert ig_maps[0] < first_note < ig_maps[1]  # timed on clip 1, announced before clips 2..4
    assert checks[1] < first_note < checks[2]  # the first clip's check (both methods) timed, then the note
    ig = notes[IG]
    assert ig["measured_s"] == 30.0 and ig["clips"] == 4 and ig["seconds"] == 120.0
    assert ig["text"].startswith("Integrated Gradients: about 2 min for 4 clips (measured 30.0 s on the first clip")
    san = notes["sanity"]
    assert san["measured_s"] == 14.0 and san["seconds"] == 28.0
    assert san["text"] == "randomisation check: about 28 s for 2 clips (measured 14.0 s on the first clip)"
    assert notes["total"]["seconds"] == 30.0 * 4 + 14.0 * 2  # everything else takes no time on this clock
    assert [e["part"] for e in report["estimates"]] == [IG, "sanity", "total"]
    assert report["seconds"] == 30.0 * 4 + 7.0 * 4  # the estimate matched what the fake clock spent


def test_the_report_job_logs_its_estimates_and_the_tab_shows_them(env, monkeypatch, capsys, tmp_path):
    from mer_core.jobs.report_job import estimate_lines

    rid = env["run"]
    _fake_clock(monkeypatch, {IG: 12.0})
    settings = dict(methods=[IG], max_samples=3, steps=2, sanity_samples=0, road=False, infidelity=False, seed=12)
    with RunStore() as store:
        job_id = jobs.submit_explain_report(rid, settings, store=store, start=False)
        assert run_job(job_id, store=store, kick_next=False, runner_cls=ReportRunner) == 0
    out = capsys.readouterr().out
    assert "[estimate] Integrated Gradients: about 36 s for 3 clips (measured 12.0 s on the first clip" in out

    log = tmp_path / "job.log"
    log.write_text("=== 2024 starting worker for job x ===\n[estimate] old attempt\n"
                   "=== 2024 starting worker for job x ===\n[worker] job x\n[estimate] Integrated Gradients: "
                   "about 4 min for 20 clips (measured 12.0 s on the first clip)\n")
    assert estimate_lines({"log_path": str(log)}) == [
        "Integrated Gradients: about 4 min for 20 clips (measured 12.0 s on the first clip)"]
    assert estimate_lines({"log_path": str(tmp_path / "none.log")}) == []

    # a running report job: the Faithfulness tab shows its measured estimate under the progress bar
    import os
    import time

    from dashboard.views.explain import K_VIEW
    from dashboard.views.explain_faithfulness import K_METHODS, K_SAMPLES, K_STEPS

    monkeypatch.setattr(jobs, "_launch", lambda jid, *a, **k: _Proc())
    with RunStore() as store:
        running = jobs.submit_explain_report(rid, dict(settings, seed=13), store=store, start=False)
        with store.tx() as c:
            c.execute("UPDATE jobs SET status='running', pid=?, heartbeat=?, started=?, log_path=?, progress=0.3, "
                      "message='clip 2/20' WHERE id=?", (os.getpid(), time.time(), time.time(), str(log), running))
    at = page_app("explain", run=rid)
    at.session_state[K_VIEW] = "Faithfulness"
    at.session_state[K_METHODS] = ["saliency"]
    at.session_state[K_SAMPLES] = 2
    at.session_state[K_STEPS] = 3
    at.run()
    assert not at.exception, at.exception
    assert any(c.value == "Estimate: Integrated Gradients: about 4 min for 20 clips (measured 12.0 s on the first "
               "clip)" for c in at.caption)


def test_the_estimate_before_submission_uses_a_matching_benchmark_figure_or_measures_one_clip(
        env, monkeypatch, tmp_path):
    from mer_core.explain.report_time import estimate_report_seconds

    rid = env["run"]
    fast = ReportConfig(methods=("saliency", "gradcam", "attention"), max_samples=4, steps=10, road=False,
                        infidelity=False, sanity_samples=0)
    results = tmp_path / "results"
    results.mkdir()
    (results / "explain_report_cpu-2core.json").write_text(json.dumps(
        {"clips": 167, "methods": ["saliency", "gradcam", "attention"], "steps": 10, "full": False, "threads": 2,
         "seconds": 735.4, "seconds_per_clip": 4.403, "load_average_1min": [4.9, 5.1]}))
    est = estimate_report_seconds(rid, fast, results=results, measure=False)
    assert est["source"] == "benchmark" and est["seconds"] == pytest.approx(4.403 * 4)
    assert "benchmark explain_report_cpu-2core.json" in est["text"] and "4.40 s per clip" in est["text"]

    # no figure for these settings (other steps, Integrated Gradients): one clip measured now, nothing cached
    _fake_clock(monkeypatch, {IG: 5.0, "saliency": 1.0})
    monkeypatch.setattr(RunExplainer, "explain", lambda *a, **k: pytest.fail("the probe must not use the cache"))
    slow = ReportConfig(methods=("saliency", IG), max_samples=3, steps=2, road=False, infidelity=False,
                        sanity_samples=0)
    assert estimate_report_seconds(rid, slow, results=results, measure=False)["seconds"] is None
    est = estimate_report_seconds(rid, slow, results=results)
    assert est["source"] == "measured" and est["seconds"] == 6.0 * 3
    first = report_ids_of(rid, 3)[0]
    assert est["text"] == (f"about 18 s for 3 clips: measured just now on clip {first} of run {rid} (6.0 s, no "
                           "committed benchmark figure for these settings) and multiplied by the clips")
    assert est["parts"][0]["text"] == f"Integrated Gradients: about 15 s for 3 clips (measured 5.0 s on clip {first})"


def report_ids_of(rid, n):
    from mer_core.explain.report import report_ids

    return report_ids(RunExplainer(rid), n)


def test_cli_prints_the_estimate_before_and_during_the_report(env, monkeypatch, capsys):
    rid = env["run"]
    _fake_clock(monkeypatch, {IG: 5.0})
    args = ["explain-report", rid, "--methods", IG, "--max-samples", "2", "--steps", "2", "--sanity-samples", "0",
            "--no-road"]
    assert main([*args, "--estimate"]) == 0
    out = capsys.readouterr().out
    first = report_ids_of(rid, 2)[0]
    assert f"  Integrated Gradients: about 10 s for 2 clips (measured 5.0 s on clip {first})" in out
    assert out.strip().splitlines()[-1].startswith("estimate: about 10 s for 2 clips: measured just now")
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert "estimate: Integrated Gradients: about 10 s for 2 clips (measured 5.0 s on the first clip" in captured.err
    assert list(json.loads(captured.out)["summary"]) == [IG]  # stdout stays JSON


def test_the_faithfulness_tab_estimates_a_report_before_it_is_submitted(env, monkeypatch):
    from dashboard.views.explain import K_VIEW
    from dashboard.views.explain_faithfulness import K_METHODS, K_SAMPLES, K_STEPS

    rid = env["run"]
    _fake_clock(monkeypatch, {"saliency": 2.0, "sanity": 3.0})
    monkeypatch.setattr(jobs, "_launch", lambda jid, *a, **k: _Proc())
    at = page_app("explain", run=rid)
    at.session_state[K_VIEW] = "Faithfulness"
    at.session_state[K_METHODS] = ["saliency"]
    at.session_state[K_SAMPLES] = 3
    at.session_state[K_STEPS] = 4
    at.run()
    assert not at.exception, at.exception
    [button] = [b for b in at.button if b.label == "Estimate how long it takes"]
    button.click()
    at.run()
    assert not at.exception, at.exception
    first = report_ids_of(rid, 3)[0]
    shown = [i.value for i in at.info]
    assert shown == [f"Estimate: about 15 s for 3 clips and its 3-clip randomisation check: measured just now on clip "
                     f"{first} of run {rid} (5.0 s, no committed benchmark figure for these settings) and multiplied "
                     "by the clips"]
    at.run()
    assert [i.value for i in at.info] == shown  # kept for this choice, not measured again
    assert not [b for b in at.button if b.label == "Estimate how long it takes"]
