"""The implicit local and strength families (metrics/implicit.py): values equal to the
materialised graph's (exact for counts, 1e-12 relative for the strength's float sum) on the paper
models and small torchvision models, igraph's coreness, the covered CSR never read, the path
parameter, and the plan read from a file's metadata alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snntopo.encode import build_graph
from snntopo.encode.graph import Graph, save_graph
from snntopo.encode.layers import layer_spec
from snntopo.errors import ConfigError
from snntopo.metrics import compute_family
from snntopo.metrics import implicit as im
from snntopo.models import build_model
from tests.test_conv_operator import SHAPE, DBlockNet
from tests.test_encode_mge import _masked_positive

COUNTS = ("nodes", "edges", "sink_nodes", "source_nodes", "disc_nodes", "r_out", "r_in")
#: float summation order only (the kernels' tap sums against the CSR's weight sum)
STRENGTH_RTOL = 1e-12

_CACHE: dict[tuple, Graph] = {}


def _mge(arch: str, size: int = 8, width: float = 0.25, density: float = 0.5) -> Graph:
    key = (arch, size, width, density)
    if key not in _CACHE:
        if arch == "dblock":
            model, shape = DBlockNet(), SHAPE
        else:
            model, shape = build_model(arch, 10, 3, size, width, seed=0), (3, size, size)
        weights = _masked_positive(model, density, seed=1)
        _CACHE[key] = build_graph("mge", layer_spec(model, shape), weights)
    return _CACHE[key]


def _both(graph: Graph, family: str) -> tuple[dict, dict]:
    imp = compute_family(family, graph, {"path": "implicit"})
    mat = compute_family(family, graph, {"path": "materialised"})
    assert imp["provenance"]["computed"]["path"] == "implicit"
    assert imp["provenance"]["computed"]["covered_entries_read"] == 0
    assert mat["provenance"]["computed"]["path"] == "materialised"
    return imp["network"], mat["network"]


def _assert_same(graph: Graph) -> None:
    imp, mat = _both(graph, "local")
    for key in COUNTS:
        assert imp[key] == mat[key], key
    imp, mat = _both(graph, "strength")
    assert imp["k_core"] == mat["k_core"]
    assert imp["avg_node_strength"] == pytest.approx(mat["avg_node_strength"], rel=STRENGTH_RTOL)


@pytest.mark.parametrize("arch", ["dblock", "conv6", "resnet20", "resnet32"])
def test_implicit_equals_materialised_on_the_paper_models(arch):
    _assert_same(_mge(arch))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "densenet121"])
def test_implicit_equals_materialised_on_torchvision_models(arch):
    _assert_same(_mge(f"torchvision:{arch}", size=32, width=1.0, density=0.03))


def test_coreness_and_degrees_equal_igraphs():
    g = _mge("resnet20", density=0.3)
    parts = im._degrees_and_residual(g)
    ref = g.to_igraph()
    np.testing.assert_array_equal(parts.out_deg, ref.degree(mode="out"))
    np.testing.assert_array_equal(parts.in_deg, ref.degree(mode="in"))
    core, waves, _ = im.peel(parts)
    np.testing.assert_array_equal(core, ref.coreness(mode="all"))
    assert waves > 1


@pytest.mark.parametrize("cost", [0, 10**12])
def test_peeling_by_stencils_and_by_dense_products_agree(cost, monkeypatch):
    """cost 0: every wave through dense products; huge: every wave through the stencils."""
    g = _mge("dblock")
    monkeypatch.setattr(im, "SPARSE_COST", cost)
    core, _, products = im.peel(im._degrees_and_residual(g))
    np.testing.assert_array_equal(core, g.to_igraph().coreness(mode="all"))
    assert (products == 0) == (cost == 0)


def _covered_mask(graph: Graph) -> np.ndarray:
    """Which CSR entries the conv terms that the implicit path applies hold (plain convs; a
    pooled or grouped term is read from the CSR): source in a term's input block, target in its
    output block (read from the materialised edges)."""
    src, dst = graph.sources(), graph.indices
    inside = np.zeros(graph.n_edges, dtype=bool)
    for t in im.plain_terms(graph.meta):
        a, b = graph.blocks[t["in_block"]], graph.blocks[t["out_block"]]
        inside |= (src >= a.start) & (src < a.stop) & (dst >= b.start) & (dst < b.stop)
    return inside


@pytest.mark.parametrize("arch", ["dblock", "conv6", "resnet20"])
def test_covered_csr_entries_are_never_read(arch):
    """Overwrite every term-covered entry (targets moved to the first node of their block,
    weights 1e6): the implicit values are those of the intact graph."""
    g = _mge(arch)
    covered = _covered_mask(g)
    assert 0 < covered.sum() < g.n_edges
    indices, weights = g.indices.copy(), g.weights.copy()
    src = g.sources()
    for t in im.plain_terms(g.meta):
        a, b = g.blocks[t["in_block"]], g.blocks[t["out_block"]]
        sel = covered & (src >= a.start) & (src < a.stop)
        sel &= (indices >= b.start) & (indices < b.stop)
        indices[sel] = b.start
    weights[covered] = 1e6
    bad = Graph(g.indptr, indices, weights, g.blocks, meta=g.meta, kernels=g.kernels)
    for family in ("local", "strength"):
        want = compute_family(family, g, {"path": "materialised"})["network"]
        got = compute_family(family, bad, {"path": "implicit"})
        assert got["provenance"]["computed"]["covered_entries_read"] == 0
        for key, value in want.items():
            assert got["network"][key] == pytest.approx(value, rel=STRENGTH_RTOL), key
        # the materialised path does read them: the corruption is visible there
        assert compute_family(family, bad, {"path": "materialised"})["network"] != want


def test_auto_path_follows_the_terms_share(monkeypatch):
    g = _mge("resnet20")
    share = im.covered_edges(g.meta) / g.n_edges
    assert share == sum(t.n_edges for t in im._terms(g)) / g.n_edges > 0.9
    art = compute_family("strength", g)
    assert art["provenance"]["computed"]["path"] == "implicit"
    assert art["provenance"]["params"]["path"] == "auto"
    monkeypatch.setattr(im, "MIN_SHARE", share + 1e-9)
    art = compute_family("local", g)
    assert art["provenance"]["computed"]["path"] == "materialised"
    assert "of the edges" in art["provenance"]["computed"]["why"]


def test_reference_mode_and_bges_stay_materialised_and_reference_refuses_a_forced_implicit():
    model = build_model("resnet20", 10, 3, 8, 0.25, seed=0)
    weights = _masked_positive(model, 0.5)
    spec = layer_spec(model, (3, 8, 8))
    ref = build_graph("mge", spec, weights, mode="reference")
    assert compute_family("local", ref)["provenance"]["computed"]["path"] == "materialised"
    with pytest.raises(ConfigError, match="path=implicit needs an exact-mode MGE"):
        compute_family("strength", ref, {"path": "implicit"})
    rolled = build_graph("rolled", spec, weights)  # a config's path=implicit still runs the BGEs
    layer = next(rolled.layer_graphs())[1]
    assert im.choose("local", layer, {"path": "implicit"}).path == "materialised"
    want = compute_family("local", rolled, {"path": "materialised"})["network"]
    assert compute_family("local", rolled, {"path": "implicit"})["network"] == want
    with pytest.raises(ConfigError, match="use one of auto, implicit, materialised"):
        compute_family("local", ref, {"path": "fast"})


def test_kernels_that_disagree_with_the_rows_fall_back_to_the_csr(caplog):
    g = _mge("dblock")
    name = g.meta["conv_terms"][1]["kernel"]
    k = g.kernels[name].copy()
    k[k > 0] = 0.0  # the term claims no edges: its rows hold more than the residual
    k.flat[0] = 1.0
    bad = Graph(g.indptr, g.indices, g.weights, g.blocks, g.meta, kernels={**g.kernels, name: k})
    art = compute_family("local", bad, {"path": "implicit"})
    assert art["provenance"]["computed"]["path"] == "materialised"
    assert art["network"] == compute_family("local", g, {"path": "materialised"})["network"]


def test_plan_from_the_file_metadata_alone(tmp_path):
    g = _mge("conv6")
    path = tmp_path / "g.npz"
    save_graph(path, g)
    covered = sum(t.n_edges for t in im._terms(g))
    p = im.plan_file(str(path), "strength", {"path": "implicit"})
    assert p == im.Plan("implicit", covered, g.n_edges - covered, "path=implicit")
    assert im.plan_file(str(path), "global").materialised_edges == g.n_edges
    assert im.plan_file(str(path), "local", {"path": "materialised"}).path == "materialised"
    assert im.plan_file(str(tmp_path / "missing.npz"), "local") is None


def test_memory_estimate_counts_what_the_family_materialises(tmp_path):
    from snntopo.memcheck import metrics_edges
    from snntopo.metrics.implicit import job_edges

    g = _mge("resnet20")
    path = str(tmp_path / "g.npz")
    save_graph(path, g)
    covered = sum(t.n_edges for t in im._terms(g))
    assert metrics_edges([path]) == g.n_edges
    assert job_edges([path], "global", {}) == g.n_edges
    assert job_edges([path], "strength", {"path": "materialised"}) == g.n_edges
    want = g.n_edges - covered + im.COVERED_EDGE_SHARE * covered
    assert job_edges([path], "local", {}) == pytest.approx(want)
    assert want < 0.3 * g.n_edges


@pytest.mark.parametrize("chunk", [None, 5], ids=["default-chunks", "tiny-chunks"])
def test_terms_of_another_kind_are_read_as_residual_edges(chunk, monkeypatch):
    """A term with a field this module does not apply (a grouped conv's ``groups``) is not
    applied: its edges are read from the CSR (one run per row of its block beside the applied
    terms' runs; in tiny chunks the runs are cut anywhere), the values stay equal."""
    from snntopo.metrics import algorithms as al

    if chunk is not None:
        monkeypatch.setattr(al, "EDGE_CHUNK", chunk)
    g = _mge("dblock")
    meta = dict(g.meta)
    meta["conv_terms"] = [dict(t) for t in g.meta["conv_terms"]]
    plain = [i for i, t in enumerate(g.meta["conv_terms"]) if set(t) <= im.PLAIN_FIELDS]
    meta["conv_terms"][plain[1]]["groups"] = 1
    other = Graph(g.indptr, g.indices, g.weights, g.blocks, meta=meta, kernels=g.kernels)
    assert len(im.plain_terms(meta)) == len(im.plain_terms(g.meta)) - 1
    assert im.covered_edges(meta) < im.covered_edges(g.meta)
    _assert_same(other)
    p = compute_family("strength", other, {"path": "implicit"})["provenance"]["computed"]
    assert p["covered_edges"] == im.covered_edges(meta)
    assert p["residual_edges"] == g.n_edges - im.covered_edges(meta)
    pieces = im._degrees_and_residual(other).residual.pieces
    assert any(isinstance(sel, im._Runs) for _, sel in pieces)


def test_metric_stage_admits_an_implicit_family_a_materialised_one_would_not_fit(tmp_path):
    """At 1 MB per thousand edges (each family's rate scaled to it), a limit between local's
    implicit estimate (residual edges plus a quarter of the covered ones) and global's on the
    whole graph runs ``local`` and refuses ``global``."""
    from snntopo.errors import MemoryLimitError
    from snntopo.memcheck import MemoryGuard
    from snntopo.stages.metrics import compute_metrics

    g = _mge("resnet20")
    g.meta["encoding"] = "mge"
    path = str(tmp_path / "mge.npz")
    save_graph(path, g)
    covered = sum(t.n_edges for t in im._terms(g))
    need = g.n_edges - covered + im.COVERED_EDGE_SHARE * covered
    from snntopo.memcheck import family_mb_per_million

    # the job's own limit bounds resident memory: each family's resident rate
    local_mb = need * family_mb_per_million(["local"], need, 1e3, resident=True) / 1e6
    global_mb = g.n_edges * family_mb_per_million(["global"], g.n_edges, 1e3, resident=True) / 1e6
    assert local_mb < global_mb
    guard = MemoryGuard(limit_mb=500 + (local_mb + global_mb) / 2, per_million_edges=1e3)
    params = {"seed": 0, "threads": 1}
    compute_metrics("local", {"mge": path}, params, str(tmp_path / "local.json"), guard)
    art = json.loads((tmp_path / "local.json").read_text())
    assert art["encodings"]["mge"]["provenance"]["computed"]["path"] == "implicit"
    with pytest.raises(MemoryLimitError, match="metric family global needs about"):
        compute_metrics("global", {"mge": path}, params, str(tmp_path / "global.json"), guard)
    assert not (tmp_path / "global.json").exists()
    # the workflow's request for the same job counts the same edges (the rule asks what the
    # job checks), and the path follows the config's metrics.path
    from snntopo.memcheck import graph_mem_mb
    from snntopo.workflow import metrics_mem_mb

    cfg = {"resources": {"mem_mb_per_million_edges": 1e3}, "metrics": {"path": "auto"}}
    assert metrics_mem_mb([path], 1, cfg, "local") == graph_mem_mb(need, 1, 1e3 * 10 / 32)
    assert metrics_mem_mb([path], 1, cfg, "global") == graph_mem_mb(g.n_edges, 1, 1e3 * 12 / 32)
    cfg["metrics"]["path"] = "materialised"
    assert metrics_mem_mb([path], 1, cfg, "local") == graph_mem_mb(g.n_edges, 1, 1e3 * 10 / 32)


def test_residual_on_both_sides_of_a_terms_block_is_filtered_and_counted():
    """Rows whose other edges lie before and after their term's target block (two runs): the
    block is filtered entry by entry (its covered entries read, and counted), values equal."""
    import scipy.sparse as sp

    g = _mge("dblock")
    stem, conv1 = g.blocks[1], g.blocks[2]
    assert any(t["in_block"] == 1 and t["out_block"] == 2 for t in g.meta["conv_terms"])
    a = g.csr().tolil()
    last = g.n_nodes - 1  # in the output block, which no term out of the stem targets
    assert not any(
        t["in_block"] == 1 and g.blocks[t["out_block"]].stop > last for t in g.meta["conv_terms"]
    )
    for v in range(stem.start, stem.start + 20):
        a[v, v + 1] = 0.5  # a target inside the stem block itself: before conv1's block
        a[v, last] = 0.5  # and one after every term's block
    a = sp.csr_array(a)
    a.sort_indices()
    h = Graph(
        a.indptr.astype(np.int64),
        a.indices.astype(np.int32),
        a.data.astype(np.float32),
        g.blocks,
        meta=g.meta,
        kernels=g.kernels,
    )
    assert h.n_edges == g.n_edges + 40 and stem.stop <= conv1.start
    _, _, info = im.degrees(h)
    assert info["covered_entries_read"] > 0
    for family in ("local", "strength"):
        want = compute_family(family, h, {"path": "materialised"})["network"]
        got = compute_family(family, h, {"path": "implicit"})["network"]
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=STRENGTH_RTOL), key
    np.testing.assert_array_equal(
        im.peel(im._degrees_and_residual(h))[0], h.to_igraph().coreness(mode="all")
    )


@pytest.mark.parametrize("name", ["max2_odd", "max2_even", "avg2_ceil_odd", "pool_strided_conv"])
def test_tiling_pools_are_applied_and_equal_igraph(name):
    """A conv with 2x2/2 pooling folded in (odd maps: positions in no window; ceil mode: partial
    windows) is applied: degrees and coreness equal igraph's, strength the CSR's, and none of
    its entries is read; an overlapping pool (3x3/2) is not applied (its edges stay residual)."""
    from tests.test_stencil_terms import CASES

    net, shape = CASES[name]
    g = build_graph("mge", layer_spec(net, shape), _masked_positive(net, 0.6, seed=2))
    pooled = [t for t in im.plain_terms(g.meta) if t.get("pools")]
    assert len(pooled) == 1 and im.tiling_pool(pooled[0]) == (2, 2)
    parts = im._degrees_and_residual(g)
    ref = g.to_igraph()
    np.testing.assert_array_equal(parts.out_deg, ref.degree(mode="out"))
    np.testing.assert_array_equal(parts.in_deg, ref.degree(mode="in"))
    for cost in (0, 10**12):  # dense products, then stencils only
        im_cost = im.SPARSE_COST
        try:
            im.SPARSE_COST = cost
            core, _, _ = im.peel(im._degrees_and_residual(g))
        finally:
            im.SPARSE_COST = im_cost
        np.testing.assert_array_equal(core, ref.coreness(mode="all"))
    _assert_same(g)
    overlapping = CASES["max3s2p1_even"]
    g2 = build_graph(
        "mge", layer_spec(overlapping[0], overlapping[1]), _masked_positive(overlapping[0], 0.6)
    )
    assert not [t for t in im.plain_terms(g2.meta) if t.get("pools")]
    assert any(t.get("pools") for t in g2.meta["conv_terms"])


@pytest.mark.parametrize("arch", ["dblock", "conv6", "resnet20"])
def test_spectral_covered_edges_from_metadata_match_the_operator(arch, tmp_path, monkeypatch):
    """The expansion family's memory plan reads from the metadata alone which edges its operator
    applies as convolutions: the same count as the operator's own choice of terms, under any
    density threshold; a graph below the coverage share counts none; the job's estimate counts
    those edges at the covered share."""
    from snntopo.metrics import conv_operator as co

    g = _mge(arch, density=0.3)
    g.meta["encoding"] = "mge"
    path = str(tmp_path / "g.npz")
    save_graph(path, g)
    meta, n_edges = im._file_meta(path)  # what the plan reads: the file's metadata member
    assert n_edges == g.n_edges
    for density in (0.0, 0.2, 0.5, 2.0):
        monkeypatch.setattr(im, "SPECTRAL_MIN_DENSITY", density)
        monkeypatch.setattr(co, "MIN_DENSITY", density)
        applied = sum(t.n_edges for t in co.conv_terms(g))
        want = applied if applied >= im.SPECTRAL_MIN_COVERAGE * g.n_edges else 0
        assert im.spectral_covered_edges(meta, n_edges) == want, density
    monkeypatch.setattr(im, "SPECTRAL_MIN_DENSITY", 0.0)
    cov = im.spectral_covered_edges(meta, n_edges)
    assert cov > 0
    expect = g.n_edges - cov + im.COVERED_EDGE_SHARE * cov
    assert im.job_edges([path], "expansion", {}) == pytest.approx(expect)
