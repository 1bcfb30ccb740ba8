"""PaI methods on the real architectures (small widths and inputs) with seeded random data."""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snntopo.errors import ConfigError
from snntopo.models import build_model, prunable_parameters
from snntopo.pai import METHODS, compute_mask, snip
from snntopo.pai.base import erk_densities, twice_differentiable

SPARSITIES = (0.6, 0.8, 0.9, 0.95, 0.98)
RANDOM_METHODS = ("uniform", "er", "erk")
SCORE_METHODS = ("snip", "grasp", "synflow", "prospr")
DATA_METHODS = ("snip", "grasp", "prospr")
SIZE = {"conv6": 8, "resnet20": 8, "resnet32": 8, "wrn28_2": 8}
# Small data batches keep the non-slow suite fast; the method defaults are 128/25/512.
FAST = {"batch_size": 32, "samples_per_class": 4, "rounds": 20}


def make_loader_factory(seed: int = 0, size: int = 8, classes: int = 10, n_batches: int = 12):
    """A loader factory yielding seeded random batches (each call replays the same stream)."""

    def factory(batch_size: int):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n_batches):
            x = torch.randn(batch_size, 3, size, size, generator=g)
            y = torch.randint(0, classes, (batch_size,), generator=g)
            yield x, y

    return factory


def small(arch: str, width: float = 0.25, seed: int = 0) -> nn.Module:
    return build_model(arch, 10, 3, SIZE[arch], width, seed=seed)


def run(method, model, sparsity, seed=0, loader=None, **params):
    p = {**FAST, "input_shape": [3, 8, 8], **params}
    if method in DATA_METHODS and loader is None:
        loader = make_loader_factory()
    return compute_mask(method, model, sparsity, seed=seed, loader_factory=loader, params=p)


def check_budget(method, masks, info, sparsity):
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert info["total_weights"] == total and info["kept_weights"] == kept
    assert math.isclose(info["realised_sparsity"], 1 - kept / total)
    if method in RANDOM_METHODS:
        assert abs(info["realised_sparsity"] - sparsity) <= 0.005
    assert abs(kept - total * (1 - sparsity)) <= 1.0  # all our methods hit round(N d) exactly


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("arch", ["resnet20", pytest.param("conv6", marks=pytest.mark.slow)])
def test_budget_all_sparsities(method, arch):
    model = small(arch)
    names = [n for n, _ in prunable_parameters(model)]
    for s in SPARSITIES:
        masks, info = run(method, model, s)
        assert list(masks) == names
        assert all(m.dtype == torch.bool and m.device.type == "cpu" for m in masks.values())
        check_budget(method, masks, info, s)
        assert info["emptied_layers"] == [n for n, m in masks.items() if not m.any()]
        assert (info["fingerprint"] is not None) == METHODS.meta(method).needs_data


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet32", "wrn28_2"])
@pytest.mark.parametrize("method", list(METHODS))
def test_budget_other_archs(method, arch):
    model = small(arch)
    for s in SPARSITIES:
        masks, info = run(method, model, s)
        check_budget(method, masks, info, s)


@pytest.mark.parametrize("method", list(METHODS))
def test_bit_identical_and_model_unchanged(method):
    model = small("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    a, ia = run(method, model, 0.9, seed=3)
    b, ib = run(method, model, 0.9, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ia["fingerprint"] == ib["fingerprint"]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())  # caller's global RNG untouched


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_random_methods_depend_on_seed(method):
    model = small("resnet20")
    a, _ = run(method, model, 0.9, seed=0)
    b, _ = run(method, model, 0.9, seed=1)
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["snip", "grasp", "prospr"])
def test_data_methods_need_a_loader(method):
    with pytest.raises(ConfigError, match="needs training data"):
        compute_mask(method, small("resnet20"), 0.9, seed=0)


def test_bad_sparsity_and_method():
    with pytest.raises(ConfigError):
        compute_mask("erk", small("resnet20"), 1.0, seed=0)
    with pytest.raises(ConfigError, match="did you mean"):
        compute_mask("snipp", small("resnet20"), 0.9, seed=0)


def test_data_fingerprint_tracks_batches():
    model = small("resnet20")
    _, a = run("snip", model, 0.9, loader=make_loader_factory(0))
    _, b = run("snip", model, 0.9, loader=make_loader_factory(1))
    assert a["fingerprint"] != b["fingerprint"] and a["data_samples"] == 32


def test_synflow_needs_no_data_and_ignores_it():
    model = small("resnet20")

    def exploding(batch_size):
        raise AssertionError("SynFlow must not read data")

    base, info = run("synflow", model, 0.95)
    assert info["fingerprint"] is None
    for loader in (exploding, make_loader_factory(0), make_loader_factory(7)):
        other, _ = run("synflow", model, 0.95, loader=loader)
        assert all(torch.equal(base[k], other[k]) for k in base)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


def test_snip_scores_equal_mask_gradient():
    torch.manual_seed(0)
    net = Tiny()
    x, y = torch.randn(6, 2, 4, 4), torch.randint(0, 5, (6,))
    got = snip.scores(net, x, y)
    # Independent: d loss / d m at m = 1 for multiplicative masks, via torch.func.
    m = {"conv.weight": torch.ones(3, 2, 3, 3), "fc.weight": torch.ones(5, 48)}
    m = {k: v.requires_grad_(True) for k, v in m.items()}
    params = {k: v.detach() for k, v in net.named_parameters()}
    fast = {k: params[k] * m[k] if k in m else params[k] for k in params}
    loss = F.cross_entropy(torch.func.functional_call(net, fast, (x,)), y)
    ref = torch.autograd.grad(loss, list(m.values()))
    for (k, _), r in zip(m.items(), ref, strict=True):
        torch.testing.assert_close(got[k], r.abs())
    # And the mask keeps the top-k of exactly these scores.
    flat = torch.cat([r.abs().flatten() for r in ref])
    k = round(flat.numel() * 0.3)
    masks, _ = compute_mask(
        "snip", net, 0.7, seed=0, loader_factory=lambda bs: iter([(x, y)]), params={}
    )
    keep = torch.cat([masks[n].flatten() for n in m])
    assert int(keep.sum()) == k
    assert flat[keep].min() >= flat[~keep].max()


def hand_erk(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Independent ERK solve: try 'the j layers with the largest raw density are dense' for
    j = 0, 1, ... and take the first consistent solution."""
    raw = {k: sum(s) / math.prod(s) for k, s in shapes.items()}
    n = {k: math.prod(s) for k, s in shapes.items()}
    order = sorted(raw, key=lambda k: -raw[k])
    total = sum(n.values())
    for j in range(len(order) + 1):
        dense = set(order[:j])
        eps = (density * total - sum(n[k] for k in dense)) / sum(raw[k] * n[k] for k in order[j:])
        if all(eps * raw[k] <= 1 for k in order[j:]):
            return {k: 1.0 if k in dense else eps * raw[k] for k in shapes}
    raise AssertionError("no solution")


def test_erk_closed_form_resnet20_with_capping():
    model = build_model("resnet20", seed=0)  # full width: the real layer shapes
    shapes = {k: tuple(p.shape) for k, p in prunable_parameters(model)}
    sparsity = 0.8
    expect = hand_erk(shapes, 1 - sparsity)
    capped = [k for k, d in expect.items() if d == 1.0]
    assert "linear.weight" in capped  # capping does kick in at this sparsity
    assert erk_densities(
        {k: sum(s) / math.prod(s) for k, s in shapes.items()},
        {k: math.prod(s) for k, s in shapes.items()},
        1 - sparsity,
    ) == pytest.approx(expect)
    masks, info = compute_mask("erk", model, sparsity, seed=0)
    for k, d in expect.items():
        assert abs(info["densities"][k] - d) <= 1.0 / math.prod(shapes[k]) + 1e-12, k
    # Conv layers with the same shape get the same density (up to one weight).
    assert info["densities"]["layer1.0.conv1.weight"] == info["densities"]["layer1.2.conv2.weight"]


def test_er_ignores_kernel_by_default():
    model = build_model("resnet20", seed=0)
    _, er = compute_mask("er", model, 0.9, seed=0)
    _, ref = compute_mask("er", model, 0.9, seed=0, params={"include_kernel": True})
    _, erk = compute_mask("erk", model, 0.9, seed=0)
    # 1x1 shortcut vs 3x3 conv with the same channels: ER gives them equal densities.
    d = er["densities"]
    assert d["layer2.0.shortcut.0.weight"] == pytest.approx(d["layer2.0.conv1.weight"], abs=1e-3)
    assert ref["densities"] == erk["densities"]


def test_emptied_layers_are_reported_and_logged(monkeypatch, caplog):
    def empty_first(model, density, ctx):
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model)}
        first = next(iter(masks))
        masks[first][:] = False
        return masks

    monkeypatch.setitem(METHODS._items, "empty_first", empty_first)
    monkeypatch.setitem(METHODS._meta, "empty_first", METHODS.make_facts("empty_first"))
    with caplog.at_level(logging.WARNING, logger="snntopo.pai"):
        _, info = compute_mask("empty_first", small("resnet20"), 0.1, seed=0)
    assert info["emptied_layers"] == ["conv1.weight"]
    assert "conv1.weight" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", list(METHODS))
def test_cuda(method):
    model = small("resnet20").cuda()
    masks, info = run(method, model, 0.9)
    check_budget(method, masks, info, 0.9)
    assert next(model.parameters()).device.type == "cuda"
    if method in RANDOM_METHODS:  # CPU generators: device-independent masks
        cpu, _ = run(method, small("resnet20"), 0.9)
        assert all(torch.equal(masks[k], cpu[k]) for k in masks)
    again, _ = run(method, model, 0.9)
    assert all(torch.equal(masks[k], again[k]) for k in masks)


def test_synflow_input_shape():
    conv6 = build_model("conv6", 10, 3, 16, 0.25, seed=0)
    with pytest.raises(ConfigError, match="input_shape"):
        compute_mask("synflow", conv6, 0.9, seed=0, params={"rounds": 2})
    _, info = compute_mask(
        "synflow", conv6, 0.9, seed=0, params={"rounds": 2, "input_shape": [3, 16, 16]}
    )
    assert abs(info["realised_sparsity"] - 0.9) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["torchvision:mobilenet_v3_small", "torchvision:resnet18"])
@pytest.mark.parametrize("method", list(METHODS))
def test_torchvision_bn_models(method, arch):
    """Every method on BatchNorm-heavy torchvision models (SE gates, hardswish, 1x1 maps deep in
    the net at 8x8 inputs): the exact budget, bit-identical reruns, and the model's parameters
    and BN running statistics untouched (scoring runs on a copy)."""
    model = build_model(arch, 10, 3, 8, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, info = run(method, model, 0.9, seed=1)
    check_budget(method, a, info, 0.9)
    assert list(a) == [n for n, _ in prunable_parameters(model)]
    assert all(m.any() for m in a.values()) or info["emptied_layers"]
    b, _ = run(method, model, 0.9, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class _SE(nn.Module):
    """conv -> squeeze-and-excitation gate (hardsigmoid, as in MobileNetV3) -> linear."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.fc1, self.fc2 = nn.Conv2d(6, 3, 1), nn.Conv2d(3, 6, 1)
        self.gate = gate
        self.out = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        h = F.relu(self.conv(x))
        s = self.gate(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(h, 1)))))
        return self.out(F.avg_pool2d(h * s, 2).flatten(1))


class _ClampGate(nn.Module):
    def forward(self, x):
        return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)  # hardsigmoid's definition


def test_grasp_through_hardsigmoid_gate_equals_the_same_function_written_with_clamp():
    """torch has no double backward for hardsigmoid: GraSP scores it as relu6(x+3)/6, and its
    Hessian-gradient scores equal those of the model whose gate is hardsigmoid's definition."""
    torch.manual_seed(0)
    net = _SE(nn.Hardsigmoid())
    ref = _SE(_ClampGate())
    ref.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 3, 8, 8, generator=g), torch.randint(0, 10, (40,), generator=g)
    from snntopo.pai import grasp

    a = grasp.scores(twice_differentiable(copy.deepcopy(net)), x, y)
    b = grasp.scores(ref, x, y)
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-10)
    assert any(float(v.abs().max()) > 0 for v in a.values())
    masks, info = compute_mask(
        "grasp", net, 0.8, seed=0, loader_factory=lambda bs: iter([(x, y)]),
        params={"samples_per_class": 2, "batch_size": 40},
    )  # fmt: skip
    check_budget("grasp", masks, info, 0.8)
    assert isinstance(net.gate, nn.Hardsigmoid)  # the caller's model keeps its module


def test_prospr_through_hardsigmoid_gate():
    """ProsPr differentiates through its inner SGD steps (second order) like GraSP: it runs on a
    hardsigmoid-gated model, hits the budget, and leaves the caller's module in place."""
    torch.manual_seed(0)
    net = _SE(nn.Hardsigmoid())
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    masks, info = compute_mask(
        "prospr", net, 0.8, seed=0, loader_factory=lambda bs: iter([(x, y)] * 4),
        params={"batch_size": 16, "inner_steps": 2},
    )  # fmt: skip
    check_budget("prospr", masks, info, 0.8)
    assert isinstance(net.gate, nn.Hardsigmoid)
    assert info["data_batches"] == 3  # two inner steps, then the meta-loss batch


@pytest.mark.parametrize("steps", [1, 4])
def test_prospr_reads_its_registered_inner_steps(steps):
    """``pai.prospr.inner_steps`` (the config's and ``--pai-param``'s name) sets the number of
    inner SGD steps: ProsPr reads one batch per step and one more for the meta-loss."""
    torch.manual_seed(0)
    net = _SE(nn.ReLU())
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    _, info = compute_mask(
        "prospr", net, 0.8, seed=0, loader_factory=lambda bs: iter([(x, y)] * 8),
        params={"batch_size": 8, "inner_steps": steps},
    )  # fmt: skip
    assert info["data_batches"] == steps + 1


def test_every_setting_a_method_reads_is_registered():
    """Each ``ctx.param("name", ...)`` a method's module reads is one of its registered settings
    (the names the config schema and ``--pai-param`` accept), so no setting is silently ignored
    and none the method reads is refused."""
    import ast
    import importlib
    import inspect

    for method in METHODS:
        module = importlib.import_module(f"snntopo.pai.{method}")
        read = {
            node.args[0].value
            for node in ast.walk(ast.parse(inspect.getsource(module)))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "param"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        }
        assert read <= set(METHODS.fact(method, "params")), (method, read)


class _AuxNet(nn.Module):
    """GoogLeNet's pattern: in train mode the output is a named tuple (logits, auxiliary logits)
    whose auxiliary head an eval-mode forward never runs (torchvision skips a ``None`` head)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 30),
                                 nn.ReLU(), nn.Linear(30, 10))  # fmt: skip
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        aux = self.aux(h) if self.aux is not None and self.training else None
        out = self.fc(F.relu(self.conv2(h)).mean((2, 3)))
        if self.training:
            from collections import namedtuple

            return namedtuple("Outputs", ["logits", "aux_logits"])(out, aux)
        return out


@pytest.mark.parametrize("method", list(METHODS))
def test_auxiliary_heads_are_outside_the_budget_and_kept(method):
    """Every method on a model whose train-mode output is a named tuple: the auxiliary head's
    weights are kept dense, listed, and left out of the budget, which the others meet exactly."""
    model = _AuxNet()
    masks, info = run(method, model, 0.8, seed=0)
    aux = ["aux.2.weight", "aux.4.weight"]
    assert list(masks) == [n for n, _ in prunable_parameters(model)]  # nothing silently dropped
    assert info["outside_inference"] == aux
    assert all(bool(masks[n].all()) for n in aux)
    inside = [n for n in masks if n not in aux]
    total = sum(masks[n].numel() for n in inside)
    assert total == 3 * 6 * 9 + 6 * 6 * 9 + 6 * 10  # counted by hand: conv, conv2, fc
    kept = sum(int(masks[n].sum()) for n in inside)
    assert info["total_weights"] == total and info["kept_weights"] == kept
    assert kept == round(total * 0.2)
    assert model.aux is not None  # the caller's model keeps its head (scoring runs on a copy)


def test_mask_file_lists_weights_outside_the_inference_network(tmp_path):
    from snntopo.pai.io import load_mask, save_mask

    masks, info = run("erk", _AuxNet(), 0.8, seed=0)
    save_mask(tmp_path / "m.safetensors", masks, info)
    _, meta = load_mask(tmp_path / "m.safetensors")
    assert meta["outside_inference"] == ["aux.2.weight", "aux.4.weight"]
    inside = 3 * 6 * 9 + 6 * 6 * 9 + 6 * 10
    assert meta["realised_sparsity"] == 1 - round(inside * 0.2) / inside


#: torchvision models whose train-mode forward also runs auxiliary heads: (input side, the heads'
#: module prefixes, conv/linear weights of the inference network at 10 classes or None)
AUX_MODELS = {
    # 5,595,584: the count the issue reports for GoogLeNet's inference network
    "googlenet": (32, ("aux1.", "aux2."), 5_595_584),
    "inception_v3": (75, ("AuxLogits.",), None),  # 75x75: its smallest input
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(AUX_MODELS))
def test_torchvision_aux_heads_every_method(name):
    """torchvision's GoogLeNet and Inception-v3 with their auxiliary heads on (the default), at
    their smallest inputs: every method runs, the heads' weights are kept dense and listed as
    ``outside_inference``, and the kept weights of the inference network are exactly
    ``round(0.1 N)`` at sparsity 0.9 -- all counted off the masks and the torch modules."""
    side, heads, inference = AUX_MODELS[name]
    model = build_model(f"torchvision:{name}", 10, 3, side, seed=0)
    weights = {f"{n}.weight": m.weight.numel() for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d | nn.Linear)}  # fmt: skip
    aux = [n for n in weights if n.startswith(heads)]
    inside = [n for n in weights if not n.startswith(heads)]
    total = sum(weights[n] for n in inside)
    assert aux and (inference is None or total == inference)
    loader = make_loader_factory(size=side, n_batches=40)
    for method in METHODS:
        masks, info = run(method, model, 0.9, seed=0, loader=loader, input_shape=[3, side, side],
                          rounds=2, batch_size=4, samples_per_class=1, inner_steps=1)  # fmt: skip
        assert list(masks) == list(weights), method  # nothing silently dropped
        assert info["outside_inference"] == aux, method
        assert all(bool(masks[n].all()) for n in aux), method
        kept = sum(int(masks[n].sum()) for n in inside)
        assert kept == round(0.1 * total), method
        assert info["realised_sparsity"] == 1 - kept / total, method
