"""Faithfulness, sanity and rank-based localisation measures on tiny hand-checkable models."""
import numpy as np
import pytest
import torch
from torch import nn

from mer_core.errors import MerError
from mer_core.explain.attributions import explain
from mer_core.explain.faithfulness import (infidelity_score, perturbation_curves, pixel_order, road_impute,
                                           sensitivity_score)
from mer_core.explain.localisation import score_map
from mer_core.explain.sanity import randomisation_check, rank_correlation, ssim

H = W = 8


class OnePixel(nn.Module):
    """Two classes; the logit gap is 4 x the value of pixel (r, c) of channel 0; nothing else is read."""

    def __init__(self, r: int = 2, c: int = 5) -> None:
        super().__init__()
        self.r, self.c = r, c
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        v = x[:, 0, self.r, self.c] * self.scale
        return torch.stack([v, -v], -1)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * H * W, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def _x(value: float = 1.0) -> np.ndarray:
    x = np.zeros((1, H, W), np.float32)
    x[0, 2, 5] = value
    return x


def test_a_one_pixel_model_gives_a_deletion_curve_that_drops_at_the_first_step():
    model, x = OnePixel(), _x()
    attr = explain(model, x, 0, "saliency").combined
    assert attr.argmax() == 2 * W + 5
    c = perturbation_curves(model, x, attr, 0, steps=10)
    d = np.array(c["deletion"])
    assert d[0] > 0.95 and np.allclose(d[1:], 0.5)  # removing pixel (2, 5) first: the evidence is gone at once
    ins = np.array(c["insertion"])
    assert ins[0] == pytest.approx(0.5) and np.all(ins[1:] > 0.95)
    assert c["deletion_auc"] < c["deletion_random_auc"] and c["insertion_auc"] > c["insertion_random_auc"]
    # a map pointing at the wrong pixel keeps the prediction until the very last step
    wrong = np.zeros((H, W))
    wrong[0, 0] = 1
    wrong[2, 5] = -1
    late = perturbation_curves(model, x, wrong, 0, steps=10, random_reference=False)
    assert late["deletion"][-2] > 0.95 and late["deletion_auc"] > c["deletion_auc"] + 0.3


def test_road_imputation_fills_holes_from_their_neighbours_and_the_road_curves_rank_the_maps():
    ramp = torch.linspace(0, 1, W).repeat(H, 1)[None, None]
    hole = np.zeros((H, W), bool)
    hole[3:5, 3:5] = True
    filled = road_impute(ramp, hole, noise=0.0)
    assert torch.allclose(filled[0, 0][hole], ramp[0, 0][hole], atol=0.02)  # a linear ramp is reproduced
    assert torch.equal(filled[0, 0][~hole], ramp[0, 0][~hole])
    everything = road_impute(ramp, np.ones((H, W), bool), noise=0.0)
    assert torch.isfinite(everything).all()
    model, x = OnePixel(), _x(3.0)
    good = np.zeros((H, W))
    good[2, 5] = 1
    c = perturbation_curves(model, x, good, 0, steps=4, fill="road", random_reference=False)
    assert c["morf"][0] > 0.99 and c["morf"][1] < 0.9  # the pixel is imputed from zeros around it
    assert c["morf_auc"] < c["lerf_auc"]


def test_a_random_noise_map_scores_at_chance():
    rng = np.random.default_rng(0)
    au = np.zeros((32, 32), bool)
    au[4:12, 6:20] = True
    area = au.mean()
    rows = [score_map(rng.random((32, 32)), au) for _ in range(200)]
    assert np.mean([r["roc_auc"] for r in rows]) == pytest.approx(0.5, abs=0.01)
    assert np.mean([r["rank_accuracy"] for r in rows]) == pytest.approx(area, abs=0.01)
    assert np.mean([r["topk_iou"] for r in rows]) == pytest.approx(rows[0]["iou_chance"], abs=0.01)
    flat = score_map(np.ones((32, 32)), au)  # ties shared out: exactly chance
    assert flat["roc_auc"] == pytest.approx(0.5) and flat["rank_accuracy"] == pytest.approx(area)
    perfect = score_map(au.astype(float), au)
    assert perfect["roc_auc"] == 1 and perfect["rank_accuracy"] == 1 and perfect["topk_iou"] == 1
    # faithfulness of noise maps: deletion areas average to the random-order reference
    model, x = TinyNet(), rng.random((1, H, W)).astype(np.float32)
    t = int(model(torch.as_tensor(x)[None]).argmax())
    d = [perturbation_curves(model, x, rng.random((H, W)), t, steps=8, seed=s) for s in range(30)]
    assert np.mean([c["deletion_auc"] for c in d]) == pytest.approx(np.mean([c["deletion_random_auc"] for c in d]),
                                                                   abs=0.03)


def test_a_method_that_ignores_the_weights_fails_the_randomisation_check():
    model = TinyNet()
    x = np.random.default_rng(1).random((1, H, W)).astype(np.float32)
    edges = randomisation_check(model, lambda m: np.abs(np.gradient(x[0])[0]))  # an edge map: no model in it
    assert edges["flagged"] and edges["spearman"][-1] == pytest.approx(1.0)
    sal = randomisation_check(model, lambda m: explain(m, x, 0, "saliency").combined, stages=2)
    assert not sal["flagged"] and len(sal["spearman"]) == 2 and sal["layers"][0] == "head"
    assert np.isfinite(sal["ssim"]).all()


def test_map_agreement_measures():
    a = np.arange(16.0).reshape(4, 4)
    assert rank_correlation(a, a ** 2) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(a, np.zeros_like(a)))
    img = np.random.default_rng(0).random((16, 16))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, np.random.default_rng(1).random((16, 16))) < 0.5
    with pytest.raises(MerError, match="rank correlation"):
        rank_correlation(a, np.zeros(3))


def test_captum_infidelity_and_sensitivity_prefer_the_map_of_the_pixel_the_model_reads():
    model, x = OnePixel(), _x(0.5)
    right = np.zeros((H, W), np.float32)
    right[2, 5] = 1
    wrong = np.zeros((H, W), np.float32)
    wrong[6, 1] = 1
    assert infidelity_score(model, x, right, 0) < infidelity_score(model, x, wrong, 0)
    steady = sensitivity_score(lambda one: explain(model, one.numpy(), 0, "saliency").combined, x)
    assert steady == pytest.approx(0.0, abs=1e-6)  # the gradient of a linear read does not depend on x
    assert sensitivity_score(lambda one: one.numpy()[0] ** 3, x, radius=0.5) > 0


def test_bad_requests_are_named():
    with pytest.raises(MerError, match="fill"):
        perturbation_curves(OnePixel(), _x(), np.ones((H, W)), 0, fill="holes")
    with pytest.raises(MerError, match="map is"):
        perturbation_curves(OnePixel(), _x(), np.ones((3, 3)), 0)
    assert sorted(pixel_order(np.ones((2, 2)))) == [0, 1, 2, 3]
