"""Every registered model: shapes, gradients, the width knob and the paper's architectures."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from trainables.models import MODELS, build_model

# Small but valid inputs per model: ResNet-50 is for large images, so it gets 64x64 at width 1/4.
SMALL = {"resnet50": ((3, 64, 64), 0.25)}
DEFAULT = ((3, 32, 32), 0.25)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward_and_features(name):
    shape, width = SMALL.get(name, DEFAULT)
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, width=width, image_shape=shape)
    x = torch.randn(4, *shape)
    out = model(x)
    assert out.shape == (4, 3)
    feats = model.features(x)
    assert feats.shape == (4, model.feature_dim)
    assert isinstance(model.head, nn.Module)
    torch.testing.assert_close(model.head(feats), out)  # forward = head(features)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_width_changes_parameter_count(name):
    shape, width = SMALL.get(name, DEFAULT)
    small = build_model(name, 2, width, shape)
    larger = build_model(name, 2, 2 * width, shape)
    assert n_params(larger) > n_params(small)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as e:
        build_model("lenet", 2)
    for name in MODELS:
        assert name in str(e.value)


def test_mlp_is_the_papers():
    model = build_model("mlp", num_classes=2)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (3072, 1024), (1024, 512), (512, 256), (256, 64), (64, 2)]
    kinds = [type(m).__name__ for m in model.body]
    # ReLU then BatchNorm after each of the first three layers, no BatchNorm after the fourth
    assert kinds == ["Flatten"] + ["Linear", "ReLU", "BatchNorm1d"] * 3 + ["Linear", "ReLU"]


def test_vit_is_the_authors():
    """models/vit.py of the authors with batch_norm=True: token BatchNorm in the blocks, the head a
    BatchNorm1d of the cls vector then Linear, cls token and position embedding ~ N(0, 1)."""
    torch.manual_seed(0)
    model = build_model("vit", num_classes=2)
    assert [type(m).__name__ for m in model.head] == ["BatchNorm1d", "Linear"]
    assert model.head[0].num_features == model.feature_dim == 256
    assert 0.9 < model.pos.std().item() < 1.1 and 0.8 < model.cls.std().item() < 1.2
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2 * 6 + 1


def test_resnet18_is_the_cifar_variant():
    model = build_model("resnet18", num_classes=10)
    assert abs(n_params(model) - 11.17e6) < 0.02e6  # 11,173,962 for the CIFAR ResNet-18 with 10 classes
    stem = model.stem[0]
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.feature_dim == 512
    assert build_model("resnet18", 2, width=0.5).feature_dim == 256
