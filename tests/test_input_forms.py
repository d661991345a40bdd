"""Presets per input form: the ``auto`` preset is read off the sample table, a forced preset the
table cannot feed is refused before training, and every model trains one epoch on each form it declares."""
from __future__ import annotations

import json

import pytest

from mer_core.cli import main
from mer_core.datasets.registry import index_dataset
from mer_core.datasets.synthetic.export import export_public
from mer_core.errors import ConfigError
from mer_core.models.registry import list_models
from mer_core.store.db import RunStore
from mer_core.training.engine import run_experiment
from mer_core.training.experiment import choose_preset, model_forms, resolve_experiment

FRAMES = dict(subjects=3, clips_per_subject=4, size=32, frames=8)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    base = tmp_path_factory.mktemp("forms")
    return {"flow+apex": export_public(base / "fa", "flow-apex", subjects=3).parent,
            "apex": export_public(base / "a", "apex-only", subjects=3).parent}


def _source(form, exports):
    if form == "frames":
        return "synthetic", FRAMES
    return "manifest", {"manifest": str(exports[form])}


@pytest.mark.parametrize("form,model,expected", [
    ("frames", "dense_attention", "cpu"), ("frames", "mfdan", "cpu"), ("frames", "ststnet", "cpu"),
    ("flow+apex", "dense_attention", "cpu_motion"), ("flow+apex", "mfdan", "cpu_motion"),
    ("flow+apex", "ststnet", "cpu"), ("apex", "dense_attention", "cpu_apex"),
])
def test_auto_resolves_from_the_table_and_the_config_records_the_name(exports, form, model, expected):
    dataset, options = _source(form, exports)
    config = resolve_experiment(dataset, model, "auto", dataset_options=options)
    assert config.preset == expected
    table = index_dataset(dataset, **options)
    assert resolve_experiment(dataset, model, "auto", dataset_options=options, table=table).preset == expected


def test_auto_reason_names_the_inputs(exports):
    preset, reason = choose_preset("manifest", "dense_attention", "auto", {"manifest": str(exports["flow+apex"])})
    assert reason == "auto -> cpu_motion: this dataset has flow and apex images, no frames"
    _, apex_reason = choose_preset("manifest", "dense_attention", "paper", {"manifest": str(exports["apex"])})
    assert "needs a frame sequence" in apex_reason and "plain apex image" in apex_reason


def test_a_forced_preset_the_table_cannot_feed_is_one_message_listing_what_fits(exports, capsys):
    options = {"manifest": str(exports["flow+apex"])}
    with pytest.raises(ConfigError) as err:
        resolve_experiment("manifest", "dense_attention", "cpu", dataset_options=options)
    message = str(err.value)
    assert "diff cannot be made" in message and "presets of dense_attention that fit: cpu_flow_apex, cpu_motion, cpu_apex" in message
    with pytest.raises(ConfigError, match="no preset of ststnet fits; models that fit: dense_attention"):
        resolve_experiment("manifest", "ststnet", "auto", dataset_options={"manifest": str(exports["apex"])})
    rc = main(["loso", "--dataset", "manifest", "--dataset-option", f"manifest={exports['flow+apex']}",
               "--model", "mfdan", "--preset", "cpu", "--epochs", "1"])
    err_text = capsys.readouterr().err
    assert rc == 2 and "presets of mfdan that fit: cpu_apex, paper_apex, cpu_flow_apex, cpu_motion" in err_text
    store = RunStore()
    try:
        assert store.list_runs().empty  # refused before any run was opened
    finally:
        store.close()


CASES = [(m, form, preset) for m in list_models() for form, preset in model_forms(m).items() if form != "flow"]


def test_every_model_declares_a_cpu_preset_for_its_forms():
    declared = {m: set(model_forms(m)) for m in list_models()}
    assert {"frames", "flow+apex", "apex"} <= declared["dense_attention"]
    assert {"frames", "flow+apex"} <= declared["mfdan"]
    assert all({"frames", "flow+apex", "flow"} <= declared[m] for m in ("baseline", "ststnet"))


@pytest.mark.parametrize("model,form,preset", CASES, ids=[f"{m}-{f}" for m, f, _ in CASES])
def test_every_model_trains_one_epoch_on_each_form_it_declares(exports, model, form, preset):
    dataset, options = _source(form, exports)
    small = {"input_size": 32} if model in ("dense_attention", "mfdan") else {}
    config = resolve_experiment(dataset, model, "auto", dataset_options=options, model_options=small,
                                overrides=dict(epochs=1, batch_size=8, executor="sequential", record_oracle=False))
    assert config.preset == preset
    store = RunStore()
    try:
        run = store.get_run(run_experiment(config, store=store))
    finally:
        store.close()
    assert run["status"] == "done", run.get("error")
    assert json.loads(run["config_json"])["preset"] == preset


def test_when_every_clip_fails_preprocessing_loso_says_why_and_what_fits(tmp_path, capsys):
    import cv2
    import numpy as np

    for s in ("a", "b", "c"):
        cv2.imwrite(str(tmp_path / f"{s}.png"), np.full((28, 28), 128, np.uint8))  # grey: not a flow image
    (tmp_path / "manifest.csv").write_text("subject,clip,label,flow_image\n" + "".join(
        f"{s},c{i},{lab},{s}.png\n" for s in "abc" for i, lab in enumerate(("negative", "positive"))))
    rc = main(["loso", "--dataset", "manifest", "--dataset-option", f"manifest={tmp_path}", "--model", "ststnet",
               "--epochs", "1", "--executor", "sequential", "--class-set", "native"])
    err = capsys.readouterr().err
    assert rc != 0 and "needs at least 2 subjects" not in err
    assert "every one of the 6 clips failed preprocessing for ststnet/cpu" in err
    assert "has 1 channel (grey); expected 3 channels" in err and "presets of ststnet that fit" in err


def test_mer_models_says_what_auto_picks_per_form(capsys):
    assert main(["models"]) == 0
    assert "preset auto: frames -> cpu, flow+apex -> cpu_motion, apex -> cpu_apex" in capsys.readouterr().out


def test_mer_preprocess_resolves_the_preset_like_mer_loso_on_a_flow_apex_export(exports, capsys):
    """`mer preprocess` defaulted to the cpu preset while `mer loso` used auto: on a flow + apex set every clip
    failed (DenseAttention's cpu preset needs the onset-apex difference). Both resolve through one module now."""
    manifest = ["--dataset", "manifest", "--dataset-option", f"manifest={exports['flow+apex']}"]
    rc = main(["preprocess", *manifest, "--model", "dense_attention", "--no-progress", "--no-cache"])
    out = capsys.readouterr().out
    loso = resolve_experiment("manifest", "dense_attention", dataset_options={"manifest": str(exports["flow+apex"])})
    assert rc == 0 and " 0 failed" in out, out
    assert "auto -> cpu_motion" in out and f"channels {','.join(loso.preprocess.channels)} at " \
        f"{loso.preprocess.input_size} px" in out
    rc = main(["preprocess", *manifest, "--model", "dense_attention", "--preset", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "presets of dense_attention that fit: cpu_flow_apex, cpu_motion, cpu_apex" in err  # refused like loso
