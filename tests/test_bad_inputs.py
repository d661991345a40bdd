"""Damaged or odd inputs are named, never silently used: bad .npy flow arrays, a 1x1 flow image,
typo labels, a FIFO given as a manifest."""
from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from mer_core.datasets.check import check_dataset
from mer_core.datasets.manifest import read_manifest
from mer_core.errors import DatasetError


def _npy_manifest(root, arrays: dict[str, np.ndarray], labels: dict[str, str] | None = None):
    lines = ["subject,clip,label,flow_image"]
    for i, (name, arr) in enumerate(arrays.items()):
        np.save(root / f"{name}.npy", arr, allow_pickle=arr.dtype == object)
        lines.append(f"s{i % 2},{name},{(labels or {}).get(name, 'negative')},{name}.npy")
    path = root / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _good(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(16, 16, 2)).astype(np.float32)


def test_the_check_flags_object_and_non_finite_npy_flows(tmp_path):
    obj = np.empty((4, 4, 2), dtype=object)
    obj[:] = 1.0
    nan = np.full((16, 16, 2), np.nan, np.float32)
    some = _good(2)
    some[3, 4, 1] = np.inf
    path = _npy_manifest(tmp_path, {"good": _good(), "good2": _good(1), "objects": obj, "allnan": nan, "someinf": some})
    report = check_dataset("manifest", manifest=str(path), frames="none")
    assert not report.usable
    text = report.to_text()
    by_file = {os.path.basename(p["file"]): p for p in report.errors}
    assert set(by_file) == {"objects.npy", "allnan.npy", "someinf.npy"}, text
    assert "object" in by_file["objects.npy"]["message"]
    assert "all 512 values are NaN or infinite" in by_file["allnan.npy"]["message"]
    assert "1 of 512 values" in by_file["someinf.npy"]["message"]


def test_training_refuses_a_non_finite_flow_by_name(tmp_path):
    from mer_core.preprocess.flow import read_flow_file

    np.save(tmp_path / "allnan.npy", np.full((16, 16, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"allnan\.npy.*512 non-finite"):
        read_flow_file(str(tmp_path / "allnan.npy"), "npy", 8)
    np.save(tmp_path / "ok.npy", _good())
    assert all(np.isfinite(m).all() for m in read_flow_file(str(tmp_path / "ok.npy"), "npy", 8))


def test_a_1x1_flow_image_is_warned_about(tmp_path):
    lines = ["subject,clip,label,flow_image"]
    for i in range(4):
        size = 1 if i == 0 else 24
        img = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
        lines.append(f"s{i % 2},c{i},negative,f{i}.png")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    report = check_dataset("manifest", manifest=str(tmp_path / "manifest.csv"), frames="none")
    tiny = [p for p in report.warnings if p["kind"] == "flow_size"]
    assert len(tiny) == 1 and "f0.png" in tiny[0]["message"] and "1x1" in tiny[0]["message"]
    np.save(tmp_path / "t.npy", np.zeros((1, 1, 2), np.float32))
    (tmp_path / "npy.csv").write_text("subject,clip,label,flow_image\na,c,negative,t.npy\nb,d,negative,t.npy\n")
    report = check_dataset("manifest", manifest=str(tmp_path / "npy.csv"), frames="none")
    assert [p for p in report.warnings if p["kind"] == "flow_size" and "1x1" in p["message"]]


def test_typo_labels_are_warned_about_and_listed_by_the_check(tmp_path):
    path = _npy_manifest(tmp_path, {f"c{i}": _good(i) for i in range(5)},
                         labels={"c0": "happiness", "c1": "Happy", "c2": "banana", "c3": "surprise", "c4": "banana"})
    table = read_manifest(path)
    warned = [p for p in table.attrs["problems"] if p["kind"] == "label"]
    assert len(warned) == 1 and "'banana'" in warned[0]["message"] and "rows 4, 6" in warned[0]["message"]
    report = check_dataset("manifest", manifest=str(path), frames="none")
    assert "'banana'" in report.to_text() and report.usable  # a warning: a dataset may have its own classes


def test_a_fifo_given_as_the_manifest_is_refused(tmp_path):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    result: list = []

    def index() -> None:
        try:
            read_manifest(fifo)
        except DatasetError as exc:
            result.append(str(exc))

    worker = threading.Thread(target=index, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader so the test run can end
        with open(fifo, "w") as fh:
            fh.write("")
        pytest.fail("reading a FIFO manifest blocked")
    assert result and "not a regular file" in result[0] and "manifest.csv" in result[0]
    with pytest.raises(DatasetError, match="not a regular file"):
        read_manifest("/dev/zero")
    with pytest.raises(DatasetError, match="not a regular file"):
        read_manifest(tmp_path)  # the folder's manifest.csv is that FIFO
