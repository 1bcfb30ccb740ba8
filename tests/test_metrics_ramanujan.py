"""Ramanujan metrics, the layered driver (rows, aggregates, NaN reasons), the registry and the CLI.

The reference values come from a direct dense-numpy implementation of the definitions (spec E):
full symmetric adjacency matrices, ``eigvalsh``, third-largest magnitude -- not the singular-value
shortcut the family uses.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from snntopo.cli import main as cli_main
from snntopo.encode.graph import Block, Graph, from_edges, load_graph, save_graph
from snntopo.errors import ConfigError
from snntopo.metrics import FAMILIES, FamilyResult, compute_family
from snntopo.metrics import ramanujan as ram


def bge(layers: list[tuple[np.ndarray, np.ndarray]], encoding: str = "rolled") -> Graph:
    """A BGE from per-layer weight matrices W (right x left) with zeros = pruned."""
    blocks, layer_meta, src, dst, w = [], [], [], [], []
    start = 0
    for i, (wmat, _) in enumerate(layers):
        n_r, n_l = wmat.shape
        left = Block(f"L{i}", start, start + n_l, (n_l,))
        right = Block(f"R{i}", left.stop, left.stop + n_r, (n_r,))
        blocks += [left, right]
        r, c = np.nonzero(wmat)
        src.append(left.start + c)
        dst.append(right.start + r)
        w.append(np.abs(wmat[r, c]))
        layer_meta.append({"name": f"conv{i}", "left": 2 * i, "right": 2 * i + 1})
        start = right.stop
    return from_edges(
        np.concatenate(src),
        np.concatenate(dst),
        np.concatenate(w),
        blocks,
        meta={"encoding": encoding},
        layers=layer_meta,
    )


def sym(b: np.ndarray) -> np.ndarray:
    nl, nr = b.shape
    a = np.zeros((nl + nr, nl + nr))
    a[:nl, nl:] = b
    a[nl:, :nl] = b.T
    return a


def third_mag(a: np.ndarray) -> tuple[float, float]:
    mags = np.sort(np.abs(np.linalg.eigvalsh(a)))[::-1]
    return mags[0], mags[2]


def ref_delta_r(b: np.ndarray) -> float:
    """Normalised delta_r of a 0/1 biadjacency after dropping zero-degree nodes."""
    b = b[b.sum(1) > 0][:, b.sum(0) > 0]
    d_l, d_r = b.sum(1).mean(), b.sum(0).mean()
    ub = math.sqrt(d_l - 1) + math.sqrt(d_r - 1)
    return (ub - third_mag(sym(b))[1]) / ub


def reference_layer(wmat: np.ndarray) -> dict[str, float]:
    bw = np.abs(wmat.T).astype(np.float32).astype(np.float64)  # left x right, stored as float32
    bu = (bw > 0).astype(float)
    out = {"degree_bound": ref_delta_r(bu)}
    l1, l3 = third_mag(sym(bw))
    out["weighted_spectral_gap"] = l1 - l3
    deg_l = bu.sum(1)
    gaps, bounds = [], []
    for k in sorted(set(deg_l[deg_l >= 3].tolist())):
        rows = deg_l == k
        sub_u, sub_w = bu[rows], bw[rows]
        cols = sub_u.sum(0) > 0
        if sub_u[:, cols].sum(0).mean() < 3:
            continue
        l1, l3 = third_mag(sym(sub_w[:, cols]))
        gaps.append(l1 - l3)
        bounds.append(ref_delta_r(sub_u[:, cols]))
    out["iterative_spectral_gap"] = float(np.mean(gaps)) if gaps else math.nan
    out["iterative_degree_bound"] = float(np.mean(bounds)) if bounds else math.nan
    return out


def random_layer(n_r: int, n_l: int, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_r, n_l))
    return w * (rng.random((n_r, n_l)) < density)


LAYERS = [random_layer(8, 27, 0.35, 0), random_layer(16, 72, 0.6, 1), random_layer(10, 40, 0.9, 2)]


def test_ramanujan_matches_dense_definition():
    graph = bge([(w, None) for w in LAYERS])
    art = compute_family("ramanujan", graph)
    assert [r["layer_name"] for r in art["layers"]] == ["conv0", "conv1", "conv2"]
    for row, w in zip(art["layers"], LAYERS, strict=True):
        ref = reference_layer(w)
        assert row["density"] == pytest.approx(np.count_nonzero(w) / w.size)
        for key, val in ref.items():
            if math.isnan(val):
                assert math.isnan(row[key])
            else:
                assert row[key] == pytest.approx(val, rel=1e-9, abs=1e-12), key
    net = art["network"]
    gaps = [reference_layer(w)["weighted_spectral_gap"] for w in LAYERS]
    assert net["mean_weighted_spectral_gap"] == pytest.approx(np.mean(gaps))
    assert net["mean_density"] == pytest.approx(np.mean([r["density"] for r in art["layers"]]))


def test_density_from_layer_metadata():
    graph = bge([(LAYERS[0], None)], encoding="rolled-channel")
    graph.layers[0].update(nnz=30, numel=120)
    row = compute_family("ramanujan", graph)["layers"][0]
    assert row["density"] == pytest.approx(0.25)


def test_low_degree_layer_and_emptied_layer_give_nan_with_reason():
    sparse = np.zeros((4, 6))
    sparse[0, 0] = sparse[1, 1] = 1.0  # every left degree < 3: no d-left-regular subgraph
    empty = np.zeros((3, 5))
    empty[0, 0] = 1.0  # stands for a layer; emptied below
    graph = bge([(sparse, None), (empty, None), (LAYERS[1], None)])
    # empty the second layer: drop its only edge
    keep = graph.sources() != graph.blocks[2].start
    graph = from_edges(
        graph.sources()[keep],
        graph.indices[keep],
        graph.weights[keep],
        graph.blocks,
        meta=graph.meta,
        layers=graph.layers,
    )
    art = compute_family("ramanujan", graph)
    rows = {r["layer_name"]: r for r in art["layers"]}
    assert math.isnan(rows["conv0"]["iterative_spectral_gap"])
    assert "d-left-regular" in art["nan_reasons"]["conv0/iterative_spectral_gap"]
    assert math.isnan(rows["conv1"]["degree_bound"])
    assert "conv1/degree_bound" in art["nan_reasons"]
    assert math.isnan(rows["conv1"]["weighted_spectral_gap"])
    assert rows["conv1"]["density"] == 0
    # the aggregates skip NaN layers
    assert art["network"]["mean_iterative_spectral_gap"] == pytest.approx(
        rows["conv2"]["iterative_spectral_gap"]
    )
    exp = compute_family("expansion", graph)
    assert "conv1/spectral_gap" in exp["nan_reasons"]


def test_ramanujan_refuses_the_mge():
    g = from_edges(np.array([0]), np.array([1]), np.array([1.0]), [Block("a", 0, 2, (2,))])
    g.meta["encoding"] = "mge"
    with pytest.raises(ConfigError, match="ramanujan"):
        compute_family("ramanujan", g)


def test_layered_driver_runs_every_family_per_layer():
    graph = bge([(w, None) for w in LAYERS])
    for fam in ("local", "neighbourhood", "strength", "global", "expansion"):
        art = compute_family(fam, graph, {"motif_min_sample": 2})
        assert len(art["layers"]) == 3
        assert all(f"mean_{k}" in art["network"] for k in art["layers"][0] if "layer" not in k)
    local_row = compute_family("local", graph)["layers"][0]
    assert local_row["nodes"] == 27 + 8 and local_row["edges"] == np.count_nonzero(LAYERS[0])


def test_dummy_family_registered_in_registry_is_computable():
    def dummy(graph, params):
        return FamilyResult({"dummy_edges": float(graph.n_edges), "cut_nodes": 2.0})

    def plain(graph, params):
        return {"plain": float(params["seed"])}

    # its normalisers are its own registry fact: cut_nodes on the paper's per-edge scale
    FAMILIES.register("dummy_test", dummy, encodings=("mge",), normalisers={"cut_nodes": "edges"})
    FAMILIES.register("plain_test", plain)
    try:
        g = from_edges(np.array([0, 1]), np.array([1, 2]), np.ones(2), [Block("a", 0, 3, (3,))])
        g.meta["encoding"] = "mge"
        art = compute_family("dummy_test", g)
        assert art["network"] == {"dummy_edges": 2.0, "cut_nodes": 2.0, "cut_nodes_norm": 1.0}
        assert art["family"] == "dummy_test" and art["layers"] == []
        assert compute_family("plain_test", g, {"seed": 5})["network"] == {"plain": 5.0}
        g.meta["encoding"] = "rolled"
        with pytest.raises(ConfigError, match="applies to encodings mge"):
            compute_family("dummy_test", g)
    finally:
        for name in ("dummy_test", "plain_test"):
            if name in FAMILIES:
                FAMILIES.unregister(name)


def test_cli_writes_artifact_and_prints_one_json_line(tmp_path, capsys):
    graph = bge([(w, None) for w in LAYERS])
    path = tmp_path / "rolled.npz"
    save_graph(path, graph)
    out = tmp_path / "m" / "ramanujan.json"
    rc = cli_main(
        ["metrics", str(path), "--families", "ramanujan", "--seed", "1", "--out", str(out)]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1  # stdout: the JSON line alone
    line = json.loads(captured.out)
    assert set(line) >= {"families", "seconds", "peak_rss_mb", "nan_reasons"}
    # progress on stderr: the family starting (with the graph's size) and finishing
    assert f"ramanujan (1/1) on {graph.n_nodes:,} nodes" in captured.err
    assert "ramanujan done in" in captured.err
    art = json.loads(out.read_text())
    assert art["family"] == "ramanujan" and len(art["layers"]) == 3
    assert line["families"]["ramanujan"] == art["network"]
    out2 = tmp_path / "all.json"
    assert cli_main(["metrics", str(path), "--out", str(out2)]) == 0
    assert set(json.loads(out2.read_text())) == set(FAMILIES.names())
    assert load_graph(path).n_edges == graph.n_edges


def _sparse(b: np.ndarray):
    import scipy.sparse as sp

    return sp.csr_array(b)


@pytest.mark.parametrize(
    "shape, density, weighted",
    [
        ((300, 40), 0.1, False),
        ((40, 300), 0.3, True),
        ((576, 64), 0.05, True),
        ((9, 7), 0.8, False),
    ],
)
def test_gram_top2_equals_dense_svd(shape, density, weighted):
    """The fast path (Gram eigenvalues) against the exact one (numpy's dense SVD of the layer)."""
    rng = np.random.default_rng(sum(shape))
    b = (rng.random(shape) < density) * (rng.random(shape) if weighted else 1.0)
    fast = ram.top2_singular(_sparse(b))
    exact = np.linalg.svd(b, compute_uv=False)[:2]
    assert ram.top2_gram(_sparse(b)) is not None  # the Gram path was taken
    assert fast == pytest.approx(tuple(exact), rel=1e-10)
    assert ram.top2_singular(_sparse(b), gram=False) == pytest.approx(tuple(exact), rel=1e-12)


def test_gram_path_falls_back_when_s2_is_tiny():
    """A rank-1 layer (every left node reaches the same right nodes): s2 = 0 exactly; squaring
    would give ~1e-8 * s1, so the exact SVD is used and s2 stays at rounding level."""
    b = np.zeros((50, 20))
    b[:, 3:11] = 1.0
    assert ram.top2_gram(_sparse(b)) is None
    s1, s2 = ram.top2_singular(_sparse(b))
    assert s1 == pytest.approx(math.sqrt(50 * 8), rel=1e-12)
    assert s2 < 1e-12
    # an empty layer and a single row or column
    assert ram.top2_singular(_sparse(np.zeros((4, 6)))) == (0.0, 0.0)
    assert ram.top2_singular(_sparse(np.array([[3.0, 4.0]]))) == pytest.approx((5.0, 0.0))
    assert ram.top2_singular(_sparse(np.array([[3.0], [4.0]]))) == pytest.approx((5.0, 0.0))


def test_ramanujan_fast_path_equals_slow_path(monkeypatch):
    """Every Ramanujan value of a rolled-like layer with many distinct left degrees, Gram path vs
    dense SVD everywhere (GRAM_MAX_DIM = 0 disables the Gram path)."""
    rng = np.random.default_rng(7)
    n_r, n_l = 48, 400
    dens = rng.uniform(0.02, 0.3, size=(1, n_l))  # heterogeneous left degrees
    w = rng.normal(size=(n_r, n_l)) * (rng.random((n_r, n_l)) < dens)
    graph = bge([(w, None)])
    fast = compute_family("ramanujan", graph)["layers"][0]
    monkeypatch.setattr(ram, "GRAM_MAX_DIM", 0)
    slow = compute_family("ramanujan", graph)["layers"][0]
    assert len(np.unique((w != 0).sum(0))) > 10
    for key in ("degree_bound", "iterative_spectral_gap", "iterative_degree_bound"):
        assert fast[key] == pytest.approx(slow[key], rel=1e-10), key
    assert fast["weighted_spectral_gap"] == pytest.approx(slow["weighted_spectral_gap"], rel=1e-9)


def test_degree_classes_in_any_id_order_match_dense_definition():
    """Left nodes of one degree scattered over the ids (many classes, interleaved): the family
    takes each class as a slice of the degree-sorted rows; every value equals the dense
    definition."""
    rng = np.random.default_rng(11)
    n_r, n_l = 30, 160
    dens = rng.permutation(np.repeat(np.linspace(0.12, 0.6, 16), n_l // 16))[None, :]
    w = rng.normal(size=(n_r, n_l)) * (rng.random((n_r, n_l)) < dens)
    assert len(np.unique((w != 0).sum(0))) > 10
    row = compute_family("ramanujan", bge([(w, None)]))["layers"][0]
    for key, val in reference_layer(w).items():
        assert row[key] == pytest.approx(val, rel=1e-9, abs=1e-12), key


def test_family_runs_its_blas_on_one_thread(monkeypatch):
    """Inside a 2-thread BLAS limit (``snntopo metrics --threads 2``), the family's eigensolves run
    on 1-thread pools (small solves; a pool of spinning threads made them ~6x slower)."""
    import scipy.linalg
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    real = ram.top2_gram

    def spy(b):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(b)

    monkeypatch.setattr(ram, "top2_gram", spy)
    scipy.linalg.eigh(np.eye(3))  # scipy's own BLAS loaded, so the limit reaches it
    with threadpool_limits(limits=2):
        compute_family("ramanujan", bge([(LAYERS[1], None)]))
    assert seen and set(seen) == {1}


def test_cli_limits_blas_threads_to_threads_option(tmp_path):
    """``snntopo metrics --threads 1`` runs the families with 1-thread BLAS pools (the rules'
    limit), including scipy's own OpenBLAS that the families load lazily: a probe family reads
    the pool sizes while it runs, in a fresh process."""
    import os
    import subprocess
    import sys

    path, out = tmp_path / "rolled.npz", tmp_path / "p.json"
    save_graph(path, bge([(LAYERS[0], None)]))
    code = f"""
import sys
from snntopo.metrics import FAMILIES, FamilyResult
def probe(graph, params):
    import numpy as np, scipy.linalg
    from threadpoolctl import threadpool_info
    scipy.linalg.eigh(np.eye(3))
    np.linalg.eigvalsh(np.eye(3))
    print("POOLS", len(threadpool_info()), sorted({{p["num_threads"] for p in threadpool_info()}}))
    return FamilyResult({{"x": 1.0}})
FAMILIES.register("probe_test", probe, encodings=("rolled",))
from snntopo.cli import main
sys.exit(main(["metrics", {str(path)!r}, "--families", "probe_test", "--threads", "1",
               "--out", {str(out)!r}]))
"""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("POOLS"))
    assert line.endswith("[1]"), line


def test_undefined_values_carry_their_reason_not_a_string_value():
    """A perfect matching (every node of degree 1) has no degree bound: the helper raises
    ``Undefined`` and the family records NaN with that reason; a solver that fails does too."""
    from snntopo.metrics.base import Undefined

    with pytest.raises(Undefined, match="degree bound is 0"):
        ram._delta_r(1.0, 1.0, 0.5)
    graph = bge([(np.eye(4), None)])
    art = compute_family("ramanujan", graph)
    assert art["layers"][0]["degree_bound"] is None or np.isnan(art["layers"][0]["degree_bound"])
    assert "degree bound is 0" in art["nan_reasons"]["conv0/degree_bound"]
