"""The MGE's conv block pairs applied as dense convolutions (metrics/conv_operator.py), against
torch's conv2d of |W|, the materialised graph, and the CSR operator's eigenvalues."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snntopo.encode import build_graph
from snntopo.encode.graph import GraphError, load_graph, save_graph
from snntopo.encode.layers import layer_spec
from snntopo.metrics import compute_family
from snntopo.metrics import conv_operator as co
from snntopo.metrics import expansion as exmod
from tests.test_encode_mge import _masked_positive

SHAPE = (3, 9, 8)


class DBlockNet(nn.Module):
    """Plain convs (stride 1 and 2, padding 0-2, dilation 2, a 1x1 shortcut), a pool-folded
    shortcut beside a plain conv on the same block (two terms reading one block; without the
    shortcut's term, a block read by a term and by other edges), max pooling and a linear
    head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(4, 5, 3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Conv2d(5, 5, 3, padding=2, dilation=2, bias=False)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.short = nn.Conv2d(4, 5, 1, bias=False)
        self.conv3 = nn.Conv2d(5, 6, (3, 2), stride=(1, 2), padding=(1, 0), bias=False)
        self.conv4 = nn.Conv2d(6, 6, 1, stride=1, padding=0, bias=False)
        self.head = nn.Linear(6 * 5 * 1, 4, bias=False)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = self.conv2(torch.relu(self.conv1(x))) + self.short(self.pool(x))
        y = self.conv4(self.conv3(y))
        y = F.max_pool2d(y, (1, 2), ceil_mode=True)
        return self.head(y.flatten(1))


class PlainStack(nn.Module):
    """Convs only: the MGE is bipartite by block parity (the half-product path)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False)
        self.c = nn.Conv2d(4, 3, 3, padding=1, bias=False)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def _graph(net: nn.Module, shape=SHAPE, density: float = 0.6, seed: int = 0):
    weights = _masked_positive(net, density, seed)
    return build_graph("mge", layer_spec(net, shape), weights), weights


def _dense(graph) -> np.ndarray:
    a = graph.csr().toarray().astype(np.float64)
    return a + a.T


def _csr_rest(graph):
    return exmod._SymmetricOperator(graph, threads=1, block_parts=False)


def test_only_plain_convs_that_alone_link_their_blocks_become_terms():
    g, _ = _graph(DBlockNet())
    names = [t["layer"] for t in g.meta["conv_terms"]]
    # the pool-folded shortcut is a term of its own pair; the linear head stays edges only
    assert sorted(names) == ["conv1", "conv2", "conv3", "conv4", "short", "stem"]
    assert [t["layer"] for t in g.meta["conv_terms"] if "pools" in t] == ["short"]
    assert set(g.kernels) == {t["kernel"] for t in g.meta["conv_terms"]}


@pytest.mark.parametrize("seed", range(3))
def test_each_term_is_torch_conv2d_of_abs_weight_and_its_csr_block(seed):
    net = DBlockNet()
    g, weights = _graph(net, seed=seed)
    a = g.csr().toarray().astype(np.float64)
    rng = np.random.default_rng(seed)
    mods = dict(net.named_modules())
    for t in g.meta["conv_terms"]:
        term = co._ConvTerm(
            t, g.kernels[t["kernel"]], g.blocks[t["in_block"]], g.blocks[t["out_block"]]
        )
        src, dst = term.src, term.dst
        block = np.zeros_like(a)  # the pair's edges alone
        block[src.start : src.stop, dst.start : dst.stop] = a[
            src.start : src.stop, dst.start : dst.stop
        ]
        x = np.zeros(g.n_nodes)
        x[src.start : src.stop] = rng.uniform(0.5, 1.5, src.size)
        y = np.zeros(g.n_nodes)
        term.forward(x, y)
        conv = mods[t["layer"]]
        inp = torch.from_numpy(x[src.start : src.stop].reshape(1, *src.shape))
        if t.get("pools"):  # the shortcut's 2x2 ceil-mode pool: window sums
            inp = F.avg_pool2d(inp, 2, ceil_mode=True, divisor_override=1)
        ref = F.conv2d(
            inp,
            torch.from_numpy(np.abs(weights[f"{t['layer']}.weight"]).astype(np.float64)),
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
        )
        np.testing.assert_allclose(y[dst.start : dst.stop], ref.numpy().ravel(), rtol=1e-12)
        np.testing.assert_allclose(y, block.T @ x, rtol=1e-12, atol=1e-12)
        xo = np.zeros(g.n_nodes)
        xo[dst.start : dst.stop] = rng.uniform(0.5, 1.5, dst.size)
        z = np.zeros(g.n_nodes)
        term.backward(xo, z)
        np.testing.assert_allclose(z, block @ xo, rtol=1e-12, atol=1e-12)
        assert term.n_edges == np.count_nonzero(block)


@pytest.mark.parametrize("chunk", [7, 1 << 23])
def test_residual_graph_is_the_graph_without_the_term_pairs(chunk, monkeypatch):
    monkeypatch.setattr(co, "EDGE_CHUNK", chunk)
    g, _ = _graph(DBlockNet())
    # without the shortcut's term, the stem's block is read by a term and by other edges
    terms = [t for t in co.conv_terms(g) if not t.pools]
    rest = co.residual_graph(g, terms)
    want = g.csr().toarray()
    for t in terms:
        want[t.src.start : t.src.stop, t.dst.start : t.dst.stop] = 0
    np.testing.assert_array_equal(rest.csr().toarray(), want)
    assert rest.n_edges == np.count_nonzero(want) > 0


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_operator_is_the_symmetric_adjacency_and_its_laplacian(threads):
    g, _ = _graph(DBlockNet(), seed=4)
    op = co.conv_adjacency(g, _csr_rest, seed=0, threads=threads)
    assert isinstance(op, co.ConvAdjacency)
    s = _dense(g)
    x = np.random.default_rng(1).normal(size=g.n_nodes)
    np.testing.assert_allclose(op @ x, s @ x, rtol=1e-12, atol=1e-12)
    lap = op.laplacian()
    np.testing.assert_allclose(lap @ x, s.sum(0) * x - s @ x, rtol=1e-12, atol=1e-12)


def test_half_products_on_a_bipartite_stack():
    g, _ = _graph(PlainStack(), shape=(2, 6, 6))
    side = exmod.block_bipartition(g)
    assert side is not None and len(g.meta["conv_terms"]) == 3
    op = co.conv_adjacency(
        g, lambda r: exmod._SymmetricOperator(r, threads=2, block_parts=True), seed=0, threads=2
    )
    assert op is not None and op.supports_side
    s = _dense(g)
    x = np.random.default_rng(2).normal(size=g.n_nodes)
    for parity in (True, False):
        xs = np.where(side == parity, x, 0.0)
        np.testing.assert_allclose(op.apply(xs, side=parity), s @ xs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("net,shape", [(DBlockNet(), SHAPE), (PlainStack(), (2, 6, 6))])
def test_expansion_values_equal_the_csr_operators(net, shape, monkeypatch):
    g, _ = _graph(net, shape=shape, seed=3)
    params = {"dense_eig_max_nodes": 10, "eigsh_tol": 1e-13, "threads": 2, "seed": 0}
    with_terms = compute_family("expansion", g, params)["network"]
    monkeypatch.setattr(co, "MIN_DENSITY", 2.0)  # no kernel is dense enough: CSR only
    assert co.conv_terms(g) == []
    csr_only = compute_family("expansion", g, params)["network"]
    for key in ("spectral_gap", "spectral_radius"):
        assert with_terms[key] == pytest.approx(csr_only[key], rel=1e-10)
    s = _dense(g)
    lap = np.linalg.eigvalsh(np.diag(s.sum(0)) - s)
    assert with_terms["spectral_radius"] == pytest.approx(lap.max(), rel=1e-10)


def test_kernels_that_disagree_with_the_edges_fall_back_to_the_csr(caplog):
    g, _ = _graph(DBlockNet(), seed=5)
    name = g.meta["conv_terms"][1]["kernel"]
    k = g.kernels[name]
    k[np.unravel_index(np.flatnonzero(k)[0], k.shape)] *= 1.5  # one tap off
    with caplog.at_level(logging.WARNING, logger="snntopo.metrics"):
        assert co.conv_adjacency(g, _csr_rest, seed=0) is None
    assert "do not reproduce its edges" in caplog.text


def test_sparse_kernels_stay_in_the_csr(monkeypatch):
    g, _ = _graph(DBlockNet(), density=0.3, seed=7)
    monkeypatch.setattr(co, "MIN_DENSITY", 0.0)
    # edges per (kernel entry x output position): pruned weights and padding taps lower it
    dens = sorted(t.n_edges / t.cost for t in co.conv_terms(g))
    assert dens[1] < dens[2]
    monkeypatch.setattr(co, "MIN_DENSITY", (dens[1] + dens[2]) / 2)  # two stay in the CSR
    assert len(co.conv_terms(g)) == len(dens) - 2
    monkeypatch.setattr(co, "MIN_COVERAGE", 0.0)
    op = co.conv_adjacency(g, _csr_rest, seed=0)
    assert op is not None
    x = np.random.default_rng(3).normal(size=g.n_nodes)
    np.testing.assert_allclose(op @ x, _dense(g) @ x, rtol=1e-12, atol=1e-12)


def test_terms_holding_few_edges_are_not_worth_the_setup(monkeypatch):
    g, _ = _graph(DBlockNet(), seed=2)
    share = sum(t.n_edges for t in co.conv_terms(g)) / g.n_edges
    assert 0 < share < 1  # the linear head stays in the CSR
    monkeypatch.setattr(co, "MIN_COVERAGE", share)
    assert co.conv_adjacency(g, _csr_rest, seed=0) is not None
    monkeypatch.setattr(co, "MIN_COVERAGE", share + 1e-9)
    assert co.conv_adjacency(g, _csr_rest, seed=0) is None


def test_graph_file_keeps_its_kernels_and_rejects_ones_that_do_not_fit(tmp_path):
    g, _ = _graph(DBlockNet())
    path = tmp_path / "g.npz"
    save_graph(path, g)
    back = load_graph(path)
    assert back.meta["conv_terms"] == g.meta["conv_terms"]
    for name, k in g.kernels.items():
        np.testing.assert_array_equal(back.kernels[name], k)
    bad = dict(g.kernels)
    first = g.meta["conv_terms"][0]["kernel"]
    bad[first] = bad[first][:, :1]  # wrong number of input channels
    g.kernels = bad
    save_graph(tmp_path / "bad.npz", g)
    with pytest.raises(GraphError, match="does not fit its blocks"):
        load_graph(tmp_path / "bad.npz")
    # a subgraph renumbers blocks: the terms do not travel with it
    assert "conv_terms" not in back.subgraph(0, back.blocks[2].stop).meta


def test_reference_mode_and_bges_have_no_terms():
    net = PlainStack()
    weights = _masked_positive(net, 0.6)
    spec = layer_spec(net, (2, 6, 6))
    assert "conv_terms" not in build_graph("mge", spec, weights, mode="reference").meta
    for enc in ("rolled", "rolled-channel"):
        assert build_graph(enc, spec, weights).kernels == {}
