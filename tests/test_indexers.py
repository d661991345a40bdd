"""CASME II, SAMM, SMIC and CAS(ME)^3 indexers on fixture trees in their distributed layouts."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures_datasets import (
    build_casme2,
    build_casme3,
    build_samm,
    build_smic,
    casme2_clips,
    index_with_report,
    samm_clips,
)

from mer_core.datasets import index_dataset, list_datasets
from mer_core.datasets.casme2 import normalise_subject as casme2_subject
from mer_core.datasets.casme3 import normalise_subject as casme3_subject
from mer_core.datasets.check import subject_key
from mer_core.datasets.samm import normalise_subject as samm_subject
from mer_core.datasets.smic import normalise_subject as smic_subject
from mer_core.errors import DatasetError


def by_id(table):
    return {r["sample_id"]: r for r in table.to_dict("records")}


def problems_of(problems, kind=None, severity=None):
    return [p for p in problems if (kind is None or p["kind"] == kind) and (severity is None or p["severity"] == severity)]


def test_all_indexers_registered():
    assert {"casme2", "samm", "smic", "megc2019", "casme3", "manifest"} <= set(list_datasets())


def test_subject_spellings_normalise():
    assert [casme2_subject(v) for v in (1, "1", "01", "sub1", "Sub01", 1.0)] == ["sub01"] * 6
    assert [samm_subject(v) for v in (6, "6", "06", "006", 6.0)] == ["006"] * 5
    assert [smic_subject(v) for v in ("s1", "s01", "S1", "1")] == ["s1"] * 4
    assert [casme3_subject(v) for v in ("spNO.1", "spno.1", 1)] == ["spNO.1"] * 3
    assert subject_key("sub01") == subject_key("sub1") == "1"


# ----------------------------------------------------------------------------- CASME II


@pytest.fixture()
def casme2_root(tmp_path) -> Path:
    return build_casme2(tmp_path / "CASME2")


def test_casme2_five_class_rows_and_frame_positions(casme2_root):
    table, problems = index_with_report("casme2", casme2_root)
    rows = by_id(table)
    # 12 sheet rows: fear + sadness dropped by casme2_5, one folder missing, one unknown label
    assert set(rows) == {
        "casme2/sub01/EP02_01f", "casme2/sub01/EP03_02", "casme2/sub01/EP19_05f", "casme2/sub02/EP01_11f",
        "casme2/sub02/EP11_01", "casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f", "casme2/sub05/EP15_01",
    }
    r = rows["casme2/sub01/EP02_01f"]
    assert (r["onset"], r["apex"], r["offset"], r["first_frame"]) == (0, 3, 6, 46)
    assert len(r["frames"]) == 7 and r["frames"][0].endswith("sub01/EP02_01f/img46.jpg")
    assert r["subject"] == "casme2:sub01" and r["native_subject"] == "sub01"
    assert r["emotion"] == r["label"] == "happiness" and r["fps"] == 200.0 and not r["cropped"]
    assert r["apex_method"] == "annotated" and not r["apex_estimated"]
    assert table["label"].value_counts().to_dict() == {"disgust": 3, "happiness": 2, "others": 1, "repression": 1, "surprise": 1}
    dropped = problems_of(problems, "dropped", "info")
    assert sorted(p["sample_id"] for p in dropped) == ["casme2/sub02/EP08_04", "casme2/sub05/EP10_02"]


def test_casme2_odd_apex_cells_are_estimated_and_flagged(casme2_root):
    table, problems = index_with_report("casme2", casme2_root)
    rows = by_id(table)
    slash = rows["casme2/sub04/EP12_01f"]  # apex '/', frames 2..6
    assert slash["apex_estimated"] and slash["apex_method"] == "middle"
    assert (slash["onset"], slash["apex"], slash["offset"]) == (0, 2, 4)
    same = rows["casme2/sub05/EP09_05f"]  # onset == apex
    assert same["apex_estimated"] and same["onset"] < same["apex"] <= same["offset"]
    apex_problems = {p["sample_id"]: p for p in problems_of(problems, "apex", "warning")}
    assert set(apex_problems) == {"casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f"}
    assert apex_problems["casme2/sub04/EP12_01f"]["row"] == 8  # header is row 1
    assert "equals onset" in apex_problems["casme2/sub05/EP09_05f"]["message"]


def test_casme2_bad_rows_are_skipped_and_reported(casme2_root):
    table, problems = index_with_report("casme2", casme2_root, class_set="native")
    assert "casme2/sub05/EP13_01" not in set(table["sample_id"])
    missing = problems_of(problems, "missing_frames", "error")
    assert len(missing) == 1 and missing[0]["row"] == 11 and "EP13_01" in missing[0]["message"]
    label = problems_of(problems, "label")
    assert len(label) == 1 and "'confusion'" in label[0]["message"] and label[0]["row"] == 12
    # native keeps fear and sadness
    assert {"fear", "sadness"} <= set(table["emotion"])
    # without verification the corrupt apex is not noticed; with it, the row is skipped
    assert "casme2/sub05/EP15_01" in set(table["sample_id"])
    table2, problems2 = index_with_report("casme2", casme2_root, verify_images=True)
    assert "casme2/sub05/EP15_01" not in set(table2["sample_id"])
    corrupt = problems_of(problems2, "corrupt_image", "error")
    assert len(corrupt) == 1 and corrupt[0]["file"].endswith("img2.jpg")


def test_casme2_composite_mapping(casme2_root):
    table = index_dataset("casme2", casme2_root, class_set="composite3")
    labels = dict(zip(table["sample_id"], table["label"]))
    assert labels["casme2/sub01/EP19_05f"] == "negative"  # disgust
    assert labels["casme2/sub02/EP01_11f"] == "negative"  # repression
    assert labels["casme2/sub01/EP02_01f"] == "positive"
    assert labels["casme2/sub02/EP11_01"] == "surprise"
    assert "casme2/sub01/EP03_02" not in labels  # others dropped
    assert not ({"fear", "sadness", "others"} & set(table["emotion"]))
    assert table.attrs["class_set"] == "composite3"


def test_casme2_cropped_variant(tmp_path):
    clips = [c for c in casme2_clips() if c["clip"] in ("EP02_01f", "EP11_01")]
    root = build_casme2(tmp_path, clips, frames_dir="Cropped", prefix="reg_img")
    table = index_dataset("casme2", root)
    assert table["cropped"].all() and len(table) == 2
    assert table.loc[0, "frames"][0].endswith("reg_img46.jpg")
    with pytest.raises(DatasetError, match="CASME2_RAW_selected"):
        index_dataset("casme2", root, frames="raw")


def test_casme2_unreadable_sheet_names_the_file(tmp_path):
    root = build_casme2(tmp_path, casme2_clips()[:2])
    (root / "CASME2-coding-20190701.xlsx").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="CASME2-coding-20190701.xlsx"):
        index_dataset("casme2", root)


def test_missing_root_says_how_to_configure():
    with pytest.raises(DatasetError, match="MER_ROOT_CASME2"):
        index_dataset("casme2")


# ----------------------------------------------------------------------------- SAMM


def test_samm_legend_rows_numbers_and_frame_names(tmp_path):
    root = build_samm(tmp_path / "SAMM_root")
    table, problems = index_with_report("samm", root, class_set="native")
    rows = by_id(table)
    assert len(rows) == 7
    r = rows["samm/006/006_1_2"]
    assert r["subject"] == "samm:006" and r["native_subject"] == "006" and r["emotion"] == "disgust"
    assert (r["onset"], r["apex"], r["offset"], r["first_frame"]) == (0, 2, 3, 5562)
    assert r["frames"][2].endswith("006/006_1_2/006_05588.jpg")
    typo = rows["samm/007/007_3_1"]  # apex 40 before onset 100
    assert typo["apex_estimated"] and typo["apex_method"] == "middle" and typo["apex"] == 1
    msgs = [p["message"] for p in problems_of(problems, "apex")]
    assert len(msgs) == 1 and "before onset" in msgs[0]
    unknown_offset = rows["samm/007/007_5_3"]  # offset -1 -> last frame
    assert unknown_offset["offset"] == 2 and not unknown_offset["apex_estimated"]
    assert problems_of(problems, "annotation", "warning")[0]["row"] == 14 + 4  # 13 legend rows + header + 4th clip


def test_samm_class_sets(tmp_path):
    root = build_samm(tmp_path)
    five = index_dataset("samm", root)
    assert sorted(five["label"]) == ["anger", "contempt", "happiness", "other", "surprise"]
    comp = index_dataset("samm", root, class_set="composite3")
    assert dict(zip(comp["emotion"], comp["label"])) == {
        "disgust": "negative", "happiness": "positive", "anger": "negative", "surprise": "surprise",
        "contempt": "negative", "fear": "negative",
    }
    with pytest.raises(DatasetError, match="does not apply.*samm_5"):
        index_dataset("samm", root, class_set="casme2_5")


def test_samm_sheet_without_header_is_one_clear_error(tmp_path):
    from fixtures_datasets import write_xlsx

    build_samm(tmp_path, samm_clips()[:1])
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", ["Name", "Clip"], [["a", "b"]])
    with pytest.raises(DatasetError, match=r"SAMM_Micro_FACS_Codes_v2.xlsx.*header"):
        index_dataset("samm", tmp_path)


# ----------------------------------------------------------------------------- SMIC


def test_smic_labels_from_folders_and_estimated_apex(tmp_path):
    root = build_smic(tmp_path)
    table, problems = index_with_report("smic", root)
    rows = by_id(table)
    assert set(rows) == {"smic/s1/s1_ne_01", "smic/s1/s1_po_01", "smic/s2/s2_sur_01", "smic/s3/s3_ne_01"}
    assert rows["smic/s1/s1_ne_01"]["label"] == "negative" and rows["smic/s2/s2_sur_01"]["label"] == "surprise"
    assert table["apex_estimated"].all() and set(table["apex_method"]) == {"middle"}
    assert rows["smic/s3/s3_ne_01"]["apex"] == 2 and rows["smic/s2/s2_sur_01"]["apex"] == 1  # 5 and 2 frames
    assert set(table["fps"]) == {100.0} and table["cropped"].all()
    assert len(problems_of(problems, "label")) == 1 and len(problems_of(problems, "missing_frames", "error")) == 1


def test_smic_max_diff_apex_and_modalities(tmp_path):
    root = build_smic(tmp_path, [dict(subject="s01", label="positive", clip="s1_po_05", n=5)], modality="VIS")
    clip = root / "SMIC_all_cropped" / "VIS" / "s01" / "micro" / "positive" / "s1_po_05"
    for k, value in enumerate([10, 30, 200, 60, 20]):  # frame 3 differs most from the onset
        cv2.imwrite(str(clip / f"image{k + 1:06d}.bmp"), np.full((8, 8), value, np.uint8))
    with pytest.raises(DatasetError, match="HS"):
        index_dataset("smic", root)
    table = index_dataset("smic", root, modality="VIS", apex="max_diff")
    r = table.iloc[0]
    assert (r["apex"], r["apex_method"], bool(r["apex_estimated"])) == (2, "max_diff", True)
    assert r["subject"] == "smic:s1" and r["fps"] == 25.0 and r["part"] == "smic_vis"


# ----------------------------------------------------------------------------- CAS(ME)^3


def test_casme3_clips_are_slices_of_recordings(tmp_path):
    root = build_casme3(tmp_path)
    table, problems = index_with_report("casme3", root)
    rows = by_id(table)
    assert set(rows) == {"casme3/spNO.1/a_10_14", "casme3/spNO.1/a_30_35", "casme3/spNO.2/b_5_8", "casme3/spNO.2/b_20_24", "casme3/spNO.3/c_1_3"}
    r = rows["casme3/spNO.1/a_10_14"]
    assert len(r["frames"]) == 5 and r["frames"][0].endswith("part_A/spNO.1/a/color/10.jpg")
    assert (r["onset"], r["apex"], r["offset"], r["emotion"]) == (0, 2, 4, "happiness")
    assert rows["casme3/spNO.3/c_1_3"]["emotion"] == "sadness"
    comp = index_dataset("casme3", root, class_set="composite3")
    assert sorted(comp["label"]) == ["negative", "negative", "positive", "surprise"]  # others dropped
    assert not problems


def test_corrupt_and_empty_frames_do_not_crash(tmp_path):
    clips = casme2_clips()[:2]
    root = build_casme2(tmp_path, clips)
    (root / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img52.jpg").write_bytes(b"")  # empty offset frame
    (root / "CASME2_RAW_selected" / "sub01" / "EP03_02" / "notes.txt").write_text("not a frame")  # ignored
    table, problems = index_with_report("casme2", root, verify_images=True)
    r = by_id(table)["casme2/sub01/EP02_01f"]
    assert len(r["frames"]) == 6 and r["offset"] == 5  # the empty file is left out, offset falls back to the last frame
    kinds = {p["kind"] for p in problems}
    assert {"corrupt_image", "annotation"} <= kinds


def test_relabelling_for_another_class_set_recovers_dropped_clips(tmp_path):
    """The engine indexes with the default class set, then applies the experiment's one."""
    from mer_core.datasets.classes import apply_class_set

    table = index_dataset("samm", build_samm(tmp_path))  # samm_5: disgust and fear dropped
    assert len(table) == 5 and table.attrs["class_set"] == "samm_5"
    same, none = apply_class_set(table, "samm_5")
    assert len(same) == 5 and none.empty
    comp, dropped = apply_class_set(table, "composite3")
    assert sorted(comp["emotion"]) == ["anger", "contempt", "disgust", "fear", "happiness", "surprise"]
    assert dropped["emotion"].tolist() == ["other"] and "problems" in comp.attrs
    native, _ = apply_class_set(table, "native")
    assert len(native) == 7
    # a table filtered by the caller does not get its removed rows back
    sub, _ = apply_class_set(table[table["subject"] != "samm:006"], "composite3")
    assert "samm:006" not in set(sub["subject"]) and "fear" in set(sub["emotion"])


def test_casme2_duplicates_apex_after_offset_and_subject_spellings(tmp_path):
    clips = [
        dict(subject=1, clip="EP01_01", onset=1, apex=3, offset=4, emotion="happiness"),
        dict(subject="sub1", clip="EP01_01", onset=1, apex=3, offset=4, emotion="happiness"),  # same clip, text subject
        dict(subject="sub02", clip="EP02_01", onset=1, apex=9, offset=4, emotion="Disgust ", frames=[1, 2, 3, 4, 9]),  # apex after offset
    ]
    root = build_casme2(tmp_path, clips)
    table, problems = index_with_report("casme2", root)
    assert table["sample_id"].tolist() == ["casme2/sub01/EP01_01", "casme2/sub02/EP02_01"]
    dup = [p for p in problems if p["kind"] == "duplicate"]
    assert len(dup) == 1 and dup[0]["severity"] == "error" and dup[0]["row"] == 3
    r = table.iloc[1]
    assert r["emotion"] == "disgust" and r["apex_estimated"] and r["offset"] == 3 and r["onset"] < r["apex"] < r["offset"]
    assert "after offset" in [p for p in problems if p["kind"] == "apex"][0]["message"]


def test_sheet_without_emotion_column_and_old_xls(tmp_path):
    from fixtures_datasets import CASME2_HEADER

    clips = casme2_clips()[:1]
    root = build_casme2(tmp_path, clips)
    header = [h if h != "Estimated Emotion" else "Feeling" for h in CASME2_HEADER]
    from fixtures_datasets import write_xlsx

    write_xlsx(root / "CASME2-coding-20190701.xlsx", header, [[1, "EP02_01f", None, 46, 49, 52, None, "4", "happiness", 1]])
    with pytest.raises(DatasetError, match="emotion"):
        index_dataset("casme2", root)
    (root / "CASME2-coding-20190701.xlsx").rename(root / "CASME2-coding-20190701.xls")
    with pytest.raises(DatasetError, match=r"\.xls workbook: save it as \.xlsx"):
        index_dataset("casme2", root)


def test_relative_root_gives_absolute_paths(tmp_path, monkeypatch):
    build_smic(tmp_path / "smic")
    monkeypatch.chdir(tmp_path)
    table = index_dataset("smic", "smic")
    assert all(Path(f).is_absolute() for frames in table["frames"] for f in frames)


# ----------------------------------------------------------------------------- one label table


def test_label_spellings_unify_through_one_table_in_each_datasets_vocabulary(tmp_path):
    from mer_core.datasets.classes import normalise_label

    cas = [dict(subject=1, clip=f"EP0{k}_01", onset=1, apex=2, offset=3, emotion=e) for k, e in enumerate(["Happy", "other", "Repressed", "Joy"])]
    sam = [dict(subject=6, clip=f"006_1_{k}", onset=1, apex=2, offset=3, emotion=e, frames=[1, 2, 3]) for k, e in enumerate(["Others", "angry", "Surprised"])]
    casme2 = index_dataset("casme2", build_casme2(tmp_path / "c", cas), class_set="native")
    samm = index_dataset("samm", build_samm(tmp_path / "s", sam), class_set="native")
    assert casme2["emotion"].tolist() == ["happiness", "others", "repression", "happiness"]
    assert samm["emotion"].tolist() == ["other", "anger", "surprise"]  # SAMM keeps its own 'other'
    # without a vocabulary (macro pre-training): the canonical names
    assert [normalise_label(v) for v in ("Happy", " Fearful ", "other", "Surprise", None)] == ["happiness", "fear", "others", "surprise", ""]


def test_too_few_frames_message_names_the_expected_file_names(tmp_path):
    root = build_casme2(tmp_path, [dict(subject=1, clip="EP02_01f", onset=46, apex=47, offset=48, emotion="happiness"),
                                   dict(subject=1, clip="EP03_02", onset=1, apex=1, offset=1, emotion="others")])
    _, problems = index_with_report("casme2", root)
    msg = problems_of(problems, kind="missing_frames")[0]["message"]
    assert "row 3" in msg and "EP03_02 holds 1 image(s)" in msg and "img{n}.jpg" in msg


@pytest.mark.parametrize("on_disk", ["sub1", "sub001"])
def test_casme2_subject_folders_spelled_without_or_with_extra_zeros_are_found(tmp_path, on_disk):
    root = build_casme2(tmp_path, casme2_clips()[:2])  # subject 1 in the sheet, sub01/ on disk
    frames = root / "CASME2_RAW_selected"
    (frames / "sub01").rename(frames / on_disk)
    table = index_dataset("casme2", root)
    assert table["sample_id"].tolist() == ["casme2/sub01/EP02_01f", "casme2/sub01/EP03_02"]
    assert all(f"/{on_disk}/" in p for p in table.iloc[0]["frames"])


def test_casme2_without_a_frame_folder_or_with_a_bad_frames_option_says_what_it_expected(tmp_path):
    root = build_casme2(tmp_path, casme2_clips()[:1])
    (root / "CASME2_RAW_selected").rename(root / "frames_elsewhere")
    with pytest.raises(DatasetError, match=r"casme2: no frame folder under .*; expected one of CASME2_RAW_selected"):
        index_dataset("casme2", root)
    with pytest.raises(DatasetError, match=r"frames='both'; expected 'auto', 'raw' or 'cropped'"):
        index_dataset("casme2", root, frames="both")
