"""Long videos for spotting: the synthetic variant's intervals, the indexers, the interval checks."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from mer_core.cli import main
from mer_core.spotting.indexers import index_long, read_long_manifest
from mer_core.spotting.source import iter_frames
from mer_core.spotting.synthetic_long import LongOptions, ensure_long, plan_dataset

QUIET = dict(subjects=2, videos_per_subject=1, min_seconds=4, max_seconds=4, fps=20, size=48, max_micro=3,
             max_macro=1, noise=0, flicker=0, drift=0, blink_every=0, talking=0)


def test_synthetic_long_intervals_are_where_the_face_moves(tmp_path):
    """Without confounds, only annotated frames differ from the neutral first frame, and each apex does most."""
    opts = LongOptions(**QUIET)
    ensure_long(opts, folder=tmp_path / "long")
    ds = read_long_manifest(tmp_path / "long" / "intervals.csv")
    assert len(ds.videos) == 2 and not ds.problems
    assert len(ds.intervals) == sum(len(p.expressions) for p in plan_dataset(opts)) > 0
    for v in ds.videos.itertuples():
        frames = [f.astype(int) for _, f in iter_frames(v.path)]
        assert len(frames) == v.n_frames == 80
        moving = {t for t, f in enumerate(frames) if np.abs(f - frames[0]).max() > 0}
        iv = ds.intervals[ds.intervals["video"] == v.video]
        annotated = {t for r in iv.itertuples() for t in range(r.onset + 1, r.offset)}
        assert moving <= annotated and set(iv["apex"]) <= moving
        for r in iv.itertuples():  # the apex is the frame furthest from neutral within its interval
            diffs = [np.abs(frames[t] - frames[0]).sum() for t in range(r.onset, r.offset + 1)]
            assert r.onset + int(np.argmax(diffs)) == r.apex
            assert r.type in ("micro", "macro") and r.label in ("negative", "positive", "surprise")


def test_synthetic_long_confounds_are_listed_and_carry_no_interval(tmp_path):
    opts = LongOptions(**{**QUIET, "blink_every": 1.0, "talking": 1.0, "drift": 1.0, "min_seconds": 40,
                          "max_seconds": 40, "videos_per_subject": 1, "subjects": 2})
    plans = plan_dataset(opts)
    assert all(p.blinks for p in plans) and all(p.talking for p in plans) and any(p.shifts for p in plans)
    for p in plans:  # expressions never overlap each other
        spans = sorted((e.onset, e.offset) for e in p.expressions)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


# --------------------------------------------------------------------------- fixtures of the real layouts


def _frames(folder: Path, numbers, name: str = "img{n}.jpg", size: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        cv2.imwrite(str(folder / name.format(n=n)), np.full((size, size), 100 + n % 50, np.uint8))


def _xlsx(path: Path, sheets: list[list[list]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for i, rows in enumerate(sheets):
        ws = wb.create_sheet(f"Sheet{i + 1}")
        for r in rows:
            ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def test_casme_sq_indexer_maps_participants_codes_and_frame_numbers(tmp_path):
    _frames(tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth", range(1, 41))
    _frames(tmp_path / "rawpic" / "s16" / "16_0102eatingworms", range(1, 31))
    _xlsx(tmp_path / "CAS(ME)^2code_final(Updated).xlsx", [
        [[1, "disgust1_1", 5, 8, 12, "4+7", "negative", "micro-expression", "disgust"],
         [1, "disgust1_2", 20, 25, 0, "12", "positive", "macro-expression", "happy"],  # offset 0: the apex ends it
         [2, "disgust2_1", 3, 4, 50, "1", "surprise", "macro-expression", "surprise"],  # beyond the folder
         [3, "disgust1_1", 3, 4, 5, "1", "surprise", "macro-expression", "surprise"]],  # unknown participant
        [["rule", 15, 1], ["rule", 16, 2]],
        [["0101", "disgust1"], ["0102", "disgust2"]],
    ])
    ds = index_long("casme-sq", tmp_path)
    assert sorted(ds.videos["video"]) == ["s15/15_0101disgustingteeth", "s16/16_0102eatingworms"]
    rows = ds.intervals[["video", "onset", "apex", "offset", "type", "label"]].values.tolist()
    assert rows == [["s15/15_0101disgustingteeth", 4, 7, 11, "micro", "negative"],
                    ["s15/15_0101disgustingteeth", 19, 24, 24, "macro", "positive"]]
    msgs = [p["message"] for p in ds.problems]
    assert any("row 2" in m and "offset" in m for m in msgs)
    assert any("row 3" in m and "offset frame 50 is not among" in m for m in msgs)
    assert any("row 4" in m and "participant '3'" in m for m in msgs)


def test_samm_lv_indexer_reads_the_sheet_below_its_title_rows(tmp_path):
    _frames(tmp_path / "SAMM_longvideos" / "006_1", range(1, 61), name="006_1_{n:04d}.jpg")
    header = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
              "Action Units", "Notes"]
    _xlsx(tmp_path / "SAMM_LongVideos_V3_Release.xlsx", [
        [["SAMM long videos"], [], ["legend"]] + [header]
        + [[6, "006_1_1", 1, 10, 14, 18, 9, "Micro - 1/2", "R12", ""],
           [6, "006_1_2", 1, 30, 40, 55, 26, "Macro", "6+12", ""],
           [6, "006_1_2", 1, 30, 40, 55, 26, "Macro", "6+12", ""]]])
    ds = index_long("samm-lv", tmp_path)
    assert ds.videos["subject"].tolist() == ["samm-lv:006"] and ds.videos["fps"].tolist() == [200.0]
    assert ds.intervals[["onset", "apex", "offset", "type"]].values.tolist() == [[9, 13, 17, "micro"],
                                                                                 [29, 39, 54, "macro"]]
    dup = [p for p in ds.problems if p["kind"] == "duplicate"]
    assert len(dup) == 1 and "row 7" in dup[0]["message"] and "first at" in dup[0]["message"]


def test_casme3_lv_indexer_reads_the_micro_and_macro_sheets(tmp_path):
    _frames(tmp_path / "part_A" / "spNO.1" / "a" / "color", range(1, 51), name="{n}.jpg")
    _xlsx(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [
        [["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"],
         ["spNO.1", "a", 10, 12, 15, "4", "1", "disgust"]]])
    _xlsx(tmp_path / "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx", [
        [["sub", "seq", "onset", "apex", "offset", "au", "emotion"],
         ["spNO.1", "a", 20, 30, 45, "12", "happy"],
         ["spNO.1", "b", 20, 30, 45, "12", "happy"]]])
    ds = index_long("casme3-lv", tmp_path)
    assert ds.intervals[["video", "onset", "offset", "type"]].values.tolist() == [["spNO.1/a", 9, 14, "micro"],
                                                                                  ["spNO.1/a", 19, 44, "macro"]]
    assert any("no frame folder for video 'spNO.1/b'" in p["message"] and p["row"] == 3 for p in ds.problems)


def _write_manifest(root: Path, rows: list[dict]) -> Path:
    path = root / "intervals.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["video", "subject", "onset", "apex", "offset", "type", "label"])
        w.writeheader()
        w.writerows(rows)
    return path


def _video(path: Path, n: int, size: int = 16) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (size, size), isColor=False)
    for t in range(n):
        w.write(np.full((size, size), t % 200, np.uint8))
    w.release()
    return path


def test_long_manifest_problems_name_the_file_and_row(tmp_path):
    _frames(tmp_path / "a" / "v1", range(30))
    _video(tmp_path / "b.mkv", 20)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "empty").mkdir()
    m = _write_manifest(tmp_path, [
        dict(video="a/v1", onset=2, apex=4, offset=8, type="micro", label="negative"),     # row 2: fine
        dict(video="a/v1", onset=2, apex=4, offset=8, type="micro", label="negative"),     # row 3: duplicate
        dict(video="a/v1", onset=20, apex=25, offset=35, type="macro", label=""),          # row 4: outside
        dict(video="a/v1", onset=10, apex=2, offset=12, type="micro", label=""),           # row 5: apex outside
        dict(video="a/v1", onset=9, apex=9, offset=5, type="micro", label=""),             # row 6: onset > offset
        dict(video="c/missing.mp4", onset=1, apex=2, offset=3, type="micro", label=""),    # row 7: unknown video
        dict(video="b.mkv", onset="", apex="", offset="", type="", label=""),              # row 8: no interval
        dict(video="broken.mp4", onset=1, apex=2, offset=3, type="micro", label=""),       # row 9: undecodable
        dict(video="empty", onset=1, apex=2, offset=3, type="micro", label=""),            # row 10: 0 frames
        dict(video="a/v1", onset=1, apex=2, offset=3, type="blink", label=""),             # row 11: unknown type
    ])
    ds = read_long_manifest(m)
    assert sorted(ds.videos["video"]) == ["a/v1", "b.mkv"]
    assert ds.intervals[["video", "onset", "apex", "offset"]].values.tolist() == [["a/v1", 2, 4, 8],
                                                                                  ["a/v1", 10, 11, 12]]
    by_row = {p["row"]: p for p in ds.problems}
    expect = {2: ("warning", "no frame rate for 'a/v1'"), 3: ("error", "listed twice"), 4: ("error", "outside video 'a/v1''s 30 frames (expected 0..29)"),
              5: ("warning", "apex 2 is outside onset 10..offset 12"), 6: ("error", "onset 9 is after offset 5"),
              7: ("error", "'c/missing.mp4' not found"), 9: ("error", "cannot be read"),
              10: ("error", "holds 0 frames"), 11: ("error", "neither micro nor macro")}
    for row, (severity, text) in expect.items():
        assert by_row[row]["severity"] == severity and text in by_row[row]["message"], by_row[row]
        assert by_row[row]["message"].startswith(f"intervals.csv row {row}:")
    assert set(by_row) == set(expect)


def test_datasets_check_decodes_the_videos_and_flags_intervals_beyond_them(tmp_path, capsys):
    """A container that declares more frames than decode: the check streams it and names the interval's row."""
    _video(tmp_path / "v.mkv", 30)
    _frames(tmp_path / "s2" / "v", range(12))
    m = _write_manifest(tmp_path, [dict(video="v.mkv", subject="s1", onset=2, apex=4, offset=8, type="micro"),
                                   dict(video="v.mkv", subject="s1", onset=20, apex=24, offset=29, type="macro"),
                                   dict(video="s2/v", onset=1, apex=2, offset=3, type="micro")])
    data = (tmp_path / "v.mkv").read_bytes()
    (tmp_path / "v.mkv").write_bytes(data[: len(data) // 2])  # cut short: the header still declares 30 frames
    code = main(["datasets", "check", "long-manifest", "--dataset-option", f"manifest={m}", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["counts"]["videos"] == 2
    msgs = [p["message"] for p in report["problems"]]
    assert any("intervals.csv row 3: interval 20..29 is outside video 'v.mkv'" in m for m in msgs), msgs
    assert any("declares 30 frames but only" in m for m in msgs)
    assert main(["datasets", "check", "long-manifest", "--root", str(m)]) == 1
    assert "intervals.csv row 3" in capsys.readouterr().out
