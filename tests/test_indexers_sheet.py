"""The generic coding-sheet reader: a new sheet-based dataset is a CodingSheet, not a new parser."""
from __future__ import annotations

from fixtures_datasets import write_image, write_xlsx

from mer_core.datasets._common import Problems, load_clip_frames
from mer_core.datasets.sheet import CodingSheet, index_coding_sheet

SPEC = CodingSheet(
    dataset="toy",
    title="toy coding sheet",
    files=("toy-coding*.xlsx",),
    root_hint="the folder holding toy-coding.xlsx",
    emotions=("happiness", "other", "surprise"),
    class_sets=("native",),
    fps=90.0,
    subject=lambda v: f"p{int(v)}" if str(v).strip().isdigit() else str(v or "").strip(),
    frame_names=("f{n}.png",),
)


def _build(root):
    for clip, numbers in (("c1", (7, 8, 9)), ("c2", (1, 2)), ("c4", (3, 4, 5))):
        for k, n in enumerate(numbers):
            write_image(root / "frames" / "p1" / clip / f"f{n}.png", value=30 * k)
    rows = [
        [1, "c1", 7, 8, 9, "Happy", "AU12"],
        [None, "c2", 1, 2, 2, "surprise", ""],  # empty subject
        [1, "c3", 1, 2, 3, "Others", ""],  # no folder
        [1, "c4", 3, "/", 5, "SURPRISED", "AU1+AU2"],  # apex not a number
        [1, "c5", 1, 2, 3, "anger", ""],  # outside the vocabulary
    ]
    legend = [["Toy dataset"], ["frame numbers are file numbers"]]
    write_xlsx(root / "toy-coding-v2.xlsx", ["Sub", "Clip", "Onset Frame", "Apex", "offset_frame", "Emotion", "AUs"], rows, title_rows=legend)
    return root


def test_a_sheet_described_by_a_codingsheet_indexes_with_problems_per_row(tmp_path):
    root = _build(tmp_path)
    path = SPEC.locate(SPEC.root(root))

    def frames_of(row, problems: Problems):
        return load_clip_frames(root / "frames" / row.subject / row.clip, where=row.where, line=row.line, sid=row.sample_id, problems=problems, file=row.sheet, names=SPEC.expected_frames())

    table = index_coding_sheet(SPEC, path, frames_of, class_set="native", cropped=True)
    rows = {r["sample_id"]: r for r in table.to_dict("records")}
    assert set(rows) == {"toy/p1/c1", "toy/p1/c4"}
    c1, c4 = rows["toy/p1/c1"], rows["toy/p1/c4"]
    assert (c1["emotion"], c1["onset"], c1["apex"], c1["offset"], c1["first_frame"]) == ("happiness", 0, 1, 2, 7)
    assert (c1["fps"], c1["subject"], c1["action_units"], c1["cropped"]) == (90.0, "toy:p1", "AU12", True)
    assert c4["emotion"] == "surprise" and c4["apex_estimated"]
    by_row = {p["row"]: p for p in table.attrs["problems"]}
    assert "empty Subject" in by_row[5]["message"]  # 2 legend rows + header: data starts at row 4
    assert by_row[6]["kind"] == "missing_frames" and "c3" in by_row[6]["message"]
    assert by_row[7]["kind"] == "apex" and "toy-coding-v2.xlsx row 7" in by_row[7]["message"]
    assert by_row[8]["kind"] == "label" and "'anger'" in by_row[8]["message"] and "'other'" in by_row[8]["message"]
