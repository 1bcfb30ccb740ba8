"""Parameter counts pinned to numbers computed here from the papers' layer lists (not from the
model code), and output shapes for the input sizes we use."""

from __future__ import annotations

import pytest
import torch

from snntopo.models import MODELS, build_model, prunable_parameters


def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_out * c_in * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight + bias (running stats are buffers)


def linear(c_in: int, c_out: int) -> int:
    return c_in * c_out + c_out


def conv6_count(classes: int = 10) -> tuple[int, int]:
    """Frankle & Carbin's CONV-6 (64,64,P,128,128,P,256,256,P; FC 256,256,C) with biases + BN."""
    widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    total = sum(conv(i, o, 3, bias=True) + bn(o) for i, o in widths)
    total += linear(256 * 4 * 4, 256) + bn(256) + linear(256, 256) + bn(256) + linear(256, classes)
    weights = sum(i * o * 9 for i, o in widths) + 4096 * 256 + 256 * 256 + 256 * classes
    return total, weights


def cifar_resnet_count(n: int, classes: int = 10) -> tuple[int, int]:
    """He et al.'s CIFAR ResNet (6n+2) with 1x1 projection shortcuts + BN where shapes change."""
    total = conv(3, 16, 3) + bn(16)
    weights = conv(3, 16, 3)
    c_in = 16
    for c_out in (16, 32, 64):
        for i in range(n):
            a = c_in if i == 0 else c_out
            block_w = conv(a, c_out, 3) + conv(c_out, c_out, 3)
            total += block_w + 2 * bn(c_out)
            weights += block_w
            if a != c_out:
                total += conv(a, c_out, 1) + bn(c_out)
                weights += conv(a, c_out, 1)
        c_in = c_out
    total += linear(64, classes)
    weights += 64 * classes
    return total, weights


def wrn_count(depth: int = 28, k: int = 2, classes: int = 10) -> tuple[int, int]:
    """Zagoruyko & Komodakis' WRN-d-k: pre-activation blocks, 1x1 shortcut when in != out."""
    n = (depth - 4) // 6
    total = weights = conv(3, 16, 3)
    c_in = 16
    for c_out in (16 * k, 32 * k, 64 * k):
        for i in range(n):
            a = c_in if i == 0 else c_out
            block_w = conv(a, c_out, 3) + conv(c_out, c_out, 3)
            total += bn(a) + block_w + bn(c_out)
            weights += block_w
            if a != c_out:
                total += conv(a, c_out, 1)
                weights += conv(a, c_out, 1)
        c_in = c_out
    total += bn(64 * k) + linear(64 * k, classes)
    weights += 64 * k * classes
    return total, weights


EXPECTED = {
    # arch: (independent count, published size in millions as the papers round it). Frankle &
    # Carbin count CONV-6's conv/linear weights only (2.26M); the ResNet/WRN papers count all.
    "conv6": (conv6_count(), 2.26),
    "resnet20": (cifar_resnet_count(3), 0.27),
    "resnet32": (cifar_resnet_count(5), 0.47),
    "wrn28_2": (wrn_count(), 1.47),
}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_parameter_count_matches_layer_list(arch):
    (total, weights), published_m = EXPECTED[arch]
    model = build_model(arch, num_classes=10, width=1.0)
    assert sum(p.numel() for p in model.parameters()) == total
    assert sum(p.numel() for _, p in prunable_parameters(model)) == weights
    assert round((weights if arch == "conv6" else total) / 1e6, 2) == published_m


def test_pinned_literals():
    """Literal pins, so a change in the formulas above cannot silently move both sides."""
    assert conv6_count() == (2265418, 2261184)
    assert cifar_resnet_count(3) == (272474, 270896)
    assert cifar_resnet_count(5) == (466906, 464432)
    assert wrn_count() == (1467610, 1463984)


@pytest.mark.parametrize("arch", MODELS.names())
@pytest.mark.parametrize("classes,size", [(10, 32), (100, 32), (200, 32), (10, 16)])
def test_output_shape(arch, classes, size):
    model = build_model(arch, num_classes=classes, input_size=size, width=0.25, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, classes)


def test_seeded_init_is_reproducible_and_isolated():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = build_model("resnet20", width=0.25, seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # caller's RNG untouched
    b = build_model("resnet20", width=0.25, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
