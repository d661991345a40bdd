"""The `mer` command line: a tiny LOSO end to end and clear errors without tracebacks."""
import json
import re

import pytest

from fixtures_clips import make_clip_manifest
from mer_core.cli import main


@pytest.fixture
def manifest(tmp_path):
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


def test_loso_runs_and_lists(manifest, capsys):
    rc = main(["loso", "--dataset", "manifest", "--dataset-option", f"manifest={manifest}", "--class-set", "native",
               "--epochs", "1", "--json", "--executor", "sequential"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "done" and 0 <= out["summary"]["pooled"]["uf1"] <= 1
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert out["run_id"] in listing
    assert main(["show", out["run_id"]]) == 0
    shown = capsys.readouterr().out
    assert "pooled over folds" in shown and "per subject" in shown


@pytest.mark.parametrize("argv, message", [
    (["loso", "--model", "nope"], "unknown model 'nope'; valid models: "),
    (["loso", "--dataset", "nope"], "unknown dataset 'nope'; valid datasets: "),
    (["loso", "--set", "epochz=3"], "--set epochz: unknown key; valid keys:"),
    (["loso", "--model-option", "dropout=abc"], "--model-option dropout='abc': expected a number"),
    (["loso", "--set", "lr=-1"], "lr=-1"),
])
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_is_the_one_experiment_command_and_loso_and_train_its_short_forms(monkeypatch, capsys):
    from mer_core.cli import build_parser, cmd_loso

    listed = build_parser().format_help()
    assert re.search(r"^\s+run\s", listed, re.M) and "--protocol" in listed
    for hidden in ("loso", "train", "worker", "kick"):  # short forms and plumbing: they work, unlisted
        assert not re.search(rf"^\s+{hidden}\s", listed, re.M), hidden
    assert "SUPPRESS" not in listed
    seen = []
    monkeypatch.setattr(cmd_loso, "cmd_experiment", lambda args, protocol=None: seen.append(
        cmd_loso.explicit_choices(args, protocol).get("protocol", "default")) or 0)
    for argv in (["loso"], ["train"], ["run"], ["run", "--protocol", "composite"]):
        assert main([*argv, "--epochs", "1"]) == 0
    assert seen == ["loso", "holdout", "default", "composite"]
    assert main(["loso", "--set", "protocol=kfold"]) == 2  # a short form's protocol is fixed
    assert "contradicts" in capsys.readouterr().err


def test_one_subject_table_is_refused(tmp_path, capsys):
    manifest = make_clip_manifest(tmp_path / "one", subjects=1, clips_per_subject=3, size=32, frames=4)
    rc = main(["loso", "--dataset", "manifest", "--dataset-option", f"manifest={manifest}", "--class-set", "native"])
    assert rc == 2
    assert "needs at least 2 subjects" in capsys.readouterr().err
