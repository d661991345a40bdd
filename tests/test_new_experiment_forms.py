"""New experiment form: the auto preset says what it chose and why, a preset the dataset cannot feed is an
error under the field, and pre-training offers only macro sources (never the evaluation dataset)."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import unescape
from dashboard.views import new_experiment as ne
from mer_core.datasets.synthetic.export import export_public


def _script():
    from dashboard.views import new_experiment

    new_experiment.render()


@pytest.fixture
def flow_apex(isolated_cache):
    return export_public(isolated_cache / "export", "flow-apex", subjects=2).parent  # inside the allowed cache


def _form(dataset: str, model: str, options: str = "", preset: str | None = None) -> AppTest:
    at = AppTest.from_function(_script, default_timeout=60)
    at.session_state[ne.K_DATASET] = dataset
    at.session_state[f"ne_options_{dataset}"] = options
    at.session_state[ne.K_MODEL] = model
    if preset:
        at.session_state[f"{ne.K_PRESET}_{model}"] = preset
    at.run()
    assert not at.exception, at.exception
    return at


def test_auto_preset_shows_its_choice_for_a_flow_apex_manifest(flow_apex):
    at = _form("manifest", "dense_attention", f"manifest={flow_apex}")
    assert at.selectbox(key=f"{ne.K_PRESET}_dense_attention").value == "auto"
    captions = [c.value for c in at.caption]
    assert "auto -> cpu_motion: this dataset has flow and apex images, no frames" in captions
    assert not at.error, [e.value for e in at.error]


def test_a_preset_the_dataset_cannot_feed_is_an_error_and_blocks_submit(flow_apex):
    at = _form("manifest", "dense_attention", f"manifest={flow_apex}", preset="cpu")
    errors = [unescape(e.value) for e in at.error]  # messages are shown as text (Markdown escaped)
    assert any("presets of dense_attention that fit: cpu_flow_apex, cpu_motion, cpu_apex" in e for e in errors), errors
    assert at.button(key=ne.K_SUBMIT).disabled


def test_pretraining_offers_only_macro_sources_and_refuses_the_evaluation_set():
    at = _form("synthetic", "dense_attention", "subjects=2")
    box = at.selectbox(key=ne.key("pretrain", "dense_attention", "cpu"))
    assert list(box.options) == ["none", "synthetic-macro"]  # no micro dataset, no casme2/samm/smic
    at = _form("synthetic-macro", "dense_attention", "subjects=2")
    box = at.selectbox(key=ne.key("pretrain", "dense_attention", "cpu"))
    box.set_value("synthetic-macro")
    at.run()
    errors = [unescape(e.value) for e in at.error]
    assert any("it is the evaluation dataset itself" in e for e in errors), errors
    assert at.button(key=ne.K_SUBMIT).disabled


def test_auto_does_not_read_a_manifest_outside_the_allowed_folders(tmp_path, monkeypatch):
    outside = export_public(tmp_path / "outside", "flow-apex", subjects=1).parent
    from mer_core.training import experiment

    read = []
    monkeypatch.setattr(experiment, "choose_preset", lambda *a, **k: read.append(a) or ("cpu", "read it"))
    at = _form("manifest", "dense_attention", f"manifest={outside}")
    assert read == [] and "read it" not in [c.value for c in at.caption]
    assert any("lies outside the folders this dashboard may read" in e.value for e in at.error)
    assert at.button(key=ne.K_SUBMIT).disabled
