"""The bounded-memory code paths of the metric kernels give the same numbers as independent
references (igraph, networkx, dense linear algebra, scipy's own sparse sum).

Every chunked pass is run with tiny chunks (a few entries), so chunk boundaries fall inside rows,
between rows and on empty rows; the structures and values must not depend on the chunk size.
"""

from __future__ import annotations

import igraph as ig
import numpy as np
import pytest
import scipy.sparse as sp

from snntopo.encode.graph import Block, from_edges
from snntopo.metrics import algorithms as al
from snntopo.metrics import compute_family
from snntopo.metrics import expansion as exmod
from snntopo.metrics import neighbourhood as nbmod
from tests.test_metrics_families import layered_graph


@pytest.fixture(params=[3, 1 << 23], ids=["tiny-chunks", "default-chunks"])
def chunk(request, monkeypatch):
    """Tiny chunks also send every in-list build through the chunked counting sort (small graphs
    otherwise take the numpy sort), so both paths meet the same references."""
    monkeypatch.setattr(al, "EDGE_CHUNK", request.param)
    if request.param < 1 << 10:
        monkeypatch.setattr(al, "NUMPY_IN_LISTS_MAX_EDGES", -1)
    return request.param


def multigraph(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    m = int(rng.integers(0, 3 * n))
    s, d = rng.integers(0, n, m), rng.integers(0, n, m)  # self-loops, parallel, reciprocal
    graph = from_edges(s, d, np.ones(m), [Block("a", 0, n, (n,))])
    ref = ig.Graph(n=n, edges=list(zip(s.tolist(), d.tolist(), strict=True)), directed=True)
    return graph, ref


def test_row_chunks_cover_every_row_once():
    indptr = np.array([0, 0, 5, 5, 6, 20, 20, 21])
    for c in (1, 2, 3, 7, 100):
        pairs = al.row_chunks(indptr, c)
        assert pairs[0][0] == 0 and pairs[-1][1] == 7
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(pairs, pairs[1:], strict=False))


@pytest.mark.parametrize("seed", range(25))
def test_undirected_adjacency_rows_are_the_igraph_neighbour_multisets(seed, chunk):
    graph, ref = multigraph(seed)
    indptr, indices = al.undirected_adjacency(graph, virtual_root=True)
    n = graph.n_nodes
    assert indices.dtype == np.int32
    for v in range(n):
        assert sorted(indices[indptr[v] : indptr[v + 1]].tolist()) == sorted(
            ref.neighbors(v, mode="all")
        )
    assert indices[indptr[n] :].tolist() == list(range(n))


@pytest.mark.parametrize("seed", range(25))
def test_chunked_bridges_components_and_coreness_match_igraph(seed, chunk):
    graph, ref = multigraph(200 + seed)
    n_b, n_ap, n_c = al.bridges_articulation_components(graph)
    assert (n_b, n_ap) == (len(ref.bridges()), len(ref.articulation_points()))
    assert n_c == len(ref.connected_components(mode="weak"))
    in_ptr, in_src = al.in_neighbour_lists(graph)
    core = al.coreness(graph.indptr, graph.indices, in_ptr, in_src)
    np.testing.assert_array_equal(core, ref.coreness(mode="all"))


@pytest.mark.parametrize("seed", range(4))
def test_simple_dag_paths_match_igraph(seed, chunk):
    """Layered DAGs (the MGE case) take the fast paths: simple-DAG low points, sorted S."""
    graph = layered_graph([7, 11, 9, 6, 4], 0.12, seed, skip=0.04)
    assert al.is_simple_dag(graph)
    ref = graph.to_igraph()
    assert al.bridges_articulation_components(graph) == (
        len(ref.bridges()),
        len(ref.articulation_points()),
        len(ref.connected_components(mode="weak")),
    )
    indptr, indices = al.simple_undirected_adjacency(graph)
    dense = np.zeros((graph.n_nodes,) * 2, dtype=bool)
    dense[graph.sources(), graph.indices] = True
    dense |= dense.T
    expect = sp.csr_array(dense)
    np.testing.assert_array_equal(indptr, expect.indptr)
    np.testing.assert_array_equal(indices, expect.indices)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("virtual_root", [False, True])
def test_upward_dag_structure_is_the_sorted_rows_of_a_plus_a_transpose(seed, virtual_root, chunk):
    """An upward DAG's undirected structure (every MGE; built by the chunked counting sort, no
    A^T) is scipy's canonical A + A^T row for row, empty rows included (sparse blocks leave
    some), with the virtual root's row after it; in_neighbour_lists is scipy's CSC."""
    graph = layered_graph([9, 14, 12, 8, 5], 0.08, 50 + seed, skip=0.05)
    assert al.is_simple_dag(graph) and (np.diff(graph.indptr) == 0).any()
    n = graph.n_nodes
    indptr, indices = al.undirected_adjacency(graph, virtual_root=virtual_root)
    a = sp.csr_array((np.ones(graph.n_edges), graph.indices, graph.indptr), shape=(n, n))
    ref = (a + a.T).tocsr()
    ref.sort_indices()
    np.testing.assert_array_equal(indptr[: n + 1], ref.indptr)
    np.testing.assert_array_equal(indices[: ref.indptr[-1]], ref.indices)
    assert indices.dtype == np.int32
    if virtual_root:
        assert indptr[-1] == indptr[n] + n and indices[indptr[n] :].tolist() == list(range(n))
    csc = a.tocsc()
    csc.sort_indices()
    in_ptr, in_src = al.in_neighbour_lists(graph)
    np.testing.assert_array_equal(in_ptr, csc.indptr)
    np.testing.assert_array_equal(in_src, csc.indices)
    wide = al.undirected_adjacency(graph, virtual_root=virtual_root, dtype=np.int64)
    assert wide[1].dtype == np.int64 and np.array_equal(wide[1], indices)


def test_direction_and_parallel_edge_checks():
    blocks = [Block("a", 0, 5, (5,))]
    up = from_edges(np.array([0, 0, 1, 3]), np.array([1, 2, 4, 4]), np.ones(4), blocks)
    down = from_edges(np.array([4, 3, 2]), np.array([0, 1, 0]), np.ones(3), blocks)
    mixed = from_edges(np.array([0, 3]), np.array([1, 2]), np.ones(2), blocks)
    par = from_edges(np.array([0, 0, 2]), np.array([1, 1, 3]), np.ones(3), blocks)
    assert (al.edge_direction(up), al.edge_direction(down), al.edge_direction(mixed)) == (1, -1, 0)
    assert not al.has_parallel_edges(up) and al.has_parallel_edges(par)
    assert al.is_simple_dag(up) and not al.is_simple_dag(par) and not al.is_simple_dag(mixed)


@pytest.mark.parametrize("seed", range(3))
def test_fast_closed_structure_equals_scipy_sum(seed, chunk):
    graph = layered_graph([6, 9, 9, 7, 3], 0.25, seed, skip=0.05)
    fast = nbmod._closed_structure(graph)
    n = graph.n_nodes
    ref = (graph.csr() + sp.eye_array(n, format="csr")).tocsr()
    ref.sort_indices()
    np.testing.assert_array_equal(fast.indptr, ref.indptr)
    np.testing.assert_array_equal(fast.indices, ref.indices)
    assert nbmod.two_hop_total(fast, 5) == nbmod.two_hop_total(ref, 5)


@pytest.mark.parametrize("skip", [0.0, 0.05])
def test_part_split_operator_equals_dense_symmetric_matrix(skip, chunk):
    graph = layered_graph([20, 30, 30, 25, 10], 0.2, 3, skip=skip)
    n = graph.n_nodes
    dense = np.zeros((n, n))
    dense[graph.sources(), graph.indices] = graph.weights
    dense = dense + dense.T
    x = np.random.default_rng(0).normal(size=n)
    for threads, blocks in ((1, False), (2, False), (3, True)):
        op = exmod._SymmetricOperator(graph, threads=threads, block_parts=blocks)
        np.testing.assert_allclose(op @ x, dense @ x, rtol=1e-12, atol=1e-12)
        lap = op.laplacian()
        np.testing.assert_allclose(
            lap @ x, np.diag(dense.sum(0)) @ x - dense @ x, rtol=1e-12, atol=1e-12
        )
    side = exmod.block_bipartition(graph)
    if skip:
        assert side is None
        return
    # x on one block parity: the half products give S x exactly
    op = exmod._SymmetricOperator(graph, threads=2, block_parts=True)
    assert len(op.parts) >= len(graph.blocks)
    for parity in (True, False):
        xs = np.where(side == parity, x, 0.0)
        np.testing.assert_allclose(op.apply(xs, side=parity), dense @ xs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("product_chunk", [1, 7, 1 << 20])
def test_operator_on_float32_weights_is_bit_for_bit_the_float64_copys(product_chunk, monkeypatch):
    """Issue 29: the operator reads the graph's float32 weights, converted chunk by chunk; its
    single-thread products and Laplacian degrees are those of scipy on a float64 copy, to the bit,
    at any chunk size (a row longer than the chunk included)."""
    monkeypatch.setattr(exmod, "PRODUCT_CHUNK", product_chunk)
    graph = layered_graph([20, 30, 30, 25, 10], 0.3, 3, skip=0.05)
    assert graph.weights.dtype == np.float32
    a64 = sp.csr_array(
        (graph.weights.astype(np.float64), graph.indices, graph.indptr),
        shape=(graph.n_nodes,) * 2,
    )
    x = np.random.default_rng(1).normal(size=graph.n_nodes)
    op = exmod._SymmetricOperator(graph, threads=1, block_parts=False)
    assert op.a.data.dtype == np.float32  # no float64 copy of the weights is held
    assert np.array_equal(op @ x, a64 @ x + a64.T @ x)
    ones = np.ones(graph.n_nodes)
    assert np.array_equal(op.laplacian().deg, a64 @ ones + a64.T @ ones)
    np.testing.assert_array_equal(op.toarray(), (a64 + a64.T).toarray())


def test_expansion_with_tiny_parts_equals_dense_eigenvalues(chunk):
    graph = layered_graph([40, 60, 60, 50, 20], 0.15, 5)
    n = graph.n_nodes
    dense = np.zeros((n, n))
    dense[graph.sources(), graph.indices] = graph.weights
    dense = dense + dense.T
    ev = np.linalg.eigvalsh(dense)
    mags = np.sort(np.abs(ev))[::-1]
    lap = np.linalg.eigvalsh(np.diag(dense.sum(0)) - dense)
    params = {"dense_eig_max_nodes": 10, "eigsh_tol": 1e-12, "threads": 2}
    net = compute_family("expansion", graph, params)["network"]
    assert net["spectral_gap"] == pytest.approx(mags[0] - mags[2], rel=1e-8)
    assert net["spectral_radius"] == pytest.approx(lap.max(), rel=1e-10)


@pytest.mark.slow
def test_metric_and_encode_jobs_import_no_torch(tmp_path):
    """What the encode and metrics_<family> rules run imports no torch (1-3 s per process)."""
    import json
    import subprocess
    import sys

    from safetensors.numpy import save_file

    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model, prunable_parameters

    model = build_model("resnet20", 10, 3, 8, 0.25, seed=0)
    spec = layer_spec(model, (3, 8, 8))
    (tmp_path / "layers.json").write_text(json.dumps(spec))
    save_file(
        {n: p.detach().numpy().copy() for n, p in prunable_parameters(model)},
        str(tmp_path / "init.safetensors"),
    )
    code = f"""
import sys
from snntopo.stages import compute_metrics, encode_network
d = {str(tmp_path)!r}
encode_network("mge", d + "/layers.json", d + "/init.safetensors", {{}}, d + "/mge.npz")
for fam in ("local", "neighbourhood", "strength", "global", "expansion"):
    compute_metrics(fam, {{"mge": d + "/mge.npz"}}, {{"seed": 0, "threads": 2}}, d + f"/{{fam}}.json")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "expansion.json").exists()


def test_implicit_local_and_strength_jobs_import_no_scipy(tmp_path):
    """The implicit local and strength jobs need numpy alone: scipy.sparse would cost each
    process ~0.15 s of imports (issue 29's ResNet-20 budget), so a subprocess running both on a
    ResNet-20 MGE must not have loaded any scipy module (and did take the implicit path)."""
    import json
    import subprocess
    import sys

    from safetensors.numpy import save_file

    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model, prunable_parameters
    from snntopo.stages import encode_network

    model = build_model("resnet20", 10, 3, 8, 0.25, seed=0)
    (tmp_path / "layers.json").write_text(json.dumps(layer_spec(model, (3, 8, 8))))
    save_file(
        {n: p.detach().numpy().copy() for n, p in prunable_parameters(model)},
        str(tmp_path / "init.safetensors"),
    )
    d = str(tmp_path)
    encode_network("mge", d + "/layers.json", d + "/init.safetensors", {}, d + "/mge.npz")
    code = f"""
import sys
from snntopo.stages import compute_metrics
d = {d!r}
for fam in ("local", "strength"):
    compute_metrics(fam, {{"mge": d + "/mge.npz"}}, {{"seed": 0}}, d + f"/{{fam}}.json")
print(sorted(m for m in sys.modules if m.split(".")[0] == "scipy"))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
    for fam in ("local", "strength"):
        art = json.loads((tmp_path / f"{fam}.json").read_text())
        assert art["encodings"]["mge"]["provenance"]["computed"]["path"] == "implicit"


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_count_ids_in_chunks_is_bincount(chunk):
    from snntopo.encode.graph import count_ids

    rng = np.random.default_rng(chunk)
    for n, m in ((1, 0), (7, 5), (50, 1001)):
        ids = rng.integers(0, n, m).astype(np.int32)
        np.testing.assert_array_equal(count_ids(ids, n, chunk), np.bincount(ids, minlength=n))


def test_undirected_structure_holds_8_bytes_per_edge_besides_the_graph(monkeypatch):
    """Issue 29: the undirected structure of an MGE (the global family's peak) holds its result
    (2E int32) and nothing else per edge: O(n) offsets and fill pointers and chunk-sized
    buffers (A^T's indices and an int8 array of ones took it to 12 bytes per edge before, a
    one-shot merge to 16). Measured by tracemalloc, which sees numpy's allocations."""
    import tracemalloc

    chunk = 1 << 15
    monkeypatch.setattr(al, "EDGE_CHUNK", chunk)
    rng = np.random.default_rng(7)
    n, m = 20_000, 2_000_000
    s = rng.integers(0, n - 1, m)
    d = s + 1 + rng.integers(0, 5000, m) % (n - 1 - s)  # every edge to a higher id
    graph = from_edges(s, d, np.ones(m), [Block("a", 0, n, (n,))], sum_duplicates=True)
    e = graph.n_edges
    assert e > 1_500_000 and al.is_upward_dag(graph)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        indptr, indices = al.undirected_adjacency(graph, virtual_root=True, upward_simple=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert indices.shape[0] == 2 * e + n and indptr[-1] == 2 * e + n
    offsets = 8 * 8 * (n + 2)  # offsets, degrees, fill pointers, per-chunk column pointers
    longest_row = int(np.diff(graph.indptr).max())
    buffers = 32 * max(chunk, longest_row)  # a chunk's positions, sources and int8 ones
    assert peak <= 8 * e + offsets + buffers, peak / e
    assert peak <= 9 * e


@pytest.mark.parametrize("block", [1, 7, 1 << 24])
def test_triangle_count_in_row_blocks_equals_networkx(block, monkeypatch):
    """The BGE ``motif`` (connected triples) counts triangles in row blocks of the oriented
    2-path product instead of one A @ A (12.8 GB peak on vgg11_bn's rolled BGE): any block size
    gives networkx's triangle count."""
    import networkx as nx

    from snntopo.metrics import neighbourhood as nb

    monkeypatch.setattr(nb, "TRIANGLE_BLOCK_ENTRIES", block)
    rng = np.random.default_rng(5)
    for _ in range(12):
        n = int(rng.integers(1, 50))
        g = nx.gnp_random_graph(n, float(rng.random()) * 0.5, seed=int(rng.integers(1 << 30)))
        a = nx.to_scipy_sparse_array(g, format="csr", dtype=np.int64)
        a.sort_indices()
        assert nb.triangle_count(a.indptr, a.indices, n) == sum(nx.triangles(g).values()) // 3


@pytest.mark.parametrize("seed", range(6))
def test_two_part_dfs_and_its_fallback_match_igraph(seed, chunk, monkeypatch):
    """Bridges, articulation points and components come from scipy's undirected DFS over A and
    A^T (no merged structure: the merged one is not built); where that scipy routine is missing,
    the merged structure and the public depth_first_order give the same numbers."""
    from scipy.sparse.csgraph import _traversal

    graph, ref = multigraph(400 + seed)
    expect = (
        len(ref.bridges()),
        len(ref.articulation_points()),
        len(ref.connected_components(mode="weak")),
    )
    with monkeypatch.context() as m:

        def no_merge(*args, **kwargs):
            raise AssertionError("the merged structure was built")

        m.setattr(al, "undirected_adjacency", no_merge)
        assert al.bridges_articulation_components(graph) == expect
    monkeypatch.delattr(_traversal, "_depth_first_undirected")
    assert al.bridges_articulation_components(graph) == expect
