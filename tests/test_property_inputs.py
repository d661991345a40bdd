"""Property tests: every manifest row and every config value gives a result or a MerError, never another exception."""
from __future__ import annotations

import csv
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mer_core.config import ExperimentConfig
from mer_core.datasets.manifest import read_manifest
from mer_core.errors import MerError
from mer_core.keyvalue import parse_pairs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
cell = st.one_of(st.just(""), text, st.integers(-5, 500).map(str), st.floats(allow_nan=True).map(str),
                 st.sampled_from(["img1.jpg", "../../etc/passwd", "/nonexistent/x.png", "positive", "nan", "-1"]))
COLUMNS = ["subject", "clip", "label", "onset", "apex", "offset", "frames_dir", "flow_path", "apex_image_path",
           "fps", "emotion"]


@SETTINGS
@given(header=st.lists(st.sampled_from(COLUMNS + ["junk", ""]), min_size=1, max_size=8),
       rows=st.lists(st.lists(cell, min_size=0, max_size=9), max_size=5))
def test_any_manifest_indexes_or_says_why(tmp_path, header, rows):
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    try:
        table = read_manifest(path)
    except MerError:
        return
    assert {"sample_id", "subject", "label"} <= set(table.columns)


config_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), text),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)),
    max_leaves=6)
CONFIG_KEYS = ["model", "dataset", "preset", "epochs", "lr", "batch_size", "seed", "optimizer", "loss",
               "preprocess", "dataset_options", "model_options", "executor", "workers", "class_set", "selection",
               "patience", "dropout", "bogus_key"]


@SETTINGS
@given(data=st.dictionaries(st.sampled_from(CONFIG_KEYS), config_value, max_size=5))
def test_any_config_dict_builds_or_says_why(data):
    try:
        cfg = ExperimentConfig.from_dict(data)
    except MerError:
        return
    assert ExperimentConfig.from_json(cfg.to_json()).stable_hash() == cfg.stable_hash()


@SETTINGS
@given(doc=st.one_of(config_value, st.binary(max_size=40)))
def test_any_config_file_content_builds_or_says_why(tmp_path, doc):
    from mer_core.training.experiment import load_config_file

    path = tmp_path / "c.json"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        path.write_text(json.dumps(doc))
    try:
        load_config_file(path)
    except MerError:
        pass


@SETTINGS
@given(pairs=st.lists(st.tuples(st.sampled_from(["epochs", "lr", "seed", "augment", "preprocess.flow_method",
                                                 "nope", "selection", "x.y"]), text), max_size=4))
def test_any_set_pair_parses_or_names_the_key(pairs):
    items = [f"{k}={v}" for k, v in pairs]
    try:
        parse_pairs(items, ExperimentConfig, "--set")
    except MerError as exc:
        assert any(k in str(exc) for k, _ in pairs)
