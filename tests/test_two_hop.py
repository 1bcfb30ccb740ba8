"""The 2-hop count (scipy's symbolic product of ``I + A``, in row chunks on threads) against
networkx on random layered DAGs with spatial blocks, on real MGEs (pooling, residual shortcuts,
identity edges, reference mode) and on BGE layers; chunk size, threads, counting one row per
translation class (with forced hash collisions too) and the fallback without scipy's symbolic
routine must not change it.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from snntopo.encode import build_graph
from snntopo.encode.graph import Block, from_edges
from snntopo.metrics import compute_family, translation
from snntopo.metrics import neighbourhood as nbmod

STRATEGIES = [
    dict(chunk_rows=16384, threads=1),  # the default
    dict(chunk_rows=1, threads=2),
    dict(chunk_rows=7, threads=1),
    dict(chunk_rows=16384, threads=1, classes=True),  # one row per translation class
    dict(chunk_rows=3, threads=2, classes=True, class_chunk=5),
]


def two_hop(graph, classes=False, class_chunk=translation.CHUNK, **kw) -> int:
    """The count through the built I + A and, for graphs whose edges all point to higher ids,
    through the implicit one read from the graph's arrays (:class:`ClosedRows`); both must agree
    (and the callers compare them with networkx)."""
    b = nbmod._closed_structure(graph)
    cl = translation.translation_classes(b, graph, chunk=class_chunk) if classes else None
    built = nbmod.two_hop_total(b, classes=cl, **kw)
    if nbmod.is_upward_dag(graph):
        c = nbmod.ClosedRows.of(graph)
        cl2 = translation.translation_classes(c, graph, chunk=class_chunk) if classes else None
        if classes and cl is not None:  # the same classes from the same rows, read implicitly
            assert [x.tolist() for x in cl2] == [x.tolist() for x in cl]
        assert nbmod.two_hop_total(c, classes=cl2, **kw) == built
    return built


def nx_two_hop_total(graph) -> int:
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.n_nodes))
    g.add_edges_from(zip(graph.sources().tolist(), graph.indices.tolist(), strict=True))
    return sum(len(nx.single_source_shortest_path_length(g, v, cutoff=2)) for v in g)


def random_layered_dag(seed: int):
    """Blocks of random (C, H, W) shapes plus a flat one; edges between any lower and higher id."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(x) for x in rng.integers(1, [4, 5, 5])) for _ in range(rng.integers(1, 5))]
    shapes.append((int(rng.integers(1, 6)),))
    blocks, o = [], 0
    for i, sh in enumerate(shapes):
        size = int(np.prod(sh))
        blocks.append(Block(f"b{i}", o, o + size, sh))
        o += size
    n = o
    m = int(rng.integers(0, 6 * n + 1))
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo[lo < hi] * n + hi[lo < hi])
    return from_edges(key // n, key % n, np.ones(key.shape[0]), blocks)


@pytest.mark.parametrize("seed", range(40))
def test_two_hop_equals_networkx_on_layered_dags(seed):
    graph = random_layered_dag(seed)
    truth = nx_two_hop_total(graph)
    for kw in STRATEGIES:
        assert two_hop(graph, **kw) == truth, kw


def _masked(model, density, seed=0):
    import torch

    from snntopo.models import prunable_parameters

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in prunable_parameters(model):
        w = (torch.rand(p.shape, generator=gen) + 0.1) * (
            torch.rand(p.shape, generator=gen) < density
        )
        out[name] = w.numpy().astype(np.float32)
    return out


MGE_CASES = [
    ("conv6", dict(input_size=16, width=0.125), (3, 16, 16), {}),  # max pooling between convs
    ("resnet20", dict(width=0.25), (3, 16, 16), {}),  # 1x1 stride-2 shortcuts
    ("resnet20", dict(width=0.25), (3, 16, 16), {"identity_edges": True}),  # identity shortcuts
    ("resnet20", dict(width=0.25), (3, 16, 16), {"mode": "reference"}),  # padded input block
]


def test_two_hop_on_a_small_resnet_mge(monkeypatch):
    """ResNet-20 at width 1/8 on 8x8 inputs: shortcuts, stride 2, every strategy, networkx."""
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    model = build_model("resnet20", width=0.125, seed=0)
    graph = build_graph("mge", layer_spec(model, (3, 8, 8)), _masked(model, 0.4))
    truth = nx_two_hop_total(graph)
    for s in STRATEGIES:
        assert two_hop(graph, **s) == truth, s
    monkeypatch.setattr(nbmod, "_maxnnz", None)  # scipy without the symbolic routine
    assert two_hop(graph, chunk_rows=100) == truth
    assert two_hop(graph, chunk_rows=9, classes=True) == truth


@pytest.mark.parametrize("seed", range(8))
def test_implicit_closed_rows_equal_the_built_structure(seed):
    """Every entry, row block and picked row set of the implicit I + A equals scipy's I + A
    (duplicates merged, rows sorted) of the same graph."""
    import scipy.sparse as sp

    graph = random_layered_dag(seed)
    if not nbmod.is_upward_dag(graph):
        pytest.skip("no edges")
    n = graph.n_nodes
    ref = (graph.csr() + sp.eye_array(n, format="csr")).tocsr()
    ref.sort_indices()
    c = nbmod.ClosedRows.of(graph)
    assert c.shape == ref.shape and c.nnz == ref.nnz
    np.testing.assert_array_equal(c.indptr, ref.indptr)
    src = np.repeat(np.arange(n), np.diff(ref.indptr))
    np.testing.assert_array_equal(c.targets(src, np.arange(ref.nnz)), ref.indices)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n + 1))
        ap, aj = c.block(lo, hi, np.int32)
        sub = ref[lo:hi]
        np.testing.assert_array_equal(ap, sub.indptr)
        np.testing.assert_array_equal(aj, sub.indices)
        rows = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        ap, aj = c.rows(rows, np.int64)
        sub = ref[rows]
        np.testing.assert_array_equal(ap, sub.indptr)
        np.testing.assert_array_equal(aj, sub.indices)


def test_family_reads_an_mges_closed_structure_implicitly(monkeypatch):
    """On an MGE the family never builds I + A (the built path is refused here), and its values
    equal networkx's."""
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    model = build_model("conv6", seed=0, input_size=16, width=0.125)
    graph = build_graph("mge", layer_spec(model, (3, 16, 16)), _masked(model, 0.3))

    def refuse(*a, **k):
        raise AssertionError("I + A built")

    monkeypatch.setattr(nbmod, "_closed_structure", refuse)
    monkeypatch.setattr(nbmod, "CLASS_MIN_MEAN_DEGREE", 0)  # through the translation classes
    monkeypatch.setattr(nbmod, "term_classes", lambda g: None)
    net = compute_family("neighbourhood", graph, {"motif_min_sample": 2})["network"]
    assert net["two_hop_nei"] == nx_two_hop_total(graph) / graph.n_nodes
    assert net["one_hop_nei"] == (graph.n_nodes + graph.n_edges) / graph.n_nodes


@pytest.mark.parametrize("case", MGE_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_two_hop_on_real_mges(case):
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    arch, kw, shape, enc = case
    model = build_model(arch, seed=0, **kw)
    spec = layer_spec(model, shape)
    graph = build_graph("mge", spec, _masked(model, 0.3), **enc)
    truth = nx_two_hop_total(graph)
    for s in STRATEGIES:
        assert two_hop(graph, **s) == truth, s
    net = compute_family("neighbourhood", graph, {"motif_min_sample": 2})["network"]
    assert net["two_hop_nei"] == truth / graph.n_nodes
    assert net["one_hop_nei"] == nbmod._closed_structure(graph).nnz / graph.n_nodes


@pytest.mark.parametrize("encoding", ["rolled", "rolled-channel"])
def test_neighbourhood_on_bge_layers_equals_networkx(encoding):
    from snntopo.encode.layers import layer_spec
    from snntopo.metrics.base import DEFAULT_PARAMS
    from snntopo.models import build_model

    model = build_model("resnet20", width=0.25, seed=0)
    graph = build_graph(encoding, layer_spec(model, (3, 16, 16)), _masked(model, 0.3))
    params = {**DEFAULT_PARAMS, "seed": 0, "threads": 2, "motif_min_sample": 1}
    checked = 0
    for _, layer in graph.layer_graphs():
        res = nbmod.neighbourhood_metrics(layer, params)
        assert res.values["two_hop_nei"] == nx_two_hop_total(layer) / layer.n_nodes
        checked += 1
    assert checked > 10


def test_graphs_with_loops_parallel_and_back_edges():
    # a self-loop, a parallel edge and a back edge: networkx agrees with the family's value
    s, d = np.array([0, 0, 1, 2, 2, 3]), np.array([1, 1, 2, 0, 2, 3])
    graph = from_edges(s, d, np.ones(6), [Block("a", 0, 4, (1, 2, 2))])
    net = compute_family("neighbourhood", graph, {"motif_min_sample": 1})["network"]
    assert net["two_hop_nei"] == nx_two_hop_total(graph) / 4


def _conv1d_chain(width: int, layers: int):
    """``layers`` + 1 blocks of shape (1, 1, width), each joined to the next by a full 3-tap
    convolution with zero padding: node x feeds x-1, x, x+1 of the next block."""
    blocks = [Block(f"b{i}", i * width, (i + 1) * width, (1, 1, width)) for i in range(layers + 1)]
    src, dst = [], []
    for i in range(layers):
        for x in range(width):
            for t in (x - 1, x, x + 1):
                if 0 <= t < width:
                    src.append(i * width + x)
                    dst.append((i + 1) * width + t)
    return from_edges(np.array(src), np.array(dst), np.ones(len(src)), blocks)


def test_translation_classes_of_a_conv_chain_by_hand():
    # 2 hops from block 0 reach 5 positions of block 2 in the interior, fewer near a border:
    # rows 0, 1, [2 .. w-3], w-2, w-1 of block 0 form 5 classes (w = 10, 6 interior rows)
    w = 10
    graph = _conv1d_chain(w, 3)
    b = nbmod._closed_structure(graph)
    reps, sizes = translation.translation_classes(b, graph)
    in_block0 = reps < w
    assert sorted(sizes[in_block0].tolist()) == [1, 1, 1, 1, w - 4]
    assert int(sizes.sum()) == graph.n_nodes
    assert two_hop(graph, classes=True) == nx_two_hop_total(graph)


def test_classes_merge_rows_of_real_mges_and_keep_the_count():
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    model = build_model("conv6", seed=0, input_size=16, width=0.125)
    graph = build_graph("mge", layer_spec(model, (3, 16, 16)), _masked(model, 0.3))
    b = nbmod._closed_structure(graph)
    reps, sizes = translation.translation_classes(b, graph)
    # the stencils repeat (16x16 maps of 8 channels: borders and the classifier stay apart)
    assert reps.shape[0] < 0.75 * graph.n_nodes
    assert int(sizes.sum()) == graph.n_nodes
    assert nbmod.two_hop_total(b, classes=(reps, sizes)) == nx_two_hop_total(graph)


@pytest.mark.parametrize("seed", range(6))
def test_hash_collisions_are_caught_by_the_exact_check(monkeypatch, seed):
    # every row hashes alike: only the entry-by-entry comparison separates the classes
    monkeypatch.setattr(translation, "_mix", lambda x: np.zeros(np.shape(x), dtype=np.uint64))
    graph = random_layered_dag(seed) if seed < 3 else _conv1d_chain(6 + seed, 3)
    assert two_hop(graph, classes=True, class_chunk=4) == nx_two_hop_total(graph)


def test_family_uses_the_classes_where_they_pay(monkeypatch):
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    model = build_model("resnet20", width=0.25, seed=0)
    graph = build_graph("mge", layer_spec(model, (3, 16, 16)), _masked(model, 0.3))
    calls = []
    real = translation.translation_classes

    def spy(b, g, **kw):
        calls.append(1)
        return real(b, g, **kw)

    monkeypatch.setattr(nbmod, "translation_classes", spy)
    monkeypatch.setattr(nbmod, "term_classes", lambda g: None)  # as for a graph without terms
    monkeypatch.setattr(nbmod, "CLASS_MIN_MEAN_DEGREE", 0)
    net = compute_family("neighbourhood", graph, {"motif_min_sample": 2})["network"]
    assert calls and net["two_hop_nei"] == nx_two_hop_total(graph) / graph.n_nodes
    monkeypatch.setattr(nbmod, "CLASS_MIN_MEAN_DEGREE", 10**9)
    calls.clear()
    net2 = compute_family("neighbourhood", graph, {"motif_min_sample": 2})["network"]
    assert not calls and net2["two_hop_nei"] == net["two_hop_nei"]


@pytest.mark.parametrize("symbolic", [True, False])
def test_windows_of_the_right_operand_past_int32_offsets(monkeypatch, symbolic):
    """Past 2**31 entries of I + A, each block of rows reads the window of A's rows it reaches
    (no int64 copy of the targets): forced here on small MGEs and random layered DAGs, with and
    without scipy's symbolic routine, per class and per row, the counts equal networkx's."""
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    monkeypatch.setattr(nbmod, "WIDE_ENTRIES", 1)
    if not symbolic:
        monkeypatch.setattr(nbmod, "_maxnnz", None)
    model = build_model("resnet20", width=0.125, seed=0)
    graphs = [build_graph("mge", layer_spec(model, (3, 8, 8)), _masked(model, 0.4))]
    graphs += [random_layered_dag(seed) for seed in range(6)]
    for graph in graphs:
        if not nbmod.is_upward_dag(graph):
            continue
        c = nbmod.ClosedRows.of(graph)
        assert nbmod._RightOperand(c).windowed
        truth = nx_two_hop_total(graph)
        assert nbmod.two_hop_total(c, chunk_rows=5, threads=2) == truth
        rows = np.arange(graph.n_nodes)
        assert int(nbmod.two_hop_rows(c, rows).sum()) == truth
