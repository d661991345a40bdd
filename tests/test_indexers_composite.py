"""MEGC2019 composite on a full 442-clip fixture (2 frames of 8x8 per clip)."""
from __future__ import annotations

import csv
import shutil

import pytest
from fixtures_datasets import build_megc2019, index_with_report

from mer_core.datasets import index_dataset
from mer_core.datasets.check import check_dataset
from mer_core.datasets.composite import OFFICIAL_LIST, official_list
from mer_core.errors import DatasetError

# shared/reference/megc2019.md
EXPECTED = {
    "smic": {"negative": 70, "positive": 51, "surprise": 43},
    "casme2": {"negative": 88, "positive": 32, "surprise": 25},
    "samm": {"negative": 92, "positive": 26, "surprise": 15},
}
EXCLUDED = ["casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f", "casme2/sub24/EP07_01", "casme2/sub24/EP07_04f", "casme2/sub24/EP10_03"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return build_megc2019(tmp_path_factory.mktemp("megc"))


@pytest.fixture(scope="module")
def composite(roots):
    return index_with_report("megc2019", None, **{f"{k}_root": v for k, v in roots.items()})


def test_shipped_list_is_the_official_one():
    rows = list(csv.DictReader(open(OFFICIAL_LIST, encoding="utf-8")))
    assert len(rows) == 442 and list(rows[0]) == ["dataset", "subject", "clip", "label"]
    listed = official_list()
    assert listed.groupby("dataset")["subject"].nunique().to_dict() == {"casme2": 24, "samm": 28, "smic": 16}


def test_composite_reproduces_the_official_counts(composite):
    table, _ = composite
    assert len(table) == 442
    assert table["subject"].nunique() == 68
    assert table["label"].value_counts().to_dict() == {"negative": 250, "positive": 109, "surprise": 83}
    assert table["part"].value_counts().to_dict() == {"smic": 164, "casme2": 145, "samm": 133}
    for part, counts in EXPECTED.items():
        assert table[table["part"] == part]["label"].value_counts().to_dict() == counts
    assert table.groupby("part")["subject"].nunique().to_dict() == {"casme2": 24, "samm": 28, "smic": 16}


def test_subject_ids_unique_across_parts(composite):
    table, _ = composite
    owners = table.groupby("subject")["part"].nunique()
    assert (owners == 1).all()
    assert all(s.startswith(p + ":") for s, p in zip(table["subject"], table["part"]))
    assert {"casme2:sub01", "samm:006", "smic:s1"} <= set(table["subject"])
    assert table["sample_id"].is_unique


def test_composite_exclusions_are_reported_with_reasons(composite):
    table, problems = composite
    ids = set(table["sample_id"])
    assert not ids & set(EXCLUDED)
    dropped = {p["sample_id"]: p["message"] for p in problems if p["kind"] == "dropped"}
    assert set(EXCLUDED) <= set(dropped)
    assert "'/'" in dropped["casme2/sub04/EP12_01f"] and "onset equals its apex" in dropped["casme2/sub05/EP09_05f"]
    assert "sadness" in dropped["casme2/sub24/EP10_03"]
    for sid in ("casme2/sub01/EP03_02", "casme2/sub02/EP08_04", "casme2/sub10/EP10_02", "samm/006/006_1_7"):
        assert "not in the composite mapping" in dropped[sid]
    assert len(dropped) == 9
    assert not [p for p in problems if p["severity"] == "error"]
    # the SAMM sheet typo (apex before onset) is kept, apex estimated
    typo = table[table["sample_id"] == "samm/006/006_1_2"].iloc[0]
    assert typo["apex_estimated"] and typo["label"] == "negative"


def test_rules_alone_give_150_casme2_clips(roots):
    table = index_dataset("megc2019", None, official=False, **{f"{k}_root": v for k, v in roots.items()})
    assert (table["part"] == "casme2").sum() == 150 and len(table) == 447


def test_roots_come_from_configuration(roots, monkeypatch, tmp_path):
    for part, root in roots.items():
        monkeypatch.setenv(f"MER_ROOT_{part.upper()}", str(root))
    table = index_dataset("megc2019")
    assert len(table) == 442
    monkeypatch.delenv("MER_ROOT_SAMM")
    with pytest.raises(DatasetError, match="MER_ROOT_SAMM"):
        index_dataset("megc2019")
    # a root holding casme2/, samm/, smic/ works too
    assert len(index_dataset("megc2019", roots["casme2"].parent)) == 442


@pytest.mark.parametrize("folders", [
    {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"},
    {"casme2": "CASME_II", "samm": "Samm", "smic": "SMIC-HS"},
    {"casme2": "casme_ii", "samm": "samm", "smic": "smic_hs"},
])
def test_composite_root_with_distributed_folder_names(tmp_path, folders):
    build_megc2019(tmp_path / "megc", extras=False, folders=folders)
    table = index_dataset("megc2019", tmp_path / "megc")
    assert table["part"].value_counts().to_dict() == {"smic": 164, "casme2": 145, "samm": 133}
    assert (tmp_path / "megc" / folders["samm"]).resolve().as_posix() in table.loc[table["part"] == "samm", "frames"].iloc[0][0]


def test_composite_root_without_a_part_names_the_folders_tried(tmp_path):
    roots = build_megc2019(tmp_path / "megc", extras=False, folders={"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"})
    shutil.rmtree(roots["samm"])
    (tmp_path / "megc" / "SAMM_v1_notes").mkdir()  # a near miss is not taken for the part
    with pytest.raises(DatasetError) as err:
        index_dataset("megc2019", tmp_path / "megc")
    message = str(err.value)
    assert "samm, SAMM (any case)" in message and str(tmp_path / "megc") in message
    assert "MER_ROOT_SAMM" in message and "samm_root=" in message


def test_list_differences_missing_clip_and_label_disagreement(tmp_path):
    roots = build_megc2019(tmp_path / "m", extras=False)
    shutil.rmtree(roots["smic"] / "SMIC_all_cropped" / "HS" / "s1" / "micro" / "negative" / "s1_ne_01")
    listed = tmp_path / "list.csv"
    rows = [["dataset", "subject", "clip", "label"], ["smic", "s1", "s1_ne_01", "negative"],
            ["casme2", "sub01", "EP02_01f", "negative"],  # the sheet says happiness -> positive
            ["samm", "6", "006_1_2", "negative"]]  # '6' spelled as a number
    listed.write_text("\n".join(",".join(r) for r in rows) + "\n")
    table, problems = index_with_report("megc2019", None, list_path=listed, **{f"{k}_root": v for k, v in roots.items()})
    assert sorted(table["sample_id"]) == ["casme2/sub01/EP02_01f", "samm/006/006_1_2"]
    assert table.set_index("sample_id").loc["casme2/sub01/EP02_01f", "label"] == "negative"
    kinds = {(p["severity"], p["kind"], p["sample_id"]) for p in problems}
    assert ("error", "missing_on_disk", "smic/s1/s1_ne_01") in kinds
    assert ("warning", "label", "casme2/sub01/EP02_01f") in kinds
    assert len([p for p in problems if p["kind"] == "dropped"]) == 442 - 3


def test_check_reports_the_composite(roots):
    report = check_dataset("megc2019", **{f"{k}_root": v for k, v in roots.items()})
    assert report.usable and report.n_samples == 442 and report.n_subjects == 68
    assert report.counts_by_part == {"casme2": 145, "samm": 133, "smic": 164}
    assert report.counts_by_class == {"negative": 250, "positive": 109, "surprise": 83}
    crosstab = report.part_class_table()
    assert crosstab.loc["total", "total"] == 442 and crosstab.loc["samm", "surprise"] == 15
    text = report.to_text()
    assert "442 clips, 68 subjects" in text and "not in the official MEGC2019 list" in text


def test_apply_class_set_keeps_the_official_labels(tmp_path):
    from mer_core.datasets.classes import apply_class_set

    roots = build_megc2019(tmp_path / "m", extras=False)
    listed = tmp_path / "list.csv"
    listed.write_text("dataset,subject,clip,label\ncasme2,sub01,EP02_01f,negative\nsmic,s1,s1_po_01,positive\n")
    table = index_dataset("megc2019", None, list_path=listed, **{f"{k}_root": v for k, v in roots.items()})
    kept, dropped = apply_class_set(table, "composite3")
    assert dict(zip(kept["sample_id"], kept["label"])) == {"casme2/sub01/EP02_01f": "negative", "smic/s1/s1_po_01": "positive"}
    assert dropped.empty and list(kept.attrs["problems"]) == list(table.attrs["problems"])
    table.attrs.clear()  # without the indexer's mark, the rules apply again
    assert dict(zip(*apply_class_set(table, "composite3")[0][["sample_id", "label"]].T.values))["casme2/sub01/EP02_01f"] == "positive"
