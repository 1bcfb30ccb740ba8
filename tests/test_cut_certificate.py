"""The global family's sparse-certificate path (metrics/cut_certificate.py): its first forest is
a scan-first search (each vertex's parent its smallest-id neighbour one BFS level up, checked
with networkx), and bridges, articulation points and components through the certificate equal
igraph's on the whole graph -- random simple graphs (sparse ones with many bridges and
components, dense ones), paths and stars, paper-model MGEs, a mapped graph read in small blocks
with its pages released -- and the DFS path's."""

from __future__ import annotations

import igraph as ig
import networkx as nx
import numpy as np
import pytest

from snntopo.encode.graph import Block, from_edges, load_graph, save_graph
from snntopo.errors import ConfigError
from snntopo.memcheck import family_mb_per_million
from snntopo.metrics import compute_family
from snntopo.metrics import connectivity as conn
from snntopo.metrics import cut_certificate as cc
from snntopo.metrics.algorithms import bridges_articulation_components
from tests.test_two_hop import _masked


def simple_graph(n: int, m: int, seed: int):
    """A random simple graph as a DAG (every edge from the smaller to the larger id)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo[lo < hi] * n + hi[lo < hi])
    return from_edges(key // n, key % n, np.ones(key.shape[0]), [Block("a", 0, n, (n,))])


def igraph_counts(graph) -> tuple[int, int, int]:
    g = ig.Graph(
        n=graph.n_nodes,
        edges=list(zip(graph.sources().tolist(), graph.indices.tolist(), strict=True)),
    )
    return len(g.bridges()), len(g.articulation_points()), len(g.connected_components())


def through_certificate(graph) -> tuple[int, int, int]:
    return bridges_articulation_components(cc.certificate(graph))


@pytest.mark.parametrize("seed", range(60))
def test_counts_equal_igraph_on_random_simple_graphs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    m = int(rng.integers(0, [n, 2 * n, 6 * n][seed % 3] + 2))  # sparse to dense
    graph = simple_graph(n, m, 1000 + seed)
    assert through_certificate(graph) == igraph_counts(graph)


def test_paths_stars_and_isolated_vertices():
    n = 3000
    path = from_edges(np.arange(n - 1), np.arange(1, n), np.ones(n - 1), [Block("a", 0, n, (n,))])
    assert through_certificate(path) == (n - 1, n - 2, 1)
    star = from_edges(
        np.zeros(50, dtype=int), np.arange(1, 51), np.ones(50), [Block("a", 0, 60, (60,))]
    )  # 9 isolated vertices beside the star
    assert through_certificate(star) == (50, 1, 10)


@pytest.mark.parametrize("seed", range(12))
def test_the_first_forest_is_a_scan_first_search(seed):
    graph = simple_graph(40, 70 + 10 * seed, seed)
    parent = cc.scan_first_forest(cc._Rows(graph))
    g = nx.Graph()
    g.add_nodes_from(range(graph.n_nodes))
    g.add_edges_from(zip(graph.sources().tolist(), graph.indices.tolist(), strict=True))
    for comp in nx.connected_components(g):
        root = min(comp)
        level = nx.single_source_shortest_path_length(g, root)
        assert parent[root] == -1
        for v in comp - {root}:
            up = [u for u in g[v] if level[u] == level[v] - 1]
            assert parent[v] == min(up)


@pytest.mark.parametrize(
    ("arch", "kw", "shape"),
    [
        ("resnet20", dict(width=0.25), (3, 16, 16)),
        ("conv6", dict(input_size=16, width=0.125), (3, 16, 16)),
    ],
)
def test_family_on_mges_equals_the_dfs_path(arch, kw, shape):
    from snntopo.encode import build_graph
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    model = build_model(arch, seed=0, **kw)
    graph = build_graph("mge", layer_spec(model, shape), _masked(model, 0.15))
    dfs = compute_family("global", graph, {"cut_method": "dfs"})
    cert = compute_family("global", graph, {"cut_method": "certificate"})
    assert cert["network"] == dfs["network"]
    assert cert["provenance"]["computed"]["cut_method"] == "certificate"
    assert cert["provenance"]["computed"]["certificate_edges"] <= 2 * (graph.n_nodes - 1)
    b, a, c = igraph_counts(graph)
    assert (dfs["network"]["cut_edges"], dfs["network"]["cut_nodes"]) == (b, a)
    assert dfs["network"]["no_connected_components"] == c


def test_a_mapped_graph_in_small_blocks_with_pages_released(tmp_path, monkeypatch):
    graph = simple_graph(500, 900, 7)
    save_graph(tmp_path / "g.npz", graph)
    mapped = load_graph(tmp_path / "g.npz")
    monkeypatch.setattr(cc, "EDGE_CHUNK", 5)
    monkeypatch.setattr(cc, "RELEASE_ENTRIES", 3)
    assert through_certificate(mapped) == igraph_counts(graph)


def test_auto_takes_the_certificate_on_large_simple_graphs_only(monkeypatch):
    graph = simple_graph(30, 60, 1)
    assert conn.cut_method(graph, {}) == "dfs"
    monkeypatch.setattr(conn, "GLOBAL_CERTIFICATE_MIN_EDGES", 1)
    assert conn.cut_method(graph, {}) == "certificate"
    assert conn.cut_method(graph, {"cut_method": "dfs"}) == "dfs"
    parallel = from_edges(
        np.array([0, 0, 1]), np.array([1, 1, 2]), np.ones(3), [Block("a", 0, 3, (3,))]
    )
    assert conn.cut_method(parallel, {}) == "dfs"  # not simple: the DFS handles multigraphs
    with pytest.raises(ConfigError, match="simple graph"):
        conn.cut_method(parallel, {"cut_method": "certificate"})
    with pytest.raises(ConfigError, match="cut_method"):
        conn.cut_method(graph, {"cut_method": "bfs"})


def test_the_memory_rate_follows_the_path():
    small, large = 2**28 - 1, 2**28
    assert family_mb_per_million(["global"], small, resident=True) == 12.0
    assert family_mb_per_million(["global"], large, resident=True) == 7.0
    assert family_mb_per_million(["global"], large) == 16.0  # the map's address space


def test_next_unmarked_vertex_window_by_window():
    rng = np.random.default_rng(0)
    for _ in range(50):
        marked = rng.random(int(rng.integers(0, 40))) < rng.random()
        for start in range(marked.shape[0] + 2):
            want = next((i for i in range(start, marked.shape[0]) if not marked[i]), len(marked))
            assert cc._next_unmarked(marked, start, window=3) == want


def test_many_small_components():
    n = 3 * 400  # 400 paths of 3 vertices, every third id starting one
    s = np.concatenate([np.arange(0, n, 3), np.arange(1, n, 3)])
    d = s + 1
    graph = from_edges(s, d, np.ones(s.shape[0]), [Block("a", 0, n + 50, (n + 50,))])
    assert through_certificate(graph) == (800, 400, 450) == igraph_counts(graph)
