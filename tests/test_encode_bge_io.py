"""Rolled / rolled-channel BGEs vs direct numpy and the paper's table; graph I/O; encode CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snntopo.cli import main
from snntopo.encode import ENCODINGS, build_graph, load_graph, save_graph
from snntopo.encode.layers import layer_spec
from snntopo.models import build_model, prunable_parameters

# ResNet-20, CIFAR-10, GraSP, sparsity 0.98, seed 0: (layer, nodes, edges) of the rolled BGE, from
# the paper's graph_data/graph_metrics/rolled/rolled-CIFAR-10-Resnet-20.csv (eliacunegatti/mge-snn,
# Apache-2.0). Edges equal the layer's kept weights; nodes depend on the shape only.
PAPER_ROLLED_R20 = [("conv1", 43, 144), ("layer2.0.shortcut.0", 48, None), ("linear", 74, None)]


@pytest.fixture(scope="module")
def r20():
    model = build_model("resnet20", seed=0)
    spec = layer_spec(model, (3, 32, 32), arch="resnet20")
    rng = np.random.default_rng(0)
    weights = {
        n: (p.detach().numpy() * (rng.random(p.shape) < 0.1)).astype(np.float32)
        for n, p in prunable_parameters(model)
    }
    return spec, weights


def test_registry():
    assert ENCODINGS.names() == ["mge", "rolled", "rolled-channel"]


def test_rolled_matches_numpy(r20):
    spec, weights = r20
    g = build_graph("rolled", spec, weights)
    assert len(g.layers) == len(spec["layers"])
    for layer, sub in g.layer_graphs():
        w = weights[layer["param"]]
        m = np.abs(w.reshape(w.shape[0], -1))  # [right, left]
        assert sub.n_nodes == m.shape[0] + m.shape[1]
        assert sub.n_edges == np.count_nonzero(w) == layer["nnz"]
        dense = sub.csr().toarray()[: m.shape[1], m.shape[1] :]
        np.testing.assert_array_equal(dense, m.T)


def test_rolled_channel_matches_numpy(r20):
    spec, weights = r20
    g = build_graph("rolled-channel", spec, weights)
    for layer, sub in g.layer_graphs():
        w = weights[layer["param"]]
        m = np.sqrt((w.astype(np.float64) ** 2).sum(axis=(2, 3))) if w.ndim == 4 else np.abs(w)
        assert sub.n_nodes == sum(m.shape)
        assert sub.n_edges == np.count_nonzero(m)
        dense = sub.csr().toarray()[: m.shape[1], m.shape[1] :]
        np.testing.assert_allclose(dense, m.T, rtol=1e-6)


def test_rolled_node_counts_match_paper(r20):
    spec, weights = r20
    g = build_graph("rolled", spec, weights)
    by_name = {lay["name"]: lay for lay in g.layers}
    for name, nodes, _ in PAPER_ROLLED_R20:
        lay = by_name[name]
        assert g.blocks[lay["left"]].size + g.blocks[lay["right"]].size == nodes
    # conv1 with 144 kept weights (the paper's row) has 144 edges.
    w = np.zeros((16, 3, 3, 3), np.float32)
    w.reshape(-1)[np.random.default_rng(1).choice(432, 144, replace=False)] = 1.0
    one = {"layers": [spec["layers"][0]], "input_shape": [3, 32, 32], "blocks": spec["blocks"]}
    sub = build_graph("rolled", one, {"conv1.weight": w})
    assert (sub.n_nodes, sub.n_edges) == (43, 144)


def test_grouped_rolled_channel():
    from snntopo.encode.rolled_channel import channel_matrix

    w = np.ones((4, 1, 3, 3), np.float32)  # depthwise, 4 channels
    m = channel_matrix(w, {"kind": "conv", "groups": 4})
    np.testing.assert_allclose(m, np.eye(4) * 3.0)


@pytest.mark.parametrize("encoding", ["mge", "rolled", "rolled-channel"])
def test_save_load_roundtrip_and_meta(tmp_path, r20, encoding):
    spec, weights = r20
    g = build_graph(encoding, spec, weights, mode="reference" if encoding == "mge" else "exact")
    path = tmp_path / f"{encoding}.npz"
    save_graph(path, g)
    h = load_graph(path)
    np.testing.assert_array_equal(h.indptr, g.indptr)
    np.testing.assert_array_equal(h.indices, g.indices)
    np.testing.assert_array_equal(h.weights, g.weights)
    assert [(b.name, b.shape) for b in h.blocks] == [(b.name, b.shape) for b in g.blocks]
    assert h.layers == g.layers
    assert h.meta["encoding"] == encoding and h.meta["arch"] == "resnet20"
    assert h.meta["input_shape"] == [3, 32, 32] and h.meta["mode"] in ("exact", "reference")
    # The digest changes with the mask.
    w2 = dict(weights)
    w2["linear.weight"] = np.zeros_like(weights["linear.weight"])
    assert build_graph(encoding, spec, w2).meta["weights_digest"] != h.meta["weights_digest"]


def test_cli_computed_mask_and_mask_file(tmp_path, capsys):
    out = tmp_path / "g.npz"
    args = ["encode", "--arch", "resnet20", "--dataset", "cifar10", "--method", "erk"]
    args += ["--sparsity", "0.9", "--seed", "1", "--width", "0.5", "--encoding", "mge"]
    assert main([*args, "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"nodes", "edges", "seconds", "peak_rss_mb"} <= set(line)
    g = load_graph(out)
    assert g.n_edges == line["edges"] and g.meta["network"]["method"] == "erk"

    from safetensors.numpy import save_file

    model = build_model("resnet20", width=0.5, seed=1)
    masks = {n: np.ones(p.shape, dtype=bool) for n, p in prunable_parameters(model)}
    masks["linear.weight"][:] = False
    mfile = tmp_path / "mask.safetensors"
    save_file(masks, str(mfile), metadata={"snntopo": "{}"})
    out2 = tmp_path / "r.npz"
    a2 = [a if a != "mge" else "rolled" for a in args]
    assert main([*a2, "--mask", str(mfile), "--out", str(out2)]) == 0
    g2 = load_graph(out2)
    lin = [lay for lay in g2.layers if lay["name"] == "linear"][0]
    assert (
        lin["edges"] == 0 and g2.layers[0]["edges"] == 8 * 27
    )  # width 0.5: conv1 is 8 x 3 x 3 x 3


def test_plot_mge(tmp_path):
    from snntopo.plots.graph import plot_mge

    model = build_model("conv6", input_size=8, width=1 / 32, seed=0)
    spec = layer_spec(model, (3, 8, 8))
    weights = {n: p.detach().numpy() for n, p in prunable_parameters(model)}
    g = build_graph("mge", spec, weights)
    out = plot_mge(g, tmp_path / "mge.png", max_edges=2000)
    assert out.exists() and out.stat().st_size > 1000
