"""The sample table every indexer returns: what validate_table refuses (naming the row, clip and column)
and what it fills in."""
from __future__ import annotations

import pandas as pd
import pytest

from mer_core.datasets.schema import COLUMN_NAMES, REQUIRED, make_table, validate_table
from mer_core.errors import DatasetError


def _row(tmp_path, i: int = 0, **changes):
    frames = []
    for k in range(5):
        path = tmp_path / f"c{i}" / f"img{k}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        frames.append(str(path))
    row = {"dataset": "casme2", "subject": "casme2:sub01", "native_subject": "sub01", "clip": f"EP0{i}_01",
           "label": "negative", "frames": tuple(frames), "onset": 0, "apex": 2, "offset": 4}
    row.update(changes)
    return row


def test_a_good_table_gets_every_column_with_its_default(tmp_path) -> None:
    table = make_table([_row(tmp_path, 0), _row(tmp_path, 1, flow_path="/x/flow.png")])
    assert list(table.columns) == list(COLUMN_NAMES)
    first = table.iloc[0]
    assert first["sample_id"] == "casme2/sub01/EP00_01" and first["part"] == "casme2" and first["emotion"] == "negative"
    assert first["apex_method"] == "annotated" and not first["apex_estimated"] and first["fps"] == 0.0
    assert table["apex"].dtype.kind == "i" and table["cropped"].dtype == bool
    assert validate_table(table).equals(table)


def test_a_table_without_optional_columns_is_filled_from_the_required_ones(tmp_path) -> None:
    bare = pd.DataFrame([{**_row(tmp_path), "sample_id": "casme2/sub01/EP00_01"}])[list(REQUIRED)]
    table = validate_table(bare)
    assert table.loc[0, "native_subject"] == "casme2:sub01" and table.loc[0, "part"] == "casme2"
    assert table.loc[0, "flow_path"] == "" and table.loc[0, "first_frame"] == 0


def _bad(tmp_path, **changes) -> pd.DataFrame:
    """The table of two good clips with ``changes`` made to the second, as plain rows (object columns)."""
    rows = make_table([_row(tmp_path, 0), _row(tmp_path, 1)]).astype(object).to_dict("records")
    rows[1].update(changes)
    return pd.DataFrame(rows, dtype=object)


@pytest.mark.parametrize("changes, message", [
    ({"label": ""}, r"row 1 \(casme2/sub01/EP01_01\): column 'label' must be a non-empty string"),
    ({"subject": 7}, r"row 1 \(casme2/sub01/EP01_01\): column 'subject' must be a non-empty string, got 7"),
    ({"frames": ["a.jpg"]}, r"row 1 .*column 'frames' must be a tuple of paths, got list"),
    ({"apex": 5}, r"row 1 .*apex=5 is outside the clip's 5 frames \(expected 0..4\)"),
    ({"onset": -1}, r"row 1 .*onset=-1 is outside"),
    ({"onset": 3, "apex": 2}, r"row 1 .*expected onset <= apex <= offset, got onset=3, apex=2, offset=4"),
    ({"frames": (), "onset": -1, "apex": -1, "offset": -1},
     r"row 1 .*no frames and no precomputed input; expected frame paths or a flow_path / apex_image_path"),
    ({"sample_id": "casme2/sub01/EP00_01"}, r"duplicate sample_id\(s\) \['casme2/sub01/EP00_01'\]"),
])
def test_a_bad_row_is_refused_naming_its_row_clip_and_value(tmp_path, changes, message) -> None:
    with pytest.raises(DatasetError, match=message):
        validate_table(_bad(tmp_path, **changes))


def test_a_clip_with_only_a_precomputed_input_is_valid(tmp_path) -> None:
    table = validate_table(_bad(tmp_path, frames=(), onset=-1, apex=-1, offset=-1, flow_path="/data/flow/EP01.png"))
    assert table.loc[1, "frames"] == ()


def test_missing_required_columns_and_rows_are_named(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"lacks required column\(s\) \['label'\]"):
        validate_table(make_table([_row(tmp_path)]).drop(columns="label"))
    with pytest.raises(DatasetError, match=r"row 0: missing required field 'label' \(clip 'EP00_01'\)"):
        make_table([{k: v for k, v in _row(tmp_path).items() if k != "label"}])
