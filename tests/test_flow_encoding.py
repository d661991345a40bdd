"""Flow-image encodings (centered / minmax / npy), the dataset check's min-max warning,
and bad precomputed inputs named by row."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from mer_core.config import PreprocessConfig
from mer_core.datasets.check import check_dataset
from mer_core.datasets.manifest import read_manifest
from mer_core.datasets.synthetic.export import export_public
from mer_core.errors import DatasetError
from mer_core.preprocess.channels import FLOW_SCALE
from mer_core.preprocess.pipeline import prepare_inputs
from mer_core.preprocess.sample import SampleError, process_sample

FLOW3 = ("flow_u", "flow_v", "strain")


@pytest.fixture(scope="module")
def minmax_set(tmp_path_factory):
    return export_public(tmp_path_factory.mktemp("mm") / "x", "flow-apex", subjects=2)


def _redeclare(manifest, out, encoding):
    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    raw["flow_encoding"] = encoding
    raw["flow_image"] = [str(manifest.parent / p) for p in raw.flow_image]
    raw["apex_image"] = [str(manifest.parent / p) for p in raw.apex_image]
    out.parent.mkdir(parents=True, exist_ok=True)
    raw.to_csv(out, index=False)
    return out


def test_minmax_images_declared_centered_are_warned_about(minmax_set, tmp_path):
    wrong = _redeclare(minmax_set, tmp_path / "wrong" / "manifest.csv", "")
    report = check_dataset("manifest", manifest=str(wrong))
    warned = [p for p in report.warnings if p["kind"] == "flow_encoding"]
    assert len(warned) == 1 and "flow_encoding=minmax" in warned[0]["message"]
    right = check_dataset("manifest", manifest=str(minmax_set))
    assert right.usable and not [p for p in right.warnings if p["kind"] == "flow_encoding"]


def test_minmax_decoding_recentres_zero_motion(tmp_path):
    u = np.zeros((28, 28), np.float32)
    u[10:14, 10:14] = 3.0  # a patch moves right, the rest is still
    img = np.stack([u, -u, np.abs(u)], -1)
    img = ((img - img.min((0, 1))) / np.ptp(img, (0, 1)) * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "f.png"), img[..., ::-1])
    (tmp_path / "manifest.csv").write_text("subject,clip,label,flow_image,flow_encoding\na,c1,negative,f.png,minmax\n"
                                           "a,c2,negative,f.png,centered\n")
    table = read_manifest(tmp_path / "manifest.csv")
    out = prepare_inputs(table, FLOW3, 28, PreprocessConfig())
    mm, centred = out.x[0], out.x[1]
    assert abs(float(mm[0, 0, 0])) < 0.02 and mm[0, 12, 12] > 0.9 and mm[1, 12, 12] < -0.9
    assert abs(float(centred[0, 0, 0])) > 0.9  # read as centered, the still background looks like fast motion
    assert out.report.flow_method.tolist() == ["precomputed (minmax)", "precomputed"]


def test_npy_flow_is_in_pixels_and_rescaled_to_the_input_size(tmp_path):
    arr = np.zeros((2, 40, 40), np.float32)
    arr[0] = 2.0  # 2 px to the right at 40 px
    np.save(tmp_path / "f.npy", arr)
    (tmp_path / "manifest.csv").write_text("subject,clip,label,flow_image\na,c1,negative,f.npy\n")
    table = read_manifest(tmp_path / "manifest.csv")
    assert table.flow_encoding.tolist() == ["npy"]
    x, info = process_sample(table.iloc[0], FLOW3, 20, PreprocessConfig())
    assert np.allclose(x[0], 1.0 / FLOW_SCALE, atol=1e-4) and np.allclose(x[1], 0) and np.allclose(x[2], 0, atol=1e-4)
    (tmp_path / "bad.csv").write_text("subject,clip,label,flow_image,flow_encoding\na,c1,negative,f.npy,minmax\n")
    with pytest.raises(DatasetError, match="bad.csv row 2: flow_encoding='minmax' does not fit f.npy"):
        read_manifest(tmp_path / "bad.csv", strict=True)


def test_grey_flow_image_is_named_by_check_and_preprocessing(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((28, 28), 128, np.uint8))
    (tmp_path / "manifest.csv").write_text("subject,clip,label,flow_image\na,c1,negative,g.png\nb,c1,positive,g.png\n")
    report = check_dataset("manifest", manifest=str(tmp_path))
    errors = [p for p in report.errors if p["kind"] == "flow_image"]
    assert errors and "a/c1" in errors[0]["message"] and "1 channel" in errors[0]["message"]
    table = read_manifest(tmp_path / "manifest.csv")
    with pytest.raises(SampleError, match="g.png has 1 channel.*expected 3 channels"):
        process_sample(table.iloc[0], FLOW3, 28, PreprocessConfig())


def test_apex_image_of_another_size_is_named(minmax_set, tmp_path):
    odd = pd.read_csv(minmax_set, dtype=str).apex_image.iloc[-1]
    img = cv2.imread(str(minmax_set.parent / odd))
    cv2.imwrite(str(minmax_set.parent / odd), cv2.resize(img, (100, 120)))
    try:
        report = check_dataset("manifest", manifest=str(minmax_set))
        odd_rows = [p for p in report.warnings if p["kind"] == "apex_size"]
        assert len(odd_rows) == 1 and "100x120" in odd_rows[0]["message"] and "224x224" in odd_rows[0]["message"]
    finally:
        cv2.imwrite(str(minmax_set.parent / odd), img)


def test_a_manifest_mixing_forms_names_the_odd_row(tmp_path):
    (tmp_path / "clip").mkdir()
    for t in range(3):
        cv2.imwrite(str(tmp_path / "clip" / f"img{t}.png"), np.full((16, 16), 9 * t, np.uint8))
    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "m.csv").write_text("subject,clip,label,frames_dir,flow_image\na,c1,negative,clip,\n"
                                    "b,c1,negative,,f.png\nc,c1,negative,clip,\n")
    with pytest.raises(DatasetError, match=r"m.csv row 3: gives precomputed images and no frames_dir.*one form"):
        read_manifest(tmp_path / "m.csv")


def test_a_folder_must_hold_one_csv_and_errors_name_the_flag(tmp_path):
    (tmp_path / "a.csv").write_text("subject,clip,label,flow_image\n")
    (tmp_path / "b.csv").write_text("subject,clip,label,flow_image\n")
    with pytest.raises(DatasetError, match=r"--dataset-option manifest=.*2 CSV files \(a.csv, b.csv\)"):
        read_manifest(tmp_path)
    with pytest.raises(DatasetError, match=r"--dataset-option manifest=.*not found"):
        read_manifest(tmp_path / "nope.csv")


def test_datasets_check_takes_the_manifest_flag_as_mer_loso_does(minmax_set, tmp_path, capsys):
    from mer_core.cli import main

    assert main(["datasets", "check", "manifest", "--dataset-option", f"manifest={minmax_set.parent}"]) == 0
    assert "usable" in capsys.readouterr().out
    (tmp_path / "a.csv").write_text("subject,clip,label,flow_image\n")
    (tmp_path / "b.csv").write_text("subject,clip,label,flow_image\n")
    assert main(["datasets", "check", "manifest", "--dataset-option", f"manifest={tmp_path}"]) == 2
    assert "--dataset-option manifest=" in capsys.readouterr().err
