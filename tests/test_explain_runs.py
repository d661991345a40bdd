"""Explanations of stored runs: honest fold models, cache, bad requests, CLI, localisation, Explain page."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apptest_helpers import page_app
from fixtures_clips import cache_at, make_clip_manifest
from mer_core.cli import main
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.explain.attributions import explain
from mer_core.explain.runs import RunExplainer, failure_cases, load_fold_model, localisation_table
from mer_core.store.db import RunStore
from mer_core.store.folders import read_table
from mer_core.training.engine import run_experiment


def _config(manifest: Path, **kw) -> ExperimentConfig:
    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="baseline", epochs=1, batch_size=8, executor="sequential")
    base.update(kw)
    return ExperimentConfig.from_dict(base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny stored runs in one cache: with fold checkpoints and without."""
    root = tmp_path_factory.mktemp("explain_cache")
    with cache_at(root):
        manifest = make_clip_manifest(root / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)
        with_ckpt = run_experiment(_config(manifest), run_id="with-ckpt")
        without = run_experiment(_config(manifest, keep_checkpoints=False), run_id="no-ckpt")
        attn = run_experiment(_config(manifest, model="dense_attention", model_options={"block_layers": [2, 2]}),
                              run_id="attn")
    return {"root": str(root), "ok": with_ckpt, "bare": without, "attn": attn}


@pytest.fixture
def run_env(isolated_cache, runs, monkeypatch):
    monkeypatch.setenv("MER_CACHE", runs["root"])
    return runs


def test_each_sample_is_explained_by_the_fold_that_held_it_out(run_env):
    ex = RunExplainer(run_env["ok"])
    folds = ex.folds.set_index("fold_index")
    for sid in ex.sample_ids():
        fold = ex.fold_of(sid)
        assert ex.row(sid)["subject"] in folds.loc[fold, "test_subjects"]
        assert ex.prediction(sid)["fold"] == fold
    sid = ex.sample_ids()[0]
    fold = ex.fold_of(sid)
    e = ex.explain(sid, "saliency", 0)
    own = explain(load_fold_model(ex.checkpoint_path(fold)), ex.sample_input(sid), 0, "saliency")
    other = explain(load_fold_model(ex.checkpoint_path((fold + 1) % 3)), ex.sample_input(sid), 0, "saliency")
    assert np.allclose(e.combined, own.combined)
    assert not np.allclose(e.combined, other.combined)
    # the input is the run's own row of inputs.npy, matched through table.json's sample_id
    row = list(read_table(ex.folder)["sample_id"]).index(sid)
    assert np.array_equal(ex.sample_input(sid), np.load(ex.folder / "inputs.npy")[row])


def test_explanations_are_cached_in_the_run_folder(run_env):
    ex = RunExplainer(run_env["ok"])
    sid = ex.sample_ids()[1]
    first = ex.explain(sid, "integrated_gradients", "pred", steps=8)
    assert not first.options.get("cached")
    files = list((ex.folder / "explain").rglob("integrated_gradients-*.npz"))
    assert len(files) == 1
    again = RunExplainer(run_env["ok"]).explain(sid, "integrated_gradients", "pred", steps=8)
    assert again.options["cached"] and again.options["steps"] == 8
    assert np.array_equal(first.combined, again.combined) and again.target == ex.prediction(sid)["y_pred"]
    assert set(again.channels) == {"flow_u", "flow_v", "strain"}
    other = ex.explain(sid, "integrated_gradients", "pred", steps=4)  # other options: another entry
    assert not other.options.get("cached")


def test_bad_requests_name_what_is_wrong(run_env):
    ex = RunExplainer(run_env["ok"])
    with pytest.raises(MerError, match="sample 'nope' is not in run with-ckpt"):
        ex.explain("nope", "saliency")
    with pytest.raises(MerError, match="no layer 'conv99'.*offered layers: features.1"):
        ex.explain(ex.sample_ids()[0], "gradcam", layer="conv99")
    with pytest.raises(MerError, match="no checkpoint.*keep_checkpoints"):
        bare = RunExplainer(run_env["bare"])
        bare.explain(bare.sample_ids()[0], "saliency")
    with pytest.raises(MerError, match="no run 'ghost'"):
        RunExplainer("ghost")
    with pytest.raises(MerError, match="no attention of its own"):
        ex.attention(ex.sample_ids()[0])


def test_failure_cases_sorted_by_confidence_of_the_wrong_answer():
    pred = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "subject": ["s1", "s1", "s2", "s2"], "fold": [0, 0, 1, 1],
                         "y_true": [0, 1, 2, 0], "y_pred": [1, 1, 0, 2],
                         "probs": [[0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]]})
    f = failure_cases(pred, ["neg", "pos", "sur"])
    assert f["sample_id"].tolist() == ["c", "a", "d"]
    assert f.loc[0, "true"] == "sur" and f.loc[0, "predicted"] == "neg"
    assert f["confidence"].tolist() == [0.9, 0.6, 0.5] and f.loc[0, "p_true"] == pytest.approx(0.05)


def test_cli_explain_and_its_errors(run_env, capsys):
    ex = RunExplainer(run_env["ok"])
    sid = ex.sample_ids()[2]
    assert main(["explain", run_env["ok"], sid, "--method", "saliency", "--method", "gradcam", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fold"] == ex.fold_of(sid) and set(out["methods"]) == {"saliency", "gradcam"}
    assert out["methods"]["gradcam"]["options"]["layer"] == "features.1"
    assert main(["explain", run_env["ok"], "missing-sample"]) == 2
    assert "is not in run" in capsys.readouterr().err
    assert main(["explain-localisation", run_env["ok"]]) == 2
    assert "synthetic" in capsys.readouterr().err


def test_localisation_table_on_a_tiny_synthetic_run(isolated_cache):
    cfg = ExperimentConfig.from_dict(dict(
        dataset="synthetic", dataset_options=dict(subjects=3, clips_per_subject=3, size=32, frames=12),
        model="baseline", epochs=1, batch_size=8, executor="sequential"))
    rid = run_experiment(cfg)
    methods = ("saliency", "gradcam", "attention")  # baseline has no attention: silently skipped
    assert localisation_table([rid], methods, max_samples=4, compute=False) is None
    table = localisation_table([rid], methods, max_samples=4)
    assert sorted(table["method"]) == ["gradcam", "saliency"] and ((table["n"] + table["n_empty"]) == 4).all()
    for col in ("au_share", "blink_share", "pointing"):
        assert table[col].between(0, 1).all()
    cached = localisation_table([rid], methods, max_samples=4, compute=False)
    pd.testing.assert_frame_equal(cached, table)
    # progress after every clip, counted over the runs still to compute (the first one is cached now)
    other = run_experiment(ExperimentConfig.from_dict({**cfg.to_dict(), "seed": 1}))
    seen: list = []
    localisation_table([rid, other], methods, max_samples=4, progress=lambda *a: seen.append(a))
    assert seen == [(k, 4, f"run 2 of 2 (baseline): clip {k} of 4") for k in range(1, 5)]
    ex = RunExplainer(rid)
    sid = ex.sample_ids()[0]
    masks = ex.masks(sid)
    assert masks["au"].shape == (32, 32) and masks["au"].any()
    # the page: localisation view, computed with the button, then shown as a table and a figure
    from dashboard.views.explain import K_VIEW

    at = page_app("explain", run=rid, sample=sid)
    assert not at.exception and not at.error
    at.session_state[K_VIEW] = "Localisation"
    _rerun(at)
    compute = [b for b in at.button if b.label == "Compute localisation table"]
    assert len(compute) == 1
    compute[0].click()
    _rerun(at)
    assert not at.exception, at.exception
    n = len(RunExplainer(rid).localisation_samples(24))  # the page's default: 24 samples per run at most
    assert any(c.value.startswith(f"Computed on {n} clips in") for c in at.caption)  # counted by the progress
    shown = at.dataframe[0].value
    assert set(shown["method"]) == {"Integrated Gradients", "Saliency", "Grad-CAM", "Occlusion", "SmoothGrad"}
    assert len(at.get("plotly_chart")) == 1


# --- the page --------------------------------------------------------------------------


def test_explain_page_renders_a_sample(run_env):
    ex = RunExplainer(run_env["ok"])
    wrong = failure_cases(ex.predictions, ex.classes)
    sid = wrong["sample_id"].iloc[0] if len(wrong) else ex.sample_ids()[0]
    at = page_app("explain", run=run_env["ok"], sample=sid)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.query_params["sample"] in (sid, [sid])
    assert len(at.get("image")) >= 3  # frames/flow and one overlay per method
    assert len(at.get("plotly_chart")) == 1  # class probabilities
    assert any("fold" in m.value for m in at.markdown)


def test_explain_page_shows_the_models_own_attention(run_env):
    ex = RunExplainer(run_env["attn"])
    sid = ex.sample_ids()[0]
    att = ex.attention(sid)
    assert att.aggregate == "aggregate" and att.maps["aggregate"].shape == (64, 64)
    assert {"stage1.channel", "stage2.channel"} <= set(att.vectors)
    assert RunExplainer(run_env["attn"]).attention(sid).maps.keys() == att.maps.keys()  # from the disk cache
    at = page_app("explain", run=run_env["attn"], sample=sid)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "attention" in at.multiselect[0].value
    assert any(e.label.startswith("model attention: all") for e in at.expander)


def test_explain_page_bad_requests_show_errors(run_env):
    at = page_app("explain", run=run_env["ok"], sample="not-a-sample")
    assert not at.exception
    assert any("not-a-sample" in e.value and "is not in run" in e.value for e in at.error)
    at = page_app("explain", run=run_env["bare"])
    assert not at.exception
    assert any("no fold checkpoints" in e.value for e in at.error)
    at = page_app("explain", run="ghost-run")
    assert not at.exception
    assert any("ghost-run" in e.value for e in at.error)


def _rerun(at):
    """Rerun an AppTest made by page_app after a widget change."""
    return at.run()


def test_explain_page_failure_browser_and_localisation_views(run_env):
    from dashboard.views.explain import K_VIEW

    at = page_app("explain", run=run_env["ok"])
    at.session_state[K_VIEW] = "Failure cases"
    _rerun(at)
    assert not at.exception, at.exception
    n_wrong = len(failure_cases(RunExplainer(run_env["ok"]).predictions, RunExplainer(run_env["ok"]).classes))
    assert n_wrong > 0  # a 1-epoch run misclassifies some clips (deterministic seed)
    opens = [b for b in at.button if b.label == "explain"]
    assert len(opens) == min(n_wrong, 12)
    if opens:
        opens[0].click()
        _rerun(at)
        assert not at.exception
        assert at.session_state[K_VIEW] == "Sample"
    at.session_state[K_VIEW] = "Localisation"
    _rerun(at)
    assert not at.exception
    assert any("synthetic" in i.value for i in at.info)


def test_explain_page_with_an_empty_store():
    at = page_app("explain")
    assert not at.exception
    assert any("No runs stored yet" in i.value for i in at.info)


def test_cli_method_choices_match_the_explainers():
    from mer_core.cli.cmd_explain import METHOD_CHOICES
    from mer_core.explain.attributions import METHODS
    from mer_core.explain.runs import ATTENTION

    assert set(METHOD_CHOICES) == set(METHODS) | {ATTENTION}


class _Payload:
    """Unpickling this object creates a marker file: proof that code from a data file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_in_a_run_folder_never_runs(run_env, tmp_path):
    import pickle
    import shutil

    src = Path(run_env["root"]) / "runs" / run_env["ok"]
    planted = Path(run_env["root"]) / "runs" / "planted"
    shutil.copytree(src, planted)
    with RunStore() as store:  # a run row pointing at the planted folder
        row = store.get_run(run_env["ok"])
        store.create_run(ExperimentConfig.from_json(row["config_json"]), classes=tuple(row["classes"]),
                         n_folds=row["n_folds"], n_samples=row["n_samples"], run_id="planted")
    marker = tmp_path / "owned"
    (planted / "table.json").unlink()
    (planted / "table.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(MerError, match="never unpickled"):
        RunExplainer("planted")
    assert not marker.exists()
    # an object array in inputs.npy (it would need pickle to load) is refused too
    shutil.copy(src / "table.json", planted / "table.json")
    np.save(planted / "inputs.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(MerError, match="not a plain numeric array"):
        RunExplainer("planted").inputs
    assert not marker.exists()


def _copy_run(run_env, src_key: str, new_id: str) -> Path:
    import shutil

    src = Path(run_env["root"]) / "runs" / run_env[src_key]
    dst = Path(run_env["root"]) / "runs" / new_id
    shutil.copytree(src, dst)
    with RunStore() as store:
        row = store.get_run(run_env[src_key])
        store.create_run(ExperimentConfig.from_json(row["config_json"]), classes=tuple(row["classes"]),
                         n_folds=row["n_folds"], n_samples=row["n_samples"], run_id=new_id)
        for f in store.folds(run_env[src_key]).itertuples():
            store.start_fold(new_id, f.fold_index, f.name, list(f.test_subjects), 1, 0, 1)
            preds = store.predictions(run_env[src_key])
            store.finish_fold(new_id, f.fold_index, preds[preds.fold == f.fold_index],
                              epochs_run=1, selected_epoch=1, oracle_epoch=None, wall_time=0.0,
                              checkpoint=str(dst / Path(f.checkpoint).name))
    return dst


def test_a_checkpoint_of_another_model_or_damaged_weights_is_refused(run_env):
    import torch

    folder = _copy_run(run_env, "ok", "tampered")
    sid = RunExplainer("tampered").sample_ids()[0]
    ex = RunExplainer("tampered")
    fold = ex.fold_of(sid)
    path = ex.checkpoint_path(fold)
    attn_ckpt = RunExplainer(run_env["attn"]).checkpoint_path(fold)
    good = path.read_bytes()
    path.write_bytes(attn_ckpt.read_bytes())  # a dense_attention checkpoint dropped into a baseline run
    with pytest.raises(MerError, match="copied from another run"):
        RunExplainer("tampered").explain(sid, "saliency", 0)
    ckpt = torch.load(io_bytes(good), weights_only=True)
    first = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][first] = ckpt["state_dict"][first] + 1.0  # edited weights, stale content hash
    torch.save(ckpt, path)
    with pytest.raises(MerError, match="content hash"):
        RunExplainer("tampered").explain(sid, "saliency", 0)
    from mer_core.training.checkpoints import content_hash

    ckpt["state_dict"][first] = torch.full_like(ckpt["state_dict"][first], float("nan"))
    ckpt["content_hash"] = content_hash(ckpt["state_dict"])
    torch.save(ckpt, path)
    with pytest.raises(MerError, match="non-finite"):
        RunExplainer("tampered").explain(sid, "saliency", 0)
    assert folder.exists()


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)
