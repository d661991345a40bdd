"""The linear floor: one linear layer on standardised flow pixels, statistics from the training data only."""
from __future__ import annotations

import torch

from mer_core.models import create_model


def test_linear_floor_is_one_linear_layer_on_the_three_flow_channels():
    model = create_model("linear", "cpu")
    assert model.config.channels == ("flow_u", "flow_v", "strain") and model.config.input_size == 28
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 3 * 28 * 28 * 3 + 3  # weights + biases of one layer, nothing else learns
    assert list(model.gradcam_layers()) == ["input"]


def test_standardisation_uses_training_statistics_only():
    torch.manual_seed(0)
    model = create_model("linear", "cpu")
    train = torch.randn(64, 3, 28, 28) * 2.0 + 5.0
    model.train()
    model(train)  # one training batch: the running statistics are the training data's
    mean = model.norm.running_mean.clone()
    assert torch.allclose(mean, train.flatten(1).mean(0), atol=1e-4)
    model.eval()
    test = torch.randn(8, 3, 28, 28) + 100.0  # a shifted test subject
    alone = model(test[:1])
    with_others = model(test)[:1]
    assert torch.allclose(alone, with_others)  # a test sample's output does not depend on other test samples
    assert torch.equal(model.norm.running_mean, mean)  # evaluation never updates the statistics


def test_a_training_batch_of_one_clip_is_standardised_with_the_statistics_so_far():
    model = create_model("linear", "cpu")
    model.train()
    model(torch.randn(16, 3, 28, 28) + 3.0)
    before = model.norm.running_mean.clone()
    out = model(torch.randn(1, 3, 28, 28))  # the last batch of an epoch can hold one clip
    assert out.shape == (1, 3) and torch.equal(model.norm.running_mean, before)
