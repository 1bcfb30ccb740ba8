"""Conv terms of pooled, grouped, dilated and asymmetrically padded convs (encode/stencil.py):
the term's edges are exactly the pair's CSR edges, its products are torch's conv2d of the
window sums, and the graph file keeps and checks the new fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snntopo.encode import build_graph, stencil
from snntopo.encode import mge as mgemod
from snntopo.encode.graph import GraphError, load_graph, save_graph
from snntopo.encode.layers import layer_spec
from snntopo.metrics import compute_family
from snntopo.metrics import conv_operator as co
from tests.test_encode_mge import _masked_positive


class PoolConv(nn.Module):
    """stem conv -> pool -> conv (the pooled conv under test) -> 1x1 conv."""

    def __init__(self, pool: nn.Module, conv: nn.Conv2d, c: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, c, 1, bias=False)
        self.pool = pool
        self.conv = conv
        self.tail = nn.Conv2d(conv.out_channels, 2, 1, bias=False)

    def forward(self, x):
        return self.tail(torch.relu(self.conv(self.pool(torch.relu(self.stem(x))))))


class Grouped(nn.Module):
    """A grouped conv, a depthwise conv (stride 2, dilation 2) and a pointwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1, bias=False)
        self.group = nn.Conv2d(6, 9, 3, padding=1, groups=3, bias=False)
        self.dw = nn.Conv2d(9, 9, 3, stride=2, padding=2, dilation=2, groups=9, bias=False)
        self.pw = nn.Conv2d(9, 4, 1, bias=False)

    def forward(self, x):
        return self.pw(self.dw(torch.relu(self.group(torch.relu(self.stem(x))))))


class PoolDepthwise(nn.Module):
    """Overlapping max pooling folded into a depthwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 1, bias=False)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)

    def forward(self, x):
        return self.dw(self.pool(self.stem(x)))


class SEGate(nn.Module):
    """A squeeze-excitation gate (convs on the pooled 1x1 map) multiplying the input of a 3x3
    conv: that conv reads two tensors; its pair with the gated tensor's block is a stencil."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.fc1 = nn.Conv2d(4, 2, 1, bias=False)
        self.fc2 = nn.Conv2d(2, 4, 1, bias=False)
        self.proj = nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=False)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return self.proj(x * s)


def _pool_cases():
    c3 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    return {
        # 3x3/s2/p1 pooling of 14 -> 7 (the 112 -> 56 border): pooled row 7 is conv padding
        # though pre-pool row 13 exists
        "max3s2p1_even": (PoolConv(nn.MaxPool2d(3, 2, 1), c3), (2, 14, 14)),
        "max3s2p1_odd": (PoolConv(nn.MaxPool2d(3, 2, 1), c3), (2, 13, 11)),
        "max2_odd": (PoolConv(nn.MaxPool2d(2), c3), (2, 9, 7)),
        "max2_even": (PoolConv(nn.MaxPool2d(2), c3), (2, 8, 10)),
        "avg2_ceil_odd": (PoolConv(nn.AvgPool2d(2, ceil_mode=True), c3), (2, 9, 7)),
        # stride-1 overlapping pooling: pooled row -1 (conv padding) would reach pre-pool row 0
        "avg3s1p1": (PoolConv(nn.AvgPool2d(3, 1, 1), c3), (2, 7, 6)),
        "max3s2_dilated": (
            PoolConv(nn.MaxPool2d(3, 2), nn.Conv2d(3, 4, 3, padding=2, dilation=2, bias=False)),
            (2, 15, 12),
        ),
        "max3s2p1_1x1": (
            PoolConv(nn.MaxPool2d(3, 2, 1), nn.Conv2d(3, 4, 1, bias=False)),
            (2, 12, 12),
        ),
        "pool_strided_conv": (
            PoolConv(nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)),
            (2, 13, 12),
        ),
        "pool_grouped": (
            PoolConv(
                nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), c=4
            ),
            (2, 11, 10),
        ),
        "pool_depthwise": (PoolDepthwise(), (2, 10, 9)),
        "grouped_depthwise": (Grouped(), (2, 9, 8)),
        "se_gate": (SEGate(), (2, 7, 6)),
    }


CASES = _pool_cases()


def _graph(name, density=0.7, seed=0):
    net, shape = CASES[name]
    weights = _masked_positive(net, density, seed)
    return net, build_graph("mge", layer_spec(net, shape), weights), weights


def _term_matrix(term: co._ConvTerm) -> np.ndarray:
    """The term's (source block x target block) matrix, column by column from its products."""
    src, dst = term.src, term.dst
    n = dst.stop
    out = np.zeros((src.size, dst.size))
    for j in range(dst.size):
        x = np.zeros(n)
        x[dst.start + j] = 1.0
        y = np.zeros(n)
        term.backward(x, y)
        out[:, j] = y[src.start : src.stop]
    return out


def _sum_pool(x: torch.Tensor, pool: dict) -> torch.Tensor:
    """torch's window sums of one pooling record (average pooling with divisor 1)."""
    ceil = pool["out_shape"][1:] != list(
        F.avg_pool2d(x, pool["kernel"], pool["stride"], pool["padding"]).shape[2:]
    )
    return F.avg_pool2d(
        x, pool["kernel"], pool["stride"], pool["padding"], ceil_mode=ceil, divisor_override=1
    )


def _terms_by_layer(g):
    return {
        t["layer"]: co._ConvTerm(
            t, g.kernels[t["kernel"]], g.blocks[t["in_block"]], g.blocks[t["out_block"]]
        )
        for t in g.meta["conv_terms"]
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_conv_is_a_term_and_its_edges_are_the_pairs_csr_edges(name):
    net, g, weights = _graph(name)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    terms = _terms_by_layer(g)
    assert sorted(terms) == sorted(convs)  # pooled, grouped and gated convs included
    if name == "se_gate":  # the gated input's pair; the gate's (broadcast) pair stays edges
        blocks = [b.name for b in g.blocks]
        assert blocks[g.meta["conv_terms"][-1]["in_block"]] == "stem"
    a = g.csr().toarray().astype(np.float64)
    mods = dict(net.named_modules())
    rng = np.random.default_rng(1)
    for layer, term in terms.items():
        src, dst = term.src, term.dst
        block = a[src.start : src.stop, dst.start : dst.stop]
        mat = _term_matrix(term)
        # the same edges, exactly; the same weights within float32 rounding of pooled sums
        np.testing.assert_array_equal(mat != 0, block != 0)
        np.testing.assert_allclose(mat, block, rtol=1e-6, atol=0)
        assert term.n_edges == np.count_nonzero(block)
        # torch: the conv of |W| on the window sums of the input
        x = np.zeros(g.n_nodes)
        x[src.start : src.stop] = rng.uniform(0.5, 1.5, src.size)
        y = np.zeros(g.n_nodes)
        term.forward(x, y)
        ref = torch.from_numpy(x[src.start : src.stop].reshape(1, *src.shape))
        for pool in term.pools:
            ref = _sum_pool(ref, pool)
        conv = mods[layer]
        ref = F.conv2d(
            ref,
            torch.from_numpy(np.abs(weights[f"{layer}.weight"]).astype(np.float64)),
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
        )
        np.testing.assert_allclose(y[dst.start : dst.stop], ref.numpy().ravel(), rtol=1e-12)


def test_the_border_cases_an_effective_conv_would_get_wrong():
    """112 -> 56 in small (3x3/s2/p1 pooling of 14 -> 7, then a 3x3/p1 conv): an effective
    kernel on the pre-pool grid would also read pre-pool row 13 through pooled row 7, which is
    the conv's padding: one more |w| on those edges. With 2x2 pooling of 7 -> 3, pre-pool row 6
    is in no window: an effective kernel would give it edges."""
    net, g, _ = _graph("max3s2p1_even", density=1.0)
    term = _terms_by_layer(g)["conv"]
    k = g.kernels[g.meta["conv_terms"][1]["kernel"]]
    assert g.meta["conv_terms"][1]["layer"] == "conv"
    mat = _term_matrix(term).reshape(3, 14, 14, 4, 7, 7)
    # (y=13, x=0) is in pooled (6, 0) only; output (6, 0) reads it through tap (1, 1)
    np.testing.assert_allclose(mat[:, 13, 0, :, 6, 0], k[:, :, 1, 1].T, rtol=1e-7)
    # output row 6 reads pooled rows 5..6: pre-pool rows 9..13
    assert np.count_nonzero(mat[:, :9, :, :, 6]) == 0
    assert np.count_nonzero(mat[:, 9:, :, :, 6]) > 0
    # edge count by hand for each channel pair (full 3x3 kernels): per axis, output row o reads
    # the windows of pooled rows o-1..o+1 that exist: row 0: 0..3 (4), row 1: 0..5 (6),
    # rows 2..5: 7 each, row 6: 9..13 (5)
    per_axis = 4 + 6 + 4 * 7 + 5
    assert term.n_edges == 3 * 4 * per_axis**2 == np.count_nonzero(mat)

    _, g, _ = _graph("max2_odd", density=1.0)  # 9 x 7 -> 4 x 3
    term = _terms_by_layer(g)["conv"]
    mat = _term_matrix(term).reshape(3, 9, 7, 4, 4, 3)
    assert np.count_nonzero(mat[:, 8]) == 0 and np.count_nonzero(mat[:, :, 6]) == 0
    assert (
        np.count_nonzero(mat[:, :8, :6])
        == term.n_edges
        == 3 * 4 * (2 * (2 + 3 + 3 + 2)) * (2 * (2 + 3 + 2))
    )


@pytest.mark.parametrize("name", ["max3s2p1_even", "avg3s1p1", "grouped_depthwise"])
def test_edge_count_matches_the_plain_formula_and_brute_force(name):
    net, g, _ = _graph(name, density=0.5, seed=2)
    for t in g.meta["conv_terms"]:
        k = g.kernels[t["kernel"]]
        src, dst = g.blocks[t["in_block"]], g.blocks[t["out_block"]]
        got = stencil.edge_count(k, t, src.shape, dst.shape)
        assert got == g.csr()[src.start : src.stop][:, dst.start : dst.stop].nnz
        if not t.get("pools") and t.get("groups", 1) == 1:  # the per-tap formula of plain convs
            (sh, sw), (ph, pw), (dh, dw) = t["stride"], t["padding"], t["dilation"]

            def valid(out, kk, s, p, d, side):
                pos = np.arange(out)[None, :] * s - p + np.arange(kk)[:, None] * d
                return ((pos >= 0) & (pos < side)).sum(axis=1)

            vy = valid(dst.shape[1], k.shape[2], sh, ph, dh, src.shape[1])
            vx = valid(dst.shape[2], k.shape[3], sw, pw, dw, src.shape[2])
            taps = np.count_nonzero(k, axis=(0, 1))
            assert got == int((taps * vy[:, None] * vx[None, :]).sum())


def test_asymmetric_padding_is_a_term():
    class Asym(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 3, 3, bias=False)
            self.b = nn.Conv2d(3, 2, 3, stride=2, bias=False)

        def forward(self, x):
            x = self.a(F.pad(x, (0, 1, 0, 1)))  # far side only (TF "same" of stride 2)
            return self.b(F.pad(x, (1, 2, 1, 2)))

    net = Asym()
    weights = _masked_positive(net, 0.8)
    spec = layer_spec(net, (2, 7, 8))
    if not any("padding_end" in lay for lay in spec["layers"]):
        pytest.skip("this torch trace records the pads as separate ops")
    g = build_graph("mge", spec, weights)
    terms = _terms_by_layer(g)
    assert sorted(terms) == ["a", "b"]
    a = g.csr().toarray().astype(np.float64)
    for term in terms.values():
        block = a[term.src.start : term.src.stop, term.dst.start : term.dst.stop]
        mat = _term_matrix(term)
        np.testing.assert_array_equal(mat != 0, block != 0)
        np.testing.assert_allclose(mat, block, rtol=1e-7)


def test_a_term_that_does_not_reproduce_its_edges_is_left_in_the_csr(monkeypatch):
    real = mgemod._term_geometry

    def off_by_one(lay):
        geo = real(lay)
        if lay["name"] == "conv":
            geo["padding"] = [geo["padding"][0], geo["padding"][1] - 1]  # the edges disagree
        return geo

    monkeypatch.setattr(mgemod, "_term_geometry", off_by_one)
    net, shape = CASES["max3s2p1_even"]
    g = build_graph("mge", layer_spec(net, shape), _masked_positive(net, 0.7))
    assert sorted(t["layer"] for t in g.meta["conv_terms"]) == ["stem", "tail"]
    # a wrong weight with the right structure: the count agrees, the products do not
    monkeypatch.setattr(mgemod, "_term_geometry", real)
    calls = []

    class BadKernel(mgemod._TermCheck):
        def __init__(self, lay, w, dst_base, shapes):
            calls.append(lay["name"])
            w = w.copy()
            if lay["name"] == "conv":
                w[np.unravel_index(np.flatnonzero(w)[0], w.shape)] *= 1.01
            super().__init__(lay, w, dst_base, shapes)

    monkeypatch.setattr(mgemod, "_TermCheck", BadKernel)
    g = build_graph("mge", layer_spec(net, shape), _masked_positive(net, 0.7))
    assert sorted(t["layer"] for t in g.meta["conv_terms"]) == ["stem", "tail"]
    assert sorted(calls) == ["conv", "stem", "tail"]


@pytest.mark.parametrize("name", ["max3s2p1_odd", "pool_depthwise", "grouped_depthwise"])
def test_symmetric_operator_and_expansion_values_equal_the_csr(name, monkeypatch):
    _, g, _ = _graph(name, seed=3)
    monkeypatch.setattr(co, "MIN_COVERAGE", 0.0)
    op = co.conv_adjacency(g, co_rest, seed=0)
    assert op is not None
    a = g.csr().toarray().astype(np.float64)
    s = a + a.T
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.normal(size=g.n_nodes)
        # float32 rounding of pooled sums in the CSR, relative to the terms' magnitudes
        assert np.all(np.abs(op @ x - s @ x) <= 1e-6 * (s @ np.abs(x)))
    params = {"dense_eig_max_nodes": 10, "eigsh_tol": 1e-13, "threads": 1, "seed": 0}
    with_terms = compute_family("expansion", g, params)["network"]
    monkeypatch.setattr(co, "MIN_DENSITY", 1e9)
    assert co.conv_terms(g) == []
    csr_only = compute_family("expansion", g, params)["network"]
    for key in ("spectral_gap", "spectral_radius"):
        assert with_terms[key] == pytest.approx(csr_only[key], rel=1e-6)


def test_graph_file_round_trip_and_checks_of_the_new_fields(tmp_path):
    _, g, _ = _graph("pool_grouped")
    terms = g.meta["conv_terms"]
    conv = next(t for t in terms if t["layer"] == "conv")
    assert conv["groups"] == 2 and len(conv["pools"]) == 1
    assert all("groups" not in t and "pools" not in t for t in terms if t is not conv)
    save_graph(tmp_path / "g.npz", g)
    back = load_graph(tmp_path / "g.npz")
    assert back.meta["conv_terms"] == terms
    for k in g.kernels:
        np.testing.assert_array_equal(back.kernels[k], g.kernels[k])
    x = np.random.default_rng(0).uniform(size=g.n_nodes)
    np.testing.assert_array_equal(
        co.conv_adjacency(back, co_rest, seed=0) @ x, co.conv_adjacency(g, co_rest, seed=0) @ x
    )

    def broken(change, match):
        import copy

        bad = copy.deepcopy(g)
        change(next(t for t in bad.meta["conv_terms"] if t["layer"] == "conv"))
        path = tmp_path / "bad.npz"
        save_graph(path, bad)
        with pytest.raises(GraphError, match=match):
            load_graph(path)

    broken(lambda t: t.update(groups=0), r"conv_terms\[\d\]\.groups is 0")
    broken(lambda t: t.update(groups="2"), r"groups is '2'")
    broken(lambda t: t.update(groups=1), "does not fit its blocks")  # kernel has C_in/2
    broken(lambda t: t.update(groups=4), "does not fit its blocks")  # 6 outputs: not by 4
    broken(lambda t: t.update(pools={}), r"pools is \{\}")
    broken(lambda t: t["pools"][0].update(stride=[2]), r"pools\[0\]\.stride is \[2\]")
    broken(lambda t: t["pools"][0].update(in_shape=[4, 10, 10]), "does not fit its blocks")
    broken(lambda t: t["pools"][0].update(out_shape=[4, 5, 6]), "does not fit its blocks")
    broken(lambda t: t.update(padding_end=[-1, 0]), r"padding_end is \[-1, 0\]")
    broken(lambda t: t.update(padding_end=[3, 1]), "does not fit its blocks")


def co_rest(graph):
    from snntopo.metrics.expansion import _SymmetricOperator

    return _SymmetricOperator(graph, threads=1, block_parts=False)


def test_the_check_refuses_edges_outside_the_pair():
    net, shape = CASES["max3s2p1_odd"]
    spec = layer_spec(net, shape)
    weights = _masked_positive(net, 0.7)
    shapes = {b["name"]: list(b["shape"]) for b in spec["blocks"]}
    lay = next(x for x in spec["layers"] if x["name"] == "conv")
    w = weights["conv.weight"]
    n_src = int(np.prod(shapes[lay["in_block"]]))
    n_dst = int(np.prod(shapes[lay["out_block"]]))
    base = 10_000  # the target block's first id
    geo = mgemod._conv_geometry(lay, "exact", is_first=False)
    a = mgemod._unpool(mgemod._conv_csr(w, lay, geo, base, base + n_dst), lay["pools"], n_src)
    assert mgemod._stencil_pair(lay, w, a, base, shapes)
    # the same edges read with the wrong first target id: shifted inside the pair (the products
    # differ), or the last target one past the pair (refused before the unchecked C product)
    assert not mgemod._stencil_pair(lay, w, a, base + 1, shapes)
    assert not mgemod._stencil_pair(lay, w, a, base - 1, shapes)
