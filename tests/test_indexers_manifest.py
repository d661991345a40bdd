"""Generic manifest (precomputed flow images, frame folders), the dataset check and `mer datasets`."""
from __future__ import annotations

import csv

import cv2
import pytest
from fixtures_datasets import (
    build_casme2, build_flow_manifest, build_frames_manifest, build_samm, index_with_report, write_corrupt,
)

from mer_core.cli import main
from mer_core.datasets import index_dataset
from mer_core.datasets.check import check_dataset
from mer_core.datasets.manifest import read_manifest
from mer_core.errors import DatasetError


def test_flow_manifest_indexes_precomputed_inputs(tmp_path):
    path = build_flow_manifest(tmp_path / "flows", n_subjects=4, per_class=2, size=28)
    table = index_dataset("manifest", path.parent)
    assert len(table) == 4 * 3 * 2 and table["subject"].nunique() == 4
    assert set(table["subject"]) == {"flowset:p01", "flowset:p02", "flowset:p03", "flowset:p04"}
    assert table["label"].value_counts().to_dict() == {"negative": 8, "positive": 8, "surprise": 8}
    r = table.iloc[0]
    assert r["frames"] == () and (r["onset"], r["apex"], r["offset"]) == (-1, -1, -1)
    flow = cv2.imread(r["flow_path"], cv2.IMREAD_COLOR)
    assert flow.shape == (28, 28, 3) and r["flow_path"].startswith(str(tmp_path))
    assert cv2.imread(r["apex_image_path"], cv2.IMREAD_GRAYSCALE).shape == (28, 28)
    # the class shows as the motion (R = u, G = v, 128 = no motion): up, down, outward
    def mean_uv(lab, cols):
        rgb = cv2.cvtColor(cv2.imread(table[table["label"] == lab].iloc[0]["flow_path"]), cv2.COLOR_BGR2RGB)
        return rgb[8:20, cols].astype(float).mean(axis=(0, 1))[:2] - 128

    assert mean_uv("negative", slice(8, 20))[1] < -50 and mean_uv("positive", slice(8, 20))[1] > 50
    assert mean_uv("surprise", slice(8, 13))[0] < -50 and mean_uv("surprise", slice(15, 20))[0] > 50


def test_flow_manifest_without_apex_images_and_composite_class_set(tmp_path):
    path = build_flow_manifest(tmp_path, n_subjects=2, per_class=1, apex_images=False, classes=("negative", "happiness"))
    table = index_dataset("manifest", path)
    assert (table["apex_image_path"] == "").all() and (table["flow_path"] != "").all()
    comp = index_dataset("manifest", path, class_set="composite3")
    assert sorted(set(comp["label"])) == ["negative", "positive"]


def test_frames_manifest_estimates_missing_apex_and_skips_bad_rows(tmp_path):
    rows = [
        dict(subject="a", clip="c1", label="negative", n=4, onset=0, apex=2, offset=3),
        dict(subject="a", clip="c2", label="positive", n=3, onset=0, apex="", offset=2),
        dict(subject="b", clip="c3", label="surprise", n=3, onset=0, apex=5, offset=2),  # apex outside the clip
        dict(subject="b", clip="c4", label="surprise", n=3, onset=4, apex=1, offset=2),  # onset outside: skipped
    ]
    path = build_frames_manifest(tmp_path, rows)
    table, problems = index_with_report("manifest", path)
    rows_ = {r["clip"]: r for r in table.to_dict("records")}
    assert set(rows_) == {"c1", "c2", "c3"}
    assert (rows_["c1"]["apex"], rows_["c1"]["apex_estimated"]) == (2, False)
    assert (rows_["c2"]["apex"], rows_["c2"]["apex_estimated"], rows_["c2"]["apex_method"]) == (1, True, "middle")
    assert rows_["c3"]["apex_estimated"] and rows_["c3"]["apex"] == 1
    skipped = [p for p in problems if p["severity"] == "error"]
    assert len(skipped) == 1 and skipped[0]["row"] == 5 and "onset=4" in skipped[0]["message"]
    with pytest.raises(DatasetError, match="row 5"):
        read_manifest(path, strict=True)


def test_manifest_whole_file_errors(tmp_path):
    bad = tmp_path / "manifest.csv"
    bad.write_text("subject,clip\na,b\n")
    with pytest.raises(DatasetError, match="missing column"):
        index_dataset("manifest", tmp_path)
    bad.write_text("subject,clip,label,flow_image\na,b,negative,nope.png\n")
    with pytest.raises(DatasetError, match="no usable clip.*nope.png"):
        index_dataset("manifest", tmp_path)


def test_check_flags_corrupt_images_duplicates_and_subject_spellings(tmp_path):
    path = build_flow_manifest(tmp_path, n_subjects=3, per_class=1)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["subject"] = "s1"
    rows[1]["subject"] = "s01"
    rows[2]["flow_image"] = rows[3]["flow_image"]
    rows[2]["apex_image"] = rows[3]["apex_image"]
    write_corrupt(tmp_path / rows[4]["flow_image"])
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = check_dataset("manifest", tmp_path)
    assert not report.usable and report.n_samples == 9
    kinds = {(p["severity"], p["kind"]) for p in report.problems}
    assert {("error", "corrupt_image"), ("warning", "duplicate"), ("warning", "subject")} <= kinds
    assert report.problems[0]["severity"] == "error"  # errors first
    frame = report.problems_frame()
    assert list(frame.columns) == ["severity", "kind", "file", "row", "sample_id", "message"] and len(frame) == 3


def test_check_never_raises_for_a_broken_dataset(tmp_path):
    report = check_dataset("samm", tmp_path / "nowhere")
    assert report.fatal and not report.usable and "not a folder" in report.to_text()
    report = check_dataset("casme2")
    assert "MER_ROOT_CASME2" in report.fatal


# ----------------------------------------------------------------------------- CLI


def test_cli_check_exit_codes(tmp_path, capsys):
    samm = build_samm(tmp_path / "samm")
    assert main(["datasets", "check", "samm", "--root", str(samm)]) == 0
    out = capsys.readouterr().out
    assert "usable: 5 clips, 3 subjects" in out and "before onset" in out and "samm:007 2" in out
    casme2 = build_casme2(tmp_path / "casme2")
    assert main(["datasets", "check", "casme2", "--root", str(casme2), "--class-set", "composite3"]) == 1
    out = capsys.readouterr().out
    assert "NOT USABLE" in out and "EP13_01" in out and "label 'others'" in out
    assert main(["datasets", "check", "samm", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err


def test_cli_set_root_list_and_check_configured(tmp_path, capsys):
    samm = build_samm(tmp_path / "samm")
    assert main(["datasets", "set-root", "samm", str(samm)]) == 0
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert str(samm) in out and "megc2019" in out
    assert main(["datasets", "check", "samm", "--json"]) == 0
    assert '"n_samples": 5' in capsys.readouterr().out
    assert main(["datasets", "check", "smic"]) == 2
    assert "MER_ROOT_SMIC" in capsys.readouterr().err
    assert main(["datasets", "check", "nosuch"]) == 2
    assert "valid datasets" in capsys.readouterr().err


def test_cli_check_manifest_with_option(tmp_path, capsys):
    path = build_flow_manifest(tmp_path / "f", n_subjects=2, per_class=1)
    assert main(["datasets", "check", "manifest", "-o", f"manifest={path}"]) == 0
    assert "6 clips, 2 subjects" in capsys.readouterr().out


def test_check_names_missing_classes(tmp_path):
    path = build_flow_manifest(tmp_path, n_subjects=2, per_class=1, classes=("negative", "positive"))
    report = check_dataset("manifest", path, class_set="composite3")
    assert report.usable and report.missing_classes == ["surprise"]
    assert "with no clip: surprise" in report.to_text()
    assert report.to_dict()["counts_by_class"] == {"negative": 2, "positive": 2}
