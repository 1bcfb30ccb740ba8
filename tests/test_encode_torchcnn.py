"""The walker's rules for the operations torchvision CNNs are made of, against independent truths.

Layer by layer: every block of the MGE is a tensor of the network (marked by a :class:`Tap`); for
each pair (source block, target block) the MGE sub-adjacency must equal the torch autograd
Jacobian of the target tensor with respect to the source tensor, all other block tensors held
fixed (positive weights and inputs, no ReLU/BN: no cancellations, so zeros in the Jacobian are
missing edges). Identity shortcuts are compared with ``identity_edges=True`` (weight 1). Plus
hand-countable tiny graphs for cat, broadcast pooling and gating.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from snntopo.encode import build_graph
from snntopo.encode.layers import UnsupportedOpError, layer_spec
from snntopo.models import prunable_parameters


class Tap(nn.Module):
    """Marks the tensor of one node block; a probe can read it or substitute it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.probe: dict | None = None

    def forward(self, x):
        if self.probe is None:
            return x
        self.probe["seen"][self.name] = x
        return self.probe["sub"].get(self.name, x)


def _positive(model: nn.Module, density: float = 0.6, seed: int = 0) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    with torch.no_grad():
        for name, p in prunable_parameters(model):
            w = (torch.rand(p.shape, generator=gen) + 0.1) * (
                torch.rand(p.shape, generator=gen) < density
            )
            p.copy_(w)
            out[name] = w.numpy().copy()
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    return out


def _run(model: nn.Module, x: torch.Tensor, sub: dict) -> dict:
    probe = {"seen": {}, "sub": sub}
    taps = [m for m in model.modules() if isinstance(m, Tap)]
    for t in taps:
        t.probe = probe
    try:
        model(x)
    finally:
        for t in taps:
            t.probe = None
    return probe["seen"]


def _block_jacobians(model: nn.Module, shape: tuple[int, ...]) -> dict:
    """{(src, dst): Jacobian [dst elements, src elements]} of the direct dependences."""
    x0 = torch.rand(1, *shape, dtype=torch.float64) + 0.1
    model = model.double()
    values = {k: v.detach() for k, v in _run(model, x0, {}).items()}
    names = ["input", *values]
    out = {}
    for dst in values:
        for src in names:
            if src == dst:
                continue
            fixed = {k: v for k, v in values.items() if k not in (src, dst)}

            def f(t, src=src, dst=dst, fixed=fixed):
                if src == "input":
                    return _run(model, t[None], fixed)[dst][0].flatten()
                return _run(model, x0, {**fixed, src: t[None]})[dst][0].flatten()

            base = x0[0] if src == "input" else values[src][0]
            jac = torch.autograd.functional.jacobian(f, base.clone())
            out[(src, dst)] = jac.reshape(jac.shape[0], -1).numpy()
    model.float()
    return out


def check_against_jacobian(model, shape, scale=None, structure_only=()):
    """Every (source, target) block pair of the MGE equals the direct Jacobian (see module doc).

    ``scale[(src, dst)]`` multiplies the Jacobian (an avg pool of area k divides by k, the MGE
    keeps |w|); pairs in ``structure_only`` are compared as 0/1 patterns.
    """
    scale = scale or {}
    weights = _positive(model)
    spec = layer_spec(model, shape)
    g = build_graph("mge", spec, weights, identity_edges=True)
    blocks = {b.name: b for b in g.blocks}
    a = g.csr().toarray()
    jacs = _block_jacobians(model, shape)
    assert set(blocks) == {"input", *{d for _, d in jacs}}  # every tap is a block and vice versa
    n_checked = 0
    for (src, dst), jac in jacs.items():
        sb, db = blocks[src], blocks[dst]
        sub = a[sb.start : sb.stop, db.start : db.stop].T
        np.testing.assert_array_equal(sub != 0, np.abs(jac) > 1e-12, err_msg=f"{src}->{dst}")
        if (src, dst) not in structure_only:
            np.testing.assert_allclose(sub, jac * scale.get((src, dst), 1.0), rtol=1e-5)
        n_checked += int((sub != 0).any())
    # the graph has no edge outside those pairs (e.g. into the input, or backwards)
    assert (
        sum(
            int((a[blocks[s].start : blocks[s].stop, blocks[d].start : blocks[d].stop] != 0).sum())
            for s, d in jacs
        )
        == g.n_edges
    )  # noqa: E501
    return spec, g, n_checked


class ResNetStem(nn.Module):
    """ResNet-18 pattern: stem conv, overlapping 3x3/s2/p1 pool, basic block whose identity is the
    pooled stem, then a downsampling block with a 1x1/s2 ``downsample`` projection, global pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
        self.t1 = Tap("conv1")
        self.pool = nn.AvgPool2d(3, 2, 1)  # the walker folds max and avg pools alike
        self.a = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.ta = Tap("a")
        self.b = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.tb = Tap("b")
        self.c = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.tc = Tap("c")
        self.d = nn.Conv2d(4, 4, (1, 3), padding=(0, 1), bias=False)
        self.downsample = nn.Conv2d(3, 4, 1, stride=2, bias=False)
        self.td = Tap("d")
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        self.tf = Tap("fc")

    def forward(self, x):
        s = self.pool(self.t1(self.conv1(x)))
        y = self.tb(self.b(self.ta(self.a(s))) + s)
        z = self.td(self.d(self.tc(self.c(y))) + self.downsample(y))
        return self.tf(self.fc(torch.flatten(self.gap(z), 1)))


def test_resnet_stem_pooled_identity_and_projection():
    spec, g, n = check_against_jacobian(
        ResNetStem(),
        (2, 16, 16),
        scale={("conv1", "a"): 9.0, ("conv1", "b"): 9.0, ("d", "fc"): 4.0},
    )
    lay = {x["name"]: x for x in spec["layers"]}
    assert lay["downsample"]["role"] == "shortcut" and lay["downsample"]["out_block"] == "d"
    (ident,) = [r for r in spec["identity_shortcuts"] if r["to_block"] == "b"]
    assert ident["from_block"] == "conv1" and ident["inputs"][0]["pools"][0]["kernel"] == [3, 3]
    assert n == 8  # input-conv1, conv1-a, conv1-b (identity), a-b, b-c, c-d, b-d, d-fc


class NarySum(nn.Module):
    """Three parallel convs and the identity summed (n-ary add), then a consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 1, bias=False)
        self.t0 = Tap("stem")
        self.p = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.q = nn.Conv2d(3, 3, (3, 1), padding=(1, 0), bias=False)
        self.r = nn.Conv2d(3, 3, 3, padding=2, dilation=2, bias=False)
        self.ts = Tap("p")
        self.out = nn.Conv2d(3, 2, 3, stride=(2, 1), padding=1, bias=False)
        self.tout = Tap("out")

    def forward(self, x):
        s = self.t0(self.stem(x))
        y = self.ts(self.p(s) + self.q(s) + self.r(s) + s)
        return self.tout(self.out(y))


def test_nary_add_merges_all_branches():
    spec, g, _ = check_against_jacobian(NarySum(), (2, 6, 5))
    roles = {x["name"]: (x["role"], x["out_block"]) for x in spec["layers"]}
    assert roles["q"] == ("shortcut", "p") and roles["r"] == ("shortcut", "p")
    assert [b["name"] for b in spec["blocks"]] == ["input", "stem", "p", "out"]


class DenseCat(nn.Module):
    """DenseNet pattern: each layer reads the channel concatenation of all earlier outputs;
    a transition conv + avg pool; the classifier reads a pooled concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.t0 = Tap("stem")
        self.l1 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.t1 = Tap("l1")
        self.l2 = nn.Conv2d(5, 3, 1, bias=False)
        self.t2 = Tap("l2")
        self.trans = nn.Conv2d(8, 4, 1, bias=False)
        self.tt = Tap("trans")
        self.pool = nn.AvgPool2d(2)
        self.l3 = nn.Conv2d(4, 2, 3, padding=1, groups=2, bias=False)
        self.t3 = Tap("l3")
        self.fc = nn.Linear(6 * 2 * 2, 3)
        self.tf = Tap("fc")

    def forward(self, x):
        s = self.t0(self.stem(x))
        a = self.t1(self.l1(s))
        b = self.t2(self.l2(torch.cat([s, a], 1)))
        p = self.pool(self.tt(self.trans(torch.cat([s, a, b], 1))))
        c = self.t3(self.l3(p))
        return self.tf(self.fc(torch.flatten(torch.cat([p, c], 1), 1)))


def test_cat_is_union_of_parts_in_order():
    spec, g, _ = check_against_jacobian(
        DenseCat(), (2, 4, 4), scale={("trans", "l3"): 4.0, ("trans", "fc"): 4.0}
    )
    lay = {x["name"]: x for x in spec["layers"]}
    assert [(t["block"], t["rows"]) for t in lay["trans"]["inputs"]] == [
        ("stem", [0, 32]),
        ("l1", [32, 80]),
        ("l2", [80, 128]),
    ]
    assert lay["l3"]["in_block"] == "trans" and "inputs" not in lay["l3"]


class SmallMapClassifier(nn.Module):
    """VGG at small inputs: adaptive pooling takes a small map up to a larger one."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
        self.tc = Tap("conv")
        self.avgpool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(3 * 9, 4)
        self.tf = Tap("fc")
        self.side = side

    def forward(self, x):
        return self.tf(self.fc(torch.flatten(self.avgpool(self.tc(self.conv(x))), 1)))


def test_adaptive_broadcast_from_1x1():
    # 2x2 input -> 1x1 conv map -> 3x3: every feature of channel c is a copy of node c, so the
    # edge c -> o carries the sum of W[o, c*9:(c+1)*9] = the Jacobian exactly.
    check_against_jacobian(SmallMapClassifier(1), (2, 2, 2))


def test_adaptive_unequal_windows_2x2_to_3x3():
    # 4x4 -> 2x2 conv map -> 3x3: windows overlap (adaptive), the structure is the Jacobian's.
    check_against_jacobian(SmallMapClassifier(2), (2, 4, 4), structure_only={("conv", "fc")})


class SEBlock(nn.Module):
    """MobileNetV3/EfficientNet pattern: depthwise conv, squeeze-and-excitation gate, projection,
    residual; the classifier reads a ``mean`` over the spatial dimensions."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(2, 4, 1, bias=False)
        self.te = Tap("expand")
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.td = Tap("dw")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(4, 2, 1)
        self.t1 = Tap("fc1")
        self.fc2 = nn.Conv2d(2, 4, 1)
        self.t2 = Tap("fc2")
        self.gate = nn.Sigmoid()
        self.project = nn.Conv2d(4, 2, 1, bias=False)
        self.tp = Tap("project")
        self.head = nn.Linear(2, 3)
        self.th = Tap("head")

    def forward(self, x):
        h = self.td(self.dw(self.te(self.expand(x))))
        g = self.gate(self.t2(self.fc2(self.t1(self.fc1(self.pool(h))))))
        y = self.tp(self.project(h * g) + x)
        return self.th(self.head(y.mean((2, 3))))


def test_gating_overlays_gate_blocks_and_mean_pools():
    gated = {("dw", "project"), ("fc2", "project")}  # d(h*g): values are products, not |w|
    spec, g, _ = check_against_jacobian(
        SEBlock(),
        (2, 3, 3),
        scale={("dw", "fc1"): 9.0, ("project", "head"): 9.0},
        structure_only=gated,
    )
    lay = {x["name"]: x for x in spec["layers"]}
    assert [t["block"] for t in lay["project"]["inputs"]] == ["dw", "fc2"]
    assert lay["project"]["inputs"][1]["pools"][0]["kind"] == "gate"


# ------------------------------------------------------------------ hand-countable tiny graphs
def _set(model: nn.Module, **weights) -> dict[str, np.ndarray]:
    with torch.no_grad():
        for name, w in weights.items():
            getattr(model, name).weight.copy_(torch.tensor(w, dtype=torch.float32))
    return {n: p.detach().numpy().copy() for n, p in prunable_parameters(model)}


def _edges(g) -> dict[tuple[str, int, str, int], float]:
    """{(src block, local id, dst block, local id): weight}."""
    src = g.sources()
    name = np.empty(g.n_nodes, dtype=object)
    local = np.empty(g.n_nodes, dtype=np.int64)
    for b in g.blocks:
        name[b.start : b.stop] = b.name
        local[b.start : b.stop] = np.arange(b.size)
    return {
        (name[s], int(local[s]), name[t], int(local[t])): float(w)
        for s, t, w in zip(src, g.indices, g.weights, strict=True)
    }


class TinyCat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1, bias=False)
        self.c = nn.Conv2d(2, 1, 1, bias=False)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), x], 1))


def test_tiny_cat_by_hand():
    net = TinyCat()
    w = _set(net, a=[[[[2.0]]]], c=[[[[3.0]], [[5.0]]]])
    g = build_graph("mge", layer_spec(net, (1, 2, 2)), w)
    assert g.n_nodes == 12  # input 4, a 4, c 4
    want = {("input", p, "a", p): 2.0 for p in range(4)}
    want |= {("a", p, "c", p): 3.0 for p in range(4)}  # first part of the cat: block a
    want |= {("input", p, "c", p): 5.0 for p in range(4)}  # second part: the input itself
    assert _edges(g) == want


class TinyBroadcast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(8, 1, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


def test_tiny_broadcast_pool_by_hand():
    net = TinyBroadcast()
    w = _set(net, fc=[[1.0, 2, 3, 4, 5, 6, 7, 8]])
    g = build_graph("mge", layer_spec(net, (2, 1, 1)), w)
    # each input node is copied to 4 positions; its edge sums their weights
    assert _edges(g) == {("input", 0, "fc", 0): 10.0, ("input", 1, "fc", 0): 26.0}


class TinyGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.g = nn.Conv2d(2, 2, 1, bias=False)
        self.c = nn.Conv2d(2, 1, 1, bias=False)

    def forward(self, x):
        h = self.a(x)
        return self.c(h * torch.sigmoid(self.g(self.pool(h))))


def test_tiny_gate_by_hand():
    net = TinyGate()
    w = _set(net, a=[[[[1.0]]], [[[2.0]]]], g=[[[[3.0]], [[0.0]]], [[[0.0]], [[4.0]]]],
             c=[[[[5.0]], [[6.0]]]])  # fmt: skip
    g = build_graph("mge", layer_spec(net, (1, 2, 2)), w)
    assert g.n_nodes == 4 + 8 + 2 + 4
    want = {("input", p, "a", k * 4 + p): [1.0, 2.0][k] for k in range(2) for p in range(4)}
    # gate: channel k of a, all 4 positions (global pool) -> gate node k
    want |= {("a", k * 4 + p, "g", k): [3.0, 4.0][k] for k in range(2) for p in range(4)}
    # main path passes through the mul: a (k, p) -> c p with c's weight
    want |= {("a", k * 4 + p, "c", p): [5.0, 6.0][k] for k in range(2) for p in range(4)}
    # gate node k scales channel k at every position: g k -> c p with c's weight
    want |= {("g", k, "c", p): [5.0, 6.0][k] for k in range(2) for p in range(4)}
    assert _edges(g) == want
    assert g.n_edges == 32


@pytest.mark.parametrize(("groups", "c_in", "c_out"), [(2, 4, 6), (4, 4, 4), (3, 3, 6)])
def test_grouped_and_depthwise_conv_equal_jacobian(groups, c_in, c_out):
    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, (3, 2), (1, 2), (1, 0), groups=groups, bias=False)
            self.t = Tap("conv")

        def forward(self, x):
            return self.t(self.conv(x))

    check_against_jacobian(G(), (c_in, 5, 6))
    net = G()
    w = _positive(net)["conv.weight"]
    rc = build_graph("rolled-channel", layer_spec(net, (c_in, 5, 6)), {"conv.weight": w})
    # one edge per nonzero kernel slice, between output channel o and input channel of o's group
    assert rc.n_edges == np.count_nonzero(np.abs(w).sum(axis=(2, 3)))
    a = rc.csr().toarray()[:c_in, c_in:]
    per = c_in // groups
    for o in range(c_out):
        grp = o // (c_out // groups)
        assert not a[np.r_[: grp * per, (grp + 1) * per : c_in], o].any()


class Permute(nn.Module):
    """A conv on a tensor with H and W swapped: not a channel permutation, not channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 1)
        self.b = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.b(self.a(x).permute(0, 1, 3, 2))


def test_unsupported_op_names_op_module_and_model():
    with pytest.raises(UnsupportedOpError) as err:
        layer_spec(Permute(), (2, 3, 3), arch="module:pkg.mod:make")
    msg = str(err.value)
    assert "permute" in msg and "module:pkg.mod:make" in msg and "in module" in msg


def test_reference_mode_refuses_multi_input_layers():
    net = TinyCat()
    w = _set(net, a=[[[[2.0]]]], c=[[[[3.0]], [[5.0]]]])
    with pytest.raises(Exception, match="several tensors"):
        build_graph("mge", layer_spec(net, (1, 2, 2)), w, mode="reference")


# ------------------------------------------------------------------ shape arithmetic (metadata)
class ShapeFlatten(nn.Module):
    """Research-code flatten spellings: ``b, c, h, w = x.shape``, ``x.shape[0]``, ``x.size()``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.tc = Tap("conv")
        self.conv2 = nn.Conv2d(3, 2, 1, bias=False)
        self.t2 = Tap("conv2")
        self.fc = nn.Linear(2 * 4 * 4, 3)
        self.tf = Tap("fc")
        self.fc2 = nn.Linear(3, 2)
        self.tf2 = Tap("fc2")

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.tc(self.conv(x))
        y = y.reshape(b, 3, h, w)  # a view to the same 4-D shape spelled from unpacked sizes
        z = self.t2(self.conv2(y))
        f = self.tf(self.fc(z.view(z.shape[0], -1)))
        n = f.size()[0]
        return self.tf2(self.fc2(f.reshape(n, f.size(1))))


def test_shape_arithmetic_is_metadata():
    spec, g, n = check_against_jacobian(ShapeFlatten(), (2, 4, 4))
    assert [x["name"] for x in spec["layers"]] == ["conv", "conv2", "fc", "fc2"]
    assert spec["layers"][2]["flatten"] is True
    assert n == 4


# ------------------------------------------------------------------ asymmetric padding
class AsymmetricPadding(nn.Module):
    """A 4x4 ``padding='same'`` stem (torch pads 1 before, 2 after), ``F.pad`` with four different
    sides before a strided conv, ``nn.ZeroPad2d`` then a ReLU before a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 4, padding="same", bias=False)
        self.t0 = Tap("stem")
        self.down = nn.Conv2d(3, 2, 3, stride=2, bias=False)
        self.t1 = Tap("down")
        self.zpad = nn.ZeroPad2d((0, 1, 2, 0))  # left, right, top, bottom
        self.last = nn.Conv2d(2, 2, (2, 3), padding=(1, 0), bias=False)
        self.t2 = Tap("last")

    def forward(self, x):
        s = self.t0(self.stem(x))
        d = self.t1(self.down(torch.nn.functional.pad(s, (1, 0, 2, 1))))
        return self.t2(self.last(torch.relu(self.zpad(d))))


def test_asymmetric_padding_equals_jacobian():
    spec, g, n = check_against_jacobian(AsymmetricPadding(), (2, 7, 6))
    lay = {x["name"]: x for x in spec["layers"]}
    assert lay["stem"]["padding"] == [1, 1] and lay["stem"]["padding_end"] == [2, 2]
    assert lay["down"]["padding"] == [2, 1] and lay["down"]["padding_end"] == [1, 0]
    assert lay["last"]["padding"] == [3, 0] and lay["last"]["padding_end"] == [1, 1]
    assert n == 3
    # each is a conv term with its far-side padding, and the term is its block pair's edges
    terms = {t["layer"]: t for t in g.meta["conv_terms"]}
    assert sorted(terms) == ["down", "last", "stem"]
    assert terms["down"]["padding_end"] == [1, 0]
    from snntopo.encode.stencil import StencilTerm

    a = g.csr().toarray().astype(np.float64)
    x = np.random.default_rng(0).uniform(0.5, 1.5, g.n_nodes)
    for t in terms.values():
        src, dst = g.blocks[t["in_block"]], g.blocks[t["out_block"]]
        op = StencilTerm(t, g.kernels[t["kernel"]], src, dst)
        pair = np.zeros_like(a)
        pair[src.start : src.stop, dst.start : dst.stop] = a[
            src.start : src.stop, dst.start : dst.stop
        ]
        y = np.zeros(g.n_nodes)
        op.forward(x, y)
        op.backward(x, y)
        np.testing.assert_allclose(y, (pair + pair.T) @ x, rtol=1e-12)
        assert op.n_edges == np.count_nonzero(pair)
    with pytest.raises(Exception, match="pads one side more"):
        build_graph("mge", spec, _positive(AsymmetricPadding()), mode="reference")


class PadThenPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.conv(torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (1, 1)), 2))


def test_padding_not_read_by_a_conv_is_refused():
    with pytest.raises(UnsupportedOpError, match="zero padding .* not read by a conv"):
        layer_spec(PadThenPool(), (2, 4, 4))


# ------------------------------------------------------------------ pooled-conv output
class PooledConvHead(nn.Module):
    """SqueezeNet's classifier: a final 1x1 conv, ReLU, global average pool, flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
        self.tc = Tap("conv")
        self.pool = nn.AvgPool2d(2, ceil_mode=True)  # folded like a max pool
        self.head = nn.Conv2d(3, 4, 1, bias=False)
        self.th = Tap("head")
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.pool(torch.relu(self.tc(self.conv(x))))
        return torch.flatten(self.gap(torch.relu(self.th(self.head(y)))), 1)


def test_pooled_conv_output_keeps_the_last_block():
    spec, g, n = check_against_jacobian(
        PooledConvHead(), (2, 10, 10), structure_only={("conv", "head")}
    )
    # 10x10 -> conv 5x5 -> ceil-mode pool 3x3 -> head 4x3x3: the head's 36 nodes are the outputs
    assert g.blocks[-1].name == "head" and g.blocks[-1].size == 4 * 3 * 3
    assert spec["num_classes"] == 4 and n == 2


# ------------------------------------------------------------------ channel permutations
def _shuffle(x, groups):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 pattern: split the channels (chunk), a branch on one half, concatenate, shuffle
    (view -> transpose -> view), then a conv on the shuffled tensor and one on a channel slice."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 1, bias=False)
        self.t0 = Tap("stem")
        self.branch = nn.Conv2d(2, 2, 3, padding=1, groups=2, bias=False)
        self.tb = Tap("branch")
        self.mix = nn.Conv2d(4, 4, 1, groups=2, bias=False)
        self.tm = Tap("mix")
        self.part = nn.Conv2d(2, 2, 1, bias=False)
        self.tp = Tap("part")

    def forward(self, x):
        s = torch.cat(self.t0(self.stem(x)).chunk(2, 1), 1)  # a traced tuple into cat
        x1, x2 = s.chunk(2, dim=1)
        y = _shuffle(torch.cat((x1, self.tb(self.branch(x2))), dim=1), 2)
        m = self.tm(self.mix(y))
        return m, self.tp(self.part(y[:, 1:3]))


def test_channel_shuffle_and_slices_equal_jacobian():
    spec, g, n = check_against_jacobian(ShuffleUnit(), (2, 3, 3))
    lay = {x["name"]: x for x in spec["layers"]}
    # the shuffled tensor's channel k: stem 0, branch 0, stem 1, branch 1
    assert [(t["block"], t.get("from_channel", 0)) for t in lay["mix"]["inputs"]] == [
        ("stem", 0), ("branch", 0), ("stem", 1), ("branch", 1)
    ]  # fmt: skip
    # branch reads channels 2..3 of the stem
    assert lay["branch"]["inputs"][0]["from_channel"] == 2
    # the slice y[:, 1:3] is branch channel 0, then stem channel 1
    assert [(t["block"], t.get("from_channel", 0)) for t in lay["part"]["inputs"]] == [
        ("branch", 0), ("stem", 1)
    ]  # fmt: skip


class ChannelsLast(nn.Module):
    """ConvNeXt block: depthwise conv, permute to channels-last, LayerNorm over channels, Linear on
    the channel axis (a 1x1 conv) twice, permute back, layer scale, identity shortcut."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 2, stride=2, bias=False)
        self.t0 = Tap("stem")
        self.dw = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        self.td = Tap("dw")
        self.norm = norm
        self.fc1 = nn.Linear(3, 5)
        self.t1 = Tap("fc1")
        self.fc2 = nn.Linear(5, 3)
        self.t2 = Tap("fc2")
        self.gamma = nn.Parameter(torch.ones(3, 1, 1))
        self.head = nn.Linear(3, 2)
        self.th = Tap("head")

    def forward(self, x):
        s = self.t0(self.stem(x))
        h = self.td(self.dw(s)).permute(0, 2, 3, 1)
        h = self.fc1(self.norm(h))
        h = self.t1(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # tapped in (C, H, W) order
        y = self.gamma * self.fc2(h).permute(0, 3, 1, 2)
        y = self.t2(y + s)  # the block of fc2 is the sum (an identity shortcut from stem)
        return self.th(self.head(y.mean((2, 3))))


def test_channels_last_linear_layernorm_and_layer_scale():
    # LayerNorm mixes a position's channels in value, not in structure (a per-position
    # normalisation, like BatchNorm): the graph is the one of the block without it
    with_ln = layer_spec(ChannelsLast(nn.LayerNorm(3)), (2, 4, 4))
    spec, g, n = check_against_jacobian(
        ChannelsLast(nn.Identity()), (2, 4, 4), scale={("fc2", "head"): 4.0, ("stem", "head"): 4.0}
    )
    assert with_ln["layers"] == spec["layers"]
    lay = {x["name"]: x for x in spec["layers"]}
    assert lay["fc1"]["kind"] == "conv" and lay["fc1"]["weight_shape"] == [5, 3, 1, 1]
    assert spec["identity_shortcuts"] == [{"from_block": "stem", "to_block": "fc2"}]
    assert n == 6  # input-stem, stem-dw, dw-fc1, fc1-fc2, stem-fc2 (identity), fc2-head


def test_encoded_sparsity_must_equal_the_masks():
    from snntopo.encode.common import check_encoded_sparsity
    from snntopo.errors import MaskError

    spec = {"layers": [{"param": "a.weight"}, {"param": "b.weight"}]}
    masks = {
        "a.weight": np.array([1, 0, 0, 0], bool),
        "b.weight": np.array([1, 1, 0, 0], bool),
        "aux.weight": np.ones(8, bool),
    }
    # by hand: the graph's weights keep 3 of 8 (0.625); all three tensors keep 11 of 16
    check_encoded_sparsity(spec, masks, {"realised_sparsity": 0.625}, "m")
    with pytest.raises(MaskError, match=r"sparsity 0.625 but the mask records 0.3125.*aux.weight"):
        check_encoded_sparsity(spec, masks, {"realised_sparsity": 1 - 11 / 16}, "m")


# ------------------------------------------------------------------ inputs too small, attention
class ShrinkingNet(nn.Module):
    """3x3 conv (no padding), 3x3/s2 max pool, 3x3 conv: by hand, side s gives s - 2, then
    floor((s - 5) / 2) + 1, which the last conv needs to be >= 3: s >= 9."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.pool = nn.MaxPool2d(3, 2)
        self.b = nn.Conv2d(4, 4, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(self.b(self.pool(self.a(x)))), 1))


def test_input_too_small_names_the_smallest_that_works():
    with pytest.raises(UnsupportedOpError) as err:
        layer_spec(ShrinkingNet(), (3, 8, 8), arch="m")
    assert (
        str(err.value) == "input 8x8 is too small for model m: the smallest input that works is 9x9"
    )
    assert "\n" not in str(err.value)
    layer_spec(ShrinkingNet(), (3, 9, 9))  # and it does work


class TinyAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 2, stride=2)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)
        return self.fc(self.attn(t, t, t)[0].mean(1))


def test_attention_has_no_static_graph():
    with pytest.raises(UnsupportedOpError, match="no static graph") as err:
        layer_spec(TinyAttention(), (3, 4, 4), arch="m")
    assert "MultiheadAttention in 'attn'" in str(err.value) and "\n" not in str(err.value)


def test_weights_outside_the_graph_must_be_listed_by_the_mask():
    from snntopo.encode.common import check_nothing_dropped
    from snntopo.errors import MaskError

    spec = {"layers": [{"param": "a.weight"}]}
    init = {"a.weight": np.ones(2, np.float32), "aux.weight": np.array([0, 1], np.float32)}
    with pytest.raises(MaskError, match=r"1 weight tensor.*\(aux.weight\)"):
        check_nothing_dropped(spec, init, {"kind": "masked-init"}, "w")
    meta = {"kind": "masked-init", "outside_inference": ["aux.weight"]}
    check_nothing_dropped(spec, init, meta, "w")  # listed: kept dense, out of the budget
    pruned = {**init, "aux.weight": np.zeros(2, np.float32)}
    check_nothing_dropped(spec, pruned, {"kind": "masked-init"}, "w")  # nothing kept there
    model = {"a.weight": init["a.weight"], "mask/a.weight": np.ones(2, bool),
             "aux.weight": init["aux.weight"], "mask/aux.weight": np.ones(2, bool),
             "bn.bias": np.ones(2, np.float32)}  # fmt: skip
    with pytest.raises(MaskError, match="aux.weight"):
        check_nothing_dropped(spec, model, {}, "w")  # a trained model: its masks name them
