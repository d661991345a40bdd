"""A run's pre-training record: stored in the run folder, read back validated, shown on the
Run page and in the Leaderboard.

Runs are fabricated with ``store_fixture_run`` (tests/test_results_pages.py); the record is written as
the engine leaves it, ``cache/runs/<run>/pretrain.json``, as plain JSON text.
"""
from __future__ import annotations

import json

import pytest

from apptest_helpers import page_app, unescape
from mer_core.store.db import RunStore
from mer_core.store.folders import run_folder
from mer_core.store.pretrain_record import read_pretrain_record, write_pretrain_record
from test_results_pages import store_fixture_run

SHA = "3f2a9c41d07b" + "e" * 52
WEIGHTS = "77c0ffee1234" + "a" * 52
FINGERPRINT = "9b1d0c77aa55" + "0" * 20
RECORD = {"sources": ["synthetic-macro?n=60"], "data_fingerprints": [FINGERPRINT], "key": "k" * 16,
          "checkpoint": "/cache/checkpoints/pretrain/kkkk.pt", "checkpoint_sha256": SHA, "weights_sha256": WEIGHTS,
          "code": None, "epochs": 3}
TRANSFER = {"pretrain": "synthetic-macro?n=60", "pretrain_epochs": 3}


def _run(run_id: str, record: object = None, *, raw: str | None = None, composite: bool = False,
         config: dict | None = None) -> str:
    rid = store_fixture_run(run_id, model="dense_attention", composite=composite, config=config)
    if record is not None or raw is not None:
        (run_folder(rid) / "pretrain.json").write_text(raw if raw is not None else json.dumps(record))
    return rid


def _caption(at) -> str:
    """The Run page's pre-training line as read (Markdown bold and code ticks dropped)."""
    return "\n".join(unescape(c.value).replace("**", "").replace("`", "") for c in at.caption
                     if "Pre-training:" in c.value)


def _caption_all(at) -> str:
    return "\n".join(unescape(c.value).replace("**", "").replace("`", "") for c in at.caption)


# --- the store's reader ---------------------------------------------------------------------------
def test_the_reader_returns_the_record_and_round_trips_the_writer():
    rid = _run("pt-read", RECORD, config=TRANSFER)
    assert read_pretrain_record(rid) == (RECORD, "")
    write_pretrain_record(run_folder(rid), RECORD | {"epochs": 5})
    record, problem = read_pretrain_record(rid)
    assert problem == "" and record["epochs"] == 5 and record["checkpoint_sha256"] == SHA


def test_a_record_written_before_the_weights_hash_was_kept_still_reads():
    old = {k: v for k, v in RECORD.items() if k not in ("weights_sha256", "code")}
    rid = _run("pt-old", old, config=TRANSFER)
    assert read_pretrain_record(rid) == (old | {"weights_sha256": None, "code": None}, "")
    line = _caption(page_app("run", run=rid))
    assert f"checkpoint sha256 {SHA[:12]}" in line and "weights" not in line


def test_a_run_without_a_record_reads_as_none_without_a_message():
    assert read_pretrain_record(_run("pt-none")) == (None, "")


@pytest.mark.parametrize("raw, why", [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps(RECORD | {"sources": []}), "'sources'"),
    (json.dumps(RECORD | {"data_fingerprints": [FINGERPRINT, FINGERPRINT]}), "one fingerprint for each"),
    (json.dumps(RECORD | {"checkpoint_sha256": "abc"}), "'checkpoint_sha256'"),
    (json.dumps(RECORD | {"checkpoint_sha256": None}), "'checkpoint_sha256'"),
    (json.dumps(RECORD | {"weights_sha256": "ABC"}), "'weights_sha256'"),
    (json.dumps(RECORD | {"epochs": "3"}), "'epochs'"),
    (json.dumps(RECORD | {"epochs": True}), "'epochs'"),
    (json.dumps(RECORD | {"key": 7}), "'key'"),
    (json.dumps(RECORD | {"code": ["abc"]}), "'code'"),
    (b"\xff\xfe\x00bad", "not readable JSON"),
    ("x" * (2 << 20), "more than a record can be"),
])
def test_a_malformed_record_reads_as_none_with_the_reason(raw, why):
    rid = _run("pt-bad")
    path = run_folder(rid) / "pretrain.json"
    path.write_bytes(raw) if isinstance(raw, bytes) else path.write_text(raw)
    record, problem = read_pretrain_record(rid)
    assert record is None and why in problem and "pt-bad" in problem and "pretrain.json" in problem


def test_the_reader_refuses_a_run_id_that_is_a_path():
    record, problem = read_pretrain_record("../../etc")
    assert record is None and "is not valid" in problem


# --- Run page ---------------------------------------------------------------------------------------
def test_run_page_shows_source_fingerprint_and_weights_hash():
    rid = _run("pt-page", RECORD, config=TRANSFER)
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    line = _caption(at)
    assert "synthetic-macro?n=60" in line and FINGERPRINT[:12] in line and "3 epochs" in line
    assert f"weights sha256 {WEIGHTS[:12]}" in line and WEIGHTS not in line  # short on the line ...
    (expander,) = [e for e in at.expander if e.label == "pre-training record"]
    fields = dict(zip(*[expander.dataframe[0].value[c] for c in ("field", "value")]))
    assert fields["weights sha256"] == WEIGHTS and fields["checkpoint sha256"] == SHA  # ... whole in the record
    assert fields["data fingerprint"] == FINGERPRINT


def test_run_page_says_when_the_weights_were_pre_trained_by_other_code():
    rid = _run("pt-code", config=TRANSFER)
    with RunStore() as store:
        this_run = store.get_run(rid)["code_version"]
    warning = "were made by other code"
    write_pretrain_record(run_folder(rid), RECORD | {"code": this_run})
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    assert warning not in _caption_all(at)
    write_pretrain_record(run_folder(rid), RECORD | {"code": "0123456789ab"})
    at = page_app("run", run=rid)
    text = _caption_all(at)
    assert f"{warning} (0123456789ab) than this run's ({this_run})" in text and "pre-train afresh" in text
    (expander,) = [e for e in at.expander if e.label == "pre-training record"]
    fields = dict(zip(*[expander.dataframe[0].value[c] for c in ("field", "value")]))
    assert fields["code"] == "0123456789ab"


def test_run_page_says_trained_from_scratch_without_a_record():
    at = page_app("run", run=_run("pt-scratch"))
    assert not at.exception, at.exception
    assert "Pre-training: none (trained from scratch)" in _caption(at)
    assert not [e for e in at.expander if e.label == "pre-training record"]


def test_run_page_never_passes_an_unrecorded_transfer_run_off_as_from_scratch():
    at = page_app("run", run=_run("pt-unrecorded", config=TRANSFER))
    assert not at.exception, at.exception
    line = _caption(at)
    assert "synthetic-macro?n=60 asked for, but no record is stored" in line and "from scratch" not in line


def test_run_page_warns_about_a_malformed_record_and_still_shows_the_run():
    rid = _run("pt-broken", raw='{"sources": ["synthetic-macro"], "checkpoint_sha256": ', config=TRANSFER)
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    (warning,) = [unescape(w.value) for w in at.warning if "Pre-training" in w.value]
    assert "not readable JSON" in warning and "unknown" in warning
    assert "UF1 (pooled)" in [m.label for m in at.metric]  # the rest of the page is there


# --- Leaderboard --------------------------------------------------------------------------------------
def test_leaderboard_names_the_pre_training_of_measured_composite_runs():
    _run("lb-transfer", RECORD, composite=True, config=TRANSFER)
    _run("lb-scratch", composite=True)
    _run("lb-broken", raw="null", composite=True, config=TRANSFER)
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert "pre-training" in board.columns
    by_run = {str(r).rsplit("=", 1)[-1]: p for r, p in zip(board["run"], board["pre-training"]) if r}
    assert by_run == {"lb-transfer": "synthetic-macro?n=60", "lb-scratch": "—",
                      "lb-broken": "synthetic-macro?n=60 (record unreadable)"}
    published = board[board["source"] == "reported in paper"]
    assert len(published) and set(published["pre-training"]) == {"—"}


def test_leaderboard_synthetic_runs_show_their_pre_training_too():
    _run("syn-transfer", RECORD, config=TRANSFER)
    _run("syn-scratch")
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "protocol" in d.value.columns]
    by_run = {str(r).rsplit("=", 1)[-1]: p for r, p in zip(table["run"], table["pre-training"])}
    assert by_run == {"syn-transfer": "synthetic-macro?n=60", "syn-scratch": "—"}
