"""MFDAN and STSTNet train under LOSO through the engine: synthetic clips and a
manifest of precomputed flow + apex images (no frames: image branch on 'apex')."""
from __future__ import annotations

import pytest
import torch

from fixtures_datasets import build_flow_manifest
from mer_core.config import ExperimentConfig
from mer_core.store.db import RunStore
from mer_core.training.engine import prepare_experiment, run_experiment

TINY_MFDAN = dict(input_size=32, embed_dim=16, heads=(2, 4), window=4)


def _finished(run_id: str) -> dict:
    store = RunStore()
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run["status"] == "done", run.get("error")
    return run


@pytest.mark.parametrize("model,preset,options", [
    ("mfdan", "cpu_apex", TINY_MFDAN),
    ("mfdan", "cpu", dict(TINY_MFDAN, image_channels=("apex",))),
    ("ststnet", "cpu", {}),
])
def test_loso_on_a_precomputed_flow_manifest(tmp_path, model, preset, options):
    path = build_flow_manifest(tmp_path / "flows", n_subjects=3, per_class=2, size=32)
    cfg = ExperimentConfig(dataset="manifest", dataset_options={"manifest": str(path)}, model=model, preset=preset,
                           model_options=options, epochs=1, batch_size=8, loss="focal", optimizer="adan",
                           augment=True)
    exp = prepare_experiment(cfg)
    assert exp.model_cfg.channels[-1] == ("apex" if model == "mfdan" else "strain")
    assert exp.x.shape[1:] == (len(exp.model_cfg.channels), exp.model_cfg.input_size, exp.model_cfg.input_size)
    assert float(torch.from_numpy(exp.x[:, -1]).abs().sum()) > 0  # real apex / strain values arrived
    run = _finished(run_experiment(cfg))
    assert run["summary"]["pooled"]["uf1"] >= 0


def test_loso_on_synthetic_frames_with_magnified_apex():
    cfg = ExperimentConfig(dataset="synthetic",
                           dataset_options=dict(subjects=3, clips_per_subject=4, size=48, frames=12),
                           model="mfdan", preset="cpu", model_options=TINY_MFDAN, epochs=1, batch_size=8,
                           loss="focal", optimizer="adan")
    exp = prepare_experiment(cfg)
    assert exp.model_cfg.image_channels == ("onset", "magnified_apex")
    run = _finished(run_experiment(cfg))
    assert len(run["summary"]["pooled"]) > 0
