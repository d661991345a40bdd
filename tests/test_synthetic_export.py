"""The composite-shaped public-format export of the synthetic set (``mer synth --export``)."""
from __future__ import annotations

import json

import cv2
import pandas as pd
import pytest

from mer_core.cli import main
from mer_core.datasets.manifest import read_manifest
from mer_core.datasets.synthetic.export import export_counts, export_public, plan_export
from mer_core.errors import ConfigError, DatasetError

COMPOSITE = {"casme2": (24, {"negative": 88, "positive": 32, "surprise": 25}),
             "samm": (28, {"negative": 92, "positive": 26, "surprise": 15}),
             "smic": (16, {"negative": 70, "positive": 51, "surprise": 43})}


def test_full_flow_apex_export_has_the_composite_counts_and_image_sizes(tmp_path, capsys):
    assert main(["synth", "--export", "flow-apex", str(tmp_path / "x"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["clips"], summary["subjects"]) == (442, 68)
    assert summary["counts"] == {"negative": 250, "positive": 109, "surprise": 83}
    table = read_manifest(tmp_path / "x", class_set="native")
    assert table.attrs.get("problems", []) == []
    for part, (n_subjects, counts) in COMPOSITE.items():
        rows = table[table.dataset == part]
        assert rows.subject.nunique() == n_subjects, part
        assert rows.label.value_counts().to_dict() == counts, part
    raw = pd.read_csv(tmp_path / "x" / "manifest.csv", dtype=str)
    assert set(raw.flow_encoding) == {"minmax"}
    flow = cv2.imread(table.flow_path.iloc[0], cv2.IMREAD_UNCHANGED)
    apex = cv2.imread(table.apex_image_path.iloc[0], cv2.IMREAD_UNCHANGED)
    assert flow.shape == (28, 28, 3) and apex.shape == (224, 224, 3)
    # per-image min-max: every channel spans 0..255 on its own
    assert flow.reshape(-1, 3).min(0).tolist() == [0, 0, 0]
    assert flow.reshape(-1, 3).max(0).tolist() == [255, 255, 255]


def test_apex_only_export_with_fewer_subjects_takes_every_part(tmp_path):
    manifest = export_public(tmp_path / "a", "apex-only", subjects=3)
    table = read_manifest(manifest, class_set="native")
    assert sorted(table.dataset.unique()) == ["casme2", "samm", "smic"]
    assert table.subject.nunique() == 3
    assert table.flow_path.isna().all() or (table.flow_path.fillna("") == "").all()
    assert len(table) == export_counts(plan_export(3))["clips"]


def test_export_refuses_a_foreign_folder_and_unknown_forms(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="did not write.*mine.txt"):
        export_public(tmp_path, "apex-only", subjects=1)
    with pytest.raises(ConfigError, match="expected one of flow-apex, apex-only, frames"):
        export_public(tmp_path / "n", "videos", subjects=1)
    with pytest.raises(ConfigError, match="1..68"):
        plan_export(69)
