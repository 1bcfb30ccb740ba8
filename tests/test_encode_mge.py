"""MGE against independent truths: autograd Jacobians, path counts, node-count formulas, the paper."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from snntopo.encode import build_graph
from snntopo.encode.layers import layer_spec
from snntopo.models import build_model, prunable_parameters


def _masked_positive(model: nn.Module, density: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Positive random masked weights (no cancellations, so Jacobian zeros = missing edges)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    with torch.no_grad():
        for name, p in prunable_parameters(model):
            w = torch.rand(p.shape, generator=gen) + 0.1
            w *= (torch.rand(p.shape, generator=gen) < density).float()
            p.copy_(w)
            out[name] = w.numpy().copy()
    return out


def _jacobian(f: nn.Module, shape: tuple[int, ...]) -> np.ndarray:
    x = torch.rand(shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: f(t[None].float())[0].double(), x)
    return jac.reshape(-1, int(np.prod(shape))).numpy()  # [out, in]


class OneConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel, stride, padding, dilation=1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False)

    def forward(self, x):
        return self.conv(x)


CONV_CASES = [
    # c_in, c_out, kernel, stride, padding, dilation, input (C, H, W)
    (2, 3, 3, 1, 1, 1, (2, 7, 7)),
    (2, 3, 3, 2, 1, 1, (2, 8, 8)),
    (2, 3, 3, 2, 1, 1, (2, 7, 9)),
    (3, 2, 3, 1, 0, 1, (3, 6, 5)),
    (2, 4, 1, 1, 0, 1, (2, 5, 5)),
    (2, 4, 1, 2, 0, 1, (2, 6, 7)),
    (2, 2, (3, 2), (2, 1), (1, 0), 1, (2, 7, 6)),
    (2, 2, 3, 1, 2, 2, (2, 6, 6)),
    (3, 3, 5, 3, 2, 1, (3, 9, 8)),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_block_equals_jacobian(case):
    c_in, c_out, k, s, p, d, shape = case
    net = OneConv(c_in, c_out, k, s, p, d)
    weights = _masked_positive(net, 0.5)
    g = build_graph("mge", layer_spec(net, shape), weights)
    jac = _jacobian(net, shape)
    n_in = int(np.prod(shape))
    a = g.csr().toarray()
    assert g.n_nodes == n_in + jac.shape[0]
    assert a[:, :n_in].sum() == 0 and a[n_in:].sum() == 0  # only input -> output edges
    # Each (input, output) pair is linked by exactly one tap, so values agree too.
    np.testing.assert_allclose(a[:n_in, n_in:].T, jac, rtol=1e-6)


class PoolConv(nn.Module):
    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(self.pool(x))


@pytest.mark.parametrize("window", [2, 3])
def test_pooling_folds_like_structural_jacobian(window):
    shape = (2, 7, 8)  # not divisible by 3: border positions belong to no window
    net = PoolConv(nn.MaxPool2d(window))
    weights = _masked_positive(net, 0.6)
    g = build_graph("mge", layer_spec(net, shape), weights)
    avg = PoolConv(nn.AvgPool2d(window))  # same windows, nonzero derivative on every position
    avg.load_state_dict(net.state_dict())
    jac = _jacobian(avg, shape)
    n_in = int(np.prod(shape))
    a = g.csr().toarray()[:n_in, n_in:].T
    np.testing.assert_array_equal(a != 0, jac != 0)
    # Replicated edges keep the conv weight (avg Jacobian = weight / window area).
    np.testing.assert_allclose(a[jac != 0], jac[jac != 0] * window * window, rtol=1e-5)


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 7)
        self.fc2 = nn.Linear(7, 5)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_linear_blocks_equal_weights():
    net = TinyMLP()
    weights = _masked_positive(net, 0.5)
    spec = layer_spec(net, (12,))
    g = build_graph("mge", spec, weights)
    a = g.csr().toarray()
    np.testing.assert_array_equal(a[:12, 12:19].T, weights["fc1.weight"])
    np.testing.assert_array_equal(a[12:19, 19:].T, weights["fc2.weight"])


class TinyCNN(nn.Module):
    """conv -> relu -> maxpool -> conv(stride 2) -> flatten -> linear -> linear, no shortcuts."""

    def __init__(self, pool: type[nn.Module] = nn.MaxPool2d) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.pool = pool(2)
        self.c2 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.fc1 = nn.Linear(4 * 2 * 2, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.c1(x)))
        x = torch.flatten(self.c2(x), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def test_path_count_equals_product_of_jacobian_patterns():
    shape = (2, 8, 8)
    net = TinyCNN()
    weights = _masked_positive(net, 0.5, seed=3)
    g = build_graph("mge", layer_spec(net, shape), weights)
    # Paths through the layered DAG: propagate a ones vector through the 0/1 adjacency.
    adj = g.csr(weighted=False)
    v = np.zeros(g.n_nodes)
    v[: g.input_block.size] = 1
    paths = np.zeros(g.n_nodes)
    for _ in range(len(g.blocks) - 1):
        v = adj.T @ v
        paths += v
    n_paths = paths[g.output_block.start :].sum()
    # Independent truth: 0/1 patterns of each stage's Jacobian (max pool -> avg pool).
    avg = TinyCNN(nn.AvgPool2d)
    avg.load_state_dict(net.state_dict())
    stages = [
        (avg.c1, shape),
        (nn.Sequential(avg.pool, avg.c2), (3, 8, 8)),
        (nn.Sequential(nn.Flatten(0), avg.fc1), (4, 2, 2)),
        (avg.fc2, (6,)),
    ]
    prod = None
    for f, shp in stages:
        x = torch.rand(shp)
        jac = torch.autograd.functional.jacobian(lambda t, f=f: f(t).flatten(), x)
        pat = sp.csr_array((jac.reshape(jac.shape[0], -1).numpy() != 0).astype(np.float64))
        prod = pat if prod is None else pat @ prod
    assert n_paths == pytest.approx(prod.sum(), rel=1e-12)
    assert n_paths > 0


PAPER_NODES = {"conv6": 233_366, "resnet20": 191_894, "resnet32": 306_582, "wrn28_2": 478_614}


def _exact_formula(spec: dict) -> int:
    n = int(np.prod(spec["input_shape"]))
    for lay in spec["layers"]:
        if lay["role"] == "main":
            n += int(np.prod(lay["out_shape"]))
    return n


@pytest.mark.parametrize("arch", list(PAPER_NODES))
def test_node_counts_exact_and_reference(arch):
    model = build_model(arch, num_classes=10, seed=0)
    spec = layer_spec(model, (3, 32, 32), arch=arch)
    weights = _masked_positive(model, 0.01)
    exact = build_graph("mge", spec, weights)
    assert exact.n_nodes == _exact_formula(spec) == PAPER_NODES[arch] - 3 * (34 * 34 - 32 * 32)
    ref = build_graph("mge", spec, weights, mode="reference")
    assert ref.n_nodes == PAPER_NODES[arch]
    assert ref.input_block.shape == (3, 34, 34)


def _spurious(g) -> tuple[int, int]:
    indeg, outdeg = g.in_degree(), g.out_degree()
    inner = np.zeros(g.n_nodes, bool)
    inner[g.input_block.stop : g.output_block.start] = True
    sources = int(np.sum(inner & (indeg == 0) & (outdeg > 0)))
    sinks = int(np.sum(inner & (outdeg == 0) & (indeg > 0)))
    return sources, sinks


@pytest.mark.parametrize(("arch", "sources"), [("resnet20", 2000), ("wrn28_2", 4000)])
def test_reference_mode_reproduces_stride2_misalignment(arch, sources):
    model = build_model(arch, seed=0)
    spec = layer_spec(model, (3, 32, 32), arch=arch)
    # Dense WRN has ~1.5e8 edges; at 30% density (first conv dense: its fan-in is small) every
    # activation still has in- and out-edges, so any source/sink comes from the geometry.
    weights = _masked_positive(model, 0.3 if arch == "wrn28_2" else 1.0)
    weights["conv1.weight"] = np.abs(weights["conv1.weight"]) + 0.5
    ref = build_graph("mge", spec, weights, mode="reference")
    exact = build_graph("mge", spec, weights)
    assert _spurious(exact) == (0, 0)
    src, sinks = _spurious(ref)
    assert src == sources  # the spec's 2000 (R20) / 4000 (WRN) spurious sources
    assert 0.7 * sources < sinks < 0.8 * sources  # 1504 / 3008 spurious sinks
    # Padding nodes of the first conv carry edges in reference mode.
    assert ref.out_degree()[: ref.input_block.stop].min() > 0


def test_shortcut_and_identity_edges():
    model = build_model("resnet20", width=0.25, seed=0)
    spec = layer_spec(model, (3, 16, 16))
    weights = _masked_positive(model, 1.0)
    g = build_graph("mge", spec, weights)
    blocks = {b.name: b for b in g.blocks}
    a = g.csr()
    src_b, dst_b = blocks["layer1.2.conv2"], blocks["layer2.0.conv2"]
    sub = a[src_b.start : src_b.stop, dst_b.start : dst_b.stop]
    w = weights["layer2.0.shortcut.0.weight"]
    assert sub.nnz == w.shape[0] * w.shape[1] * dst_b.size // dst_b.shape[0]  # 1x1 s2: one per out
    gi = build_graph("mge", spec, weights, identity_edges=True)
    extra = sum(blocks[s["from_block"]].size for s in spec["identity_shortcuts"])
    assert gi.n_edges == g.n_edges + extra
    with pytest.raises(Exception, match="identity_edges"):
        build_graph("mge", spec, weights, mode="reference", identity_edges=True)


def test_rows_sorted_and_weights_positive():
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    spec = layer_spec(model, (3, 16, 16))
    weights = _masked_positive(model, 0.3)
    for mode in ("exact", "reference"):
        g = build_graph("mge", spec, weights, mode=mode)
        a = g.csr()
        assert a.has_canonical_format
        assert g.weights.dtype == np.float32 and g.weights.min() > 0
        assert g.indices.dtype == np.int32 and g.indptr.dtype == np.int64
