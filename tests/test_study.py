"""Studies: validation (refusals name the arm), submission through the job queue, cancel and resume."""
from __future__ import annotations

import time

import pytest

from mer_core.errors import MerError
from mer_core.jobs import queue
from mer_core.jobs import study as st
from mer_core.store.db import RunStore

TINY = {"epochs": 1, "executor": "sequential", "workers": 1}


def spec(**changes):
    data = {"name": "tiny", "dataset": "synthetic", "protocol": "loso", "seeds": [0, 1], "options": TINY,
            "arms": [{"name": "base", "model": "baseline"},
                     {"name": "base-lr", "model": "baseline", "options": {"lr": 3e-4}}]}
    data.update(changes)
    return st.parse_study(data)


def test_a_valid_study_resolves_one_config_per_arm_and_seed() -> None:
    configs = st.validate(spec())
    assert list(configs) == ["base", "base-lr"]
    assert [c.seed for c in configs["base"]] == [0, 1]
    assert configs["base-lr"][0].lr == 3e-4 and configs["base"][0].lr != 3e-4
    assert {c.epochs for cs in configs.values() for c in cs} == {1}
    assert configs["base"][0].class_set  # resolved, never ''


@pytest.mark.parametrize("changes, message", [
    ({"arms": [{"name": "solo", "model": "baseline"}]}, "'solo'"),
    ({"seeds": []}, "zero seeds"),
    ({"seeds": [0, 1, 1]}, "seed(s) [1] repeated"),
    ({"arms": [{"name": "a", "model": "baseline"}, {"name": "a", "model": "baseline", "options": {"lr": 0.1}}]},
     "arm 'a' appears twice"),
    ({"arms": [{"name": "a", "model": "baseline"}, {"name": "b", "model": "baseline"}]},
     "arm 'b' is a duplicate of arm 'a'"),
    ({"arms": [{"name": "a", "model": "baseline"}, {"name": "on-samm", "model": "baseline", "dataset": "samm"}]},
     "arm 'on-samm' is on dataset 'samm'"),
    ({"arms": [{"name": "a", "model": "baseline"}, {"name": "bad-preset", "model": "baseline", "preset": "huge"}]},
     "arm 'bad-preset': model 'baseline' has no preset 'huge'"),
    ({"arms": [{"name": "a", "model": "baseline"},
               {"name": "bad-classes", "model": "baseline", "options": {"class_set": "nope"}}]},
     "arm 'bad-classes': class_set='nope'"),
])
def test_bad_studies_are_refused_naming_the_arm(changes, message) -> None:
    with pytest.raises(MerError) as err:
        st.validate(spec(**changes))
    assert message in str(err.value)


def test_an_arm_the_dataset_cannot_feed_is_refused_by_the_check() -> None:
    def check(config):
        if config.preset == "paper":
            raise MerError("channel 'apex' is not in the dataset")

    s = spec(arms=[{"name": "a", "model": "mfdan"}, {"name": "paper-mfdan", "model": "mfdan", "preset": "paper"}])
    with pytest.raises(MerError, match="arm 'paper-mfdan': the dataset 'synthetic' cannot feed preset 'paper'"):
        st.validate(s, check=check)


def test_the_study_file_is_read_and_its_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('name = "t"\ndataset = "synthetic"\nseeds = [3, 4]\n[options]\nepochs = 1\n'
                    '[[arms]]\nname = "A"\nmodel = "baseline"\n[[arms]]\nname = "B"\nmodel = "mfdan"\n'
                    '[arms.model_options]\ndropkey = 0.0\n')
    s = st.load_study_file(path)
    assert s.seeds == (3, 4) and [a.name for a in s.arms] == ["A", "B"] and s.arms[1].model_options == {"dropkey": 0.0}
    path.write_text('name = "t"\narms = 3\n')
    with pytest.raises(MerError, match="study.toml: 'arms' must be a list"):
        st.load_study_file(path)
    path.write_text('name = \n')
    with pytest.raises(MerError, match="not a valid TOML"):
        st.load_study_file(path)


def test_ablation_fills_one_arm_per_component_switched_off() -> None:
    arms = st.ablation_arms("mfdan", "cpu", ["dropkey", "flow_attention"])
    assert [a.name for a in arms] == ["mfdan", "mfdan without dropkey", "mfdan without flow_attention"]
    assert arms[1].model_options == {"dropkey": 0.0} and arms[2].model_options == {"flow_attention": False}
    assert len(st.ablation_arms("mfdan")) > 3  # every component that is on
    with pytest.raises(MerError, match="cannot ablate \\['magnify_raw'\\]"):
        st.ablation_arms("mfdan", "cpu", ["magnify_raw"])  # already off at the preset


def test_submit_queues_every_cell_and_stores_the_definition() -> None:
    with RunStore() as store:
        cells = st.submit_study(spec(), store=store, start=False)
        assert len(cells) == 4 and set(cells["job_status"]) == {"queued"}
        assert sorted(zip(cells["arm"], cells["seed"])) == [("base", 0), ("base", 1), ("base-lr", 0), ("base-lr", 1)]
        job = queue.get_job(store, cells["job_id"].iloc[0])
        assert job["run_id"] == cells["run_id"].iloc[0] and job["config"]["seed"] == 0
        assert job["name"] == "tiny / base / seed 0"
        assert st.load_spec(store, "tiny") == spec()
        with pytest.raises(MerError, match="a study named 'tiny' already exists"):
            st.submit_study(spec(), store=store, start=False)
        with pytest.raises(MerError, match="no study 'other'.*studies: tiny"):
            store.get_study("other")


def test_cancel_stops_every_cell_and_resume_requeues_the_failed_and_the_missing() -> None:
    with RunStore() as store:
        cells = st.submit_study(spec(), store=store, start=False)
        killed = cells["job_id"].iloc[1]
        dead_pid = _dead_pid()
        store.conn.execute("UPDATE jobs SET status='running', pid=?, heartbeat=?, started=? WHERE id=?",
                           (dead_pid, time.time() - 3600, time.time() - 3600, killed))
        assert queue.mark_stale(store) == [killed]  # the killed cell's worker is gone
        store.conn.execute("DELETE FROM study_cells WHERE study='tiny' AND arm='base-lr' AND seed=1")  # never queued
        assert st.cancel_study(store, "tiny") == {"cancelled": 2}
        statuses = dict(zip(store.study_cells("tiny")["job_id"], store.study_cells("tiny")["job_status"]))
        assert statuses[killed] == "failed" and sorted(statuses.values()) == ["cancelled", "cancelled", "failed"]
        assert st.resume_study(store, "tiny", start=False) == {"resumed": 3, "submitted": 1}
        after = store.study_cells("tiny")
        assert len(after) == 4 and set(after["job_status"]) == {"queued"}
        assert queue.get_job(store, killed)["run_id"] == cells["run_id"].iloc[1]  # same run: folds kept


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process
    return proc.pid


def test_the_shipped_realism_study_files_are_valid() -> None:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    head = st.load_study_file(folder / "study_realism.toml")
    assert [a.model for a in head.arms] == ["linear", "ststnet", "dense_attention", "mfdan"]
    assert head.dataset == "synthetic-realism" and head.seeds == (0, 1, 2)
    assert len(st.validate(head)) == 4


def test_the_shipped_synthetic_study_file_is_valid() -> None:
    from pathlib import Path

    spec_ = st.load_study_file(Path(__file__).resolve().parents[1] / "benchmarks" / "study_synthetic.toml")
    configs = st.validate(spec_)
    assert len(configs) == 5 and spec_.seeds == (0, 1, 2) and spec_.dataset == "synthetic"
    assert "linear" in {arm.model for arm in spec_.arms}  # the floor every method must beat


def test_a_stored_study_naming_the_removed_batched_executor_loads_but_is_not_resubmitted_or_resumed() -> None:
    old = spec(options={**TINY, "executor": "batched"})
    with pytest.raises(MerError, match="arm 'base': executor 'batched' was removed .*use executor='process'"):
        st.validate(old)
    with RunStore() as store:
        store.create_study("tiny", dataset="synthetic", protocol="loso", definition=old.to_dict())
        assert st.load_spec(store, "tiny") == old  # a study stored before the removal still loads and shows
        with pytest.raises(MerError, match="executor 'batched' was removed"):
            st.resume_study(store, "tiny", start=False)
        assert store.study_cells("tiny").empty  # nothing was queued


def test_an_arm_without_a_preset_resolves_auto_like_every_command() -> None:
    configs = st.validate(spec())
    assert st.parse_study({"name": "x", "dataset": "synthetic", "arms": [{"model": "baseline"}]}).arms[0].preset \
        == "auto"
    assert configs["base"][0].preset == "cpu"  # auto on a set with frames
