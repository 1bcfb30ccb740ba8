"""Layer spec on the bundled models: shortcuts, pooling windows, shapes, unsupported ops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snntopo.encode.layers import UnsupportedOpError, layer_spec
from snntopo.models import build_model, prunable_parameters


@pytest.fixture(scope="module")
def specs():
    out = {}
    for arch in ("conv6", "resnet20", "resnet32", "wrn28_2"):
        model = build_model(arch, num_classes=10, seed=0)
        out[arch] = (model, layer_spec(model, (3, 32, 32), arch=arch, num_classes=10))
    return out


@pytest.mark.parametrize(
    ("arch", "n_short", "n_ident"),
    [("conv6", 0, 0), ("resnet20", 2, 7), ("resnet32", 2, 13), ("wrn28_2", 3, 9)],
)
def test_shortcuts(specs, arch, n_short, n_ident):
    model, spec = specs[arch]
    short = [lay for lay in spec["layers"] if lay["role"] == "shortcut"]
    assert len(short) == n_short
    assert len(spec["identity_shortcuts"]) == n_ident
    blocks = {b["name"]: b["shape"] for b in spec["blocks"]}
    for lay in short:
        assert lay["kernel"] == [1, 1]
        assert lay["out_block"] in blocks and lay["out_block"] != lay["name"]
        assert blocks[lay["out_block"]] == lay["out_shape"]
    # Every prunable parameter appears exactly once, in module order.
    assert [lay["param"] for lay in spec["layers"]] == [n for n, _ in prunable_parameters(model)]


def test_resnet_shapes_and_pool(specs):
    _, spec = specs["resnet20"]
    lay = {x["name"]: x for x in spec["layers"]}
    assert lay["conv1"]["in_shape"] == [3, 32, 32] and lay["conv1"]["out_shape"] == [16, 32, 32]
    assert lay["layer2.0.conv1"]["stride"] == [2, 2]
    assert lay["layer2.0.conv1"]["out_shape"] == [32, 16, 16]
    sc = lay["layer2.0.shortcut.0"]
    assert sc["in_block"] == "layer1.2.conv2" and sc["out_block"] == "layer2.0.conv2"
    assert lay["linear"]["flatten"] is True
    assert lay["linear"]["pools"] == [
        {
            "kind": "avg",
            "kernel": [8, 8],
            "stride": [8, 8],
            "padding": [0, 0],
            "in_shape": [64, 8, 8],
            "out_shape": [64, 1, 1],
        }
    ]
    assert spec["blocks"][0] == {"name": "input", "shape": [3, 32, 32]}
    assert spec["blocks"][-1] == {"name": "linear", "shape": [10]}
    assert len(spec["blocks"]) == 1 + 19 + 1


def test_conv6_pools(specs):
    _, spec = specs["conv6"]
    pooled = {x["name"]: x["pools"] for x in spec["layers"] if x["pools"]}
    assert list(pooled) == ["features.7", "features.14", "classifier.1"]
    assert all(p[0]["kind"] == "max" and p[0]["kernel"] == [2, 2] for p in pooled.values())
    assert pooled["classifier.1"][0]["in_shape"] == [256, 8, 8]


def test_wrn_preact_shortcut(specs):
    _, spec = specs["wrn28_2"]
    lay = {x["name"]: x for x in spec["layers"]}
    sc = lay["block1.0.conv_shortcut"]
    assert sc["in_block"] == "conv1" and sc["out_block"] == "block1.0.conv2"
    assert lay["block2.0.conv_shortcut"]["stride"] == [2, 2]


def test_width_and_input_size():
    model = build_model("resnet20", width=0.5, input_size=16, num_classes=7, seed=0)
    spec = layer_spec(model, (3, 16, 16))
    assert spec["num_classes"] == 7
    assert spec["layers"][0]["out_shape"] == [8, 16, 16]
    assert spec["layers"][-1]["pools"][0]["kernel"] == [4, 4]


class Structural(nn.Module):
    """Unnamed projection: the shortcut is found by structure (older input block)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.p = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        return self.p(x) + self.b(torch.relu(self.a(x)))


def test_structural_shortcut_fallback():
    spec = layer_spec(Structural(), (2, 5, 5))
    lay = {x["name"]: x for x in spec["layers"]}
    assert lay["p"]["role"] == "shortcut" and lay["p"]["out_block"] == "b"
    assert [b["name"] for b in spec["blocks"]] == ["input", "a", "b"]


class Concat(nn.Module):
    """Concatenation along a spatial dimension (channels are supported, rows are not)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 1)
        self.b = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.b(torch.cat([self.a(x), x], 2))


class Upsample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.up(self.a(x))


@pytest.mark.parametrize(
    ("model", "name"), [(Concat(), "cat along dim 2"), (Upsample(), "Upsample")]
)
def test_unsupported_ops_named(model, name):
    with pytest.raises(UnsupportedOpError, match=name) as err:
        layer_spec(model, (2, 4, 4), arch="mine")
    # one line naming the model and the module where the op sits
    assert "model mine" in str(err.value) and "in module" in str(err.value)
    assert "\n" not in str(err.value)
