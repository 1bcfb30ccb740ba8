"""Bad inputs between stages: each stops with the exact error class and a message that names the
file (or key), and no downstream artifact is written. Atomic writes leave nothing behind on
failure."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from snntopo import stages
from snntopo.encode.graph import Block, from_edges, load_graph, save_graph
from snntopo.errors import (
    ArtifactError,
    CheckpointError,
    GraphError,
    MaskError,
    TableError,
)
from snntopo.io import atomic_path, read_json, write_json


def _tiny_graph():
    blocks = [Block("input", 0, 3, (3,)), Block("out", 3, 5, (2,))]
    return from_edges(
        np.array([0, 1, 2, 0]), np.array([3, 3, 4, 4]), np.array([0.5, -1.0, 2.0, 0.1]), blocks
    )


@pytest.fixture
def graph_file(tmp_path) -> Path:
    p = tmp_path / "g.npz"
    save_graph(p, _tiny_graph())
    return p


def _rewrite_npz(src: Path, dst: Path, **replace) -> None:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace)
    np.savez_compressed(dst, **arrays)


# --------------------------------------------------------------------------- graphs
def test_graph_round_trip(graph_file):
    g = load_graph(graph_file)
    assert g.n_nodes == 5 and g.n_edges == 4
    assert np.allclose(np.sort(g.weights), [0.1, 0.5, 1.0, 2.0])


def test_truncated_graph(graph_file, tmp_path):
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(graph_file.read_bytes()[: graph_file.stat().st_size // 2])
    with pytest.raises(GraphError, match=str(bad)):
        load_graph(bad)


def test_graph_not_a_zip(tmp_path):
    bad = tmp_path / "text.npz"
    bad.write_text("hello")
    with pytest.raises(GraphError, match=str(bad)):
        load_graph(bad)


def test_graph_missing_array(graph_file, tmp_path):
    bad = tmp_path / "noweights.npz"
    with np.load(graph_file) as z:
        arrays = {k: z[k] for k in z.files if k != "weights"}
    np.savez_compressed(bad, **arrays)
    with pytest.raises(GraphError, match=r"noweights\.npz.*weights"):
        load_graph(bad)


def test_graph_weights_disagree_with_edges(graph_file, tmp_path):
    bad = tmp_path / "w.npz"
    _rewrite_npz(graph_file, bad, weights=np.ones(3, dtype=np.float32))
    with pytest.raises(GraphError, match=r"w\.npz.*3 weights for 4 edges"):
        load_graph(bad)


def test_graph_blocks_disagree_with_metadata(graph_file, tmp_path):
    bad = tmp_path / "blocks.npz"
    with np.load(graph_file) as z:
        meta = json.loads(str(z["meta"]))
    meta["blocks"][0]["shape"] = [4]
    _rewrite_npz(graph_file, bad, meta=np.array(json.dumps(meta)))
    with pytest.raises(GraphError, match=r"blocks\.npz.*block 'input' has 3 nodes but shape"):
        load_graph(bad)


def test_graph_edge_target_out_of_range(graph_file, tmp_path):
    bad = tmp_path / "range.npz"
    _rewrite_npz(graph_file, bad, indices=np.array([3, 3, 9, 4], dtype=np.int32))
    with pytest.raises(GraphError, match=r"range\.npz.*outside"):
        load_graph(bad)


def test_graph_meta_not_json(graph_file, tmp_path):
    bad = tmp_path / "meta.npz"
    _rewrite_npz(graph_file, bad, meta=np.array("{not json"))
    with pytest.raises(GraphError, match=r"meta\.npz.*JSON"):
        load_graph(bad)


def test_metrics_stage_on_corrupt_graph_writes_nothing(graph_file, tmp_path):
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(graph_file.read_bytes()[:100])
    out = tmp_path / "metrics" / "local.json"
    with pytest.raises(GraphError, match=str(bad)):
        stages.compute_metrics("local", {"mge": str(bad)}, {"seed": 0}, str(out))
    assert not out.exists()


# --------------------------------------------------------------------------- JSON / tables
def test_json_artifact_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        read_json(tmp_path / "none.json")
    p = tmp_path / "half.json"
    p.write_text('{"accuracy": 0.9')
    with pytest.raises(ArtifactError, match=r"half\.json.*not valid JSON"):
        read_json(p)
    p.write_text('{"x": 1}')
    with pytest.raises(ArtifactError, match=r"half\.json.*missing required keys \['accuracy'\]"):
        read_json(p, required=("accuracy",))


def test_tables_stage_missing_accuracy_writes_nothing(tmp_path):
    summary = tmp_path / "train.json"
    write_json(summary, {"dataset": "digits", "arch": "resnet20", "method": "erk"})
    out = tmp_path / "tables"
    with pytest.raises(ArtifactError, match=r"train\.json.*accuracy"):
        stages.build_tables([str(summary)], [], str(out))
    assert not out.exists() or not any(out.iterdir())


def test_tables_stage_missing_network_keys(tmp_path):
    summary = tmp_path / "train.json"
    write_json(summary, {"dataset": "digits", "arch": "resnet20", "accuracy": 0.5})
    with pytest.raises(TableError, match=r"train\.json.*missing network keys"):
        stages.build_tables([str(summary)], [], str(tmp_path / "tables"))


# --------------------------------------------------------------------------- weights / masks
#: a valid one-convolution layer spec (1x4x4 input, 2 output channels, 3x3 kernel)
TINY_SPEC = {
    "input_shape": [1, 4, 4],
    "blocks": [{"name": "input", "shape": [1, 4, 4]}, {"name": "c", "shape": [2, 4, 4]}],
    "layers": [
        {
            "name": "conv1",
            "param": "conv1.weight",
            "kind": "conv",
            "role": "main",
            "kernel": [3, 3],
            "stride": [1, 1],
            "padding": [1, 1],
            "dilation": [1, 1],
            "groups": 1,
            "in_block": "input",
            "out_block": "c",
            "in_shape": [1, 4, 4],
            "out_shape": [2, 4, 4],
            "weight_shape": [2, 1, 3, 3],
            "pools": [],
        }
    ],
}


def test_encode_stage_with_missing_weights(tmp_path):
    spec = tmp_path / "layers.json"
    write_json(
        spec,
        {
            **TINY_SPEC,
        },
    )
    weights = tmp_path / "init.safetensors"
    save_file({"other.weight": torch.zeros(2, 2)}, str(weights))
    out = tmp_path / "g.npz"
    with pytest.raises(ArtifactError, match=r"init\.safetensors.*conv1\.weight"):
        stages.encode_network("mge", str(spec), str(weights), {}, str(out))
    assert not out.exists()


def test_encode_stage_with_corrupt_weights(tmp_path):
    spec = tmp_path / "layers.json"
    write_json(spec, TINY_SPEC)
    weights = tmp_path / "init.safetensors"
    weights.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ArtifactError, match=r"init\.safetensors"):
        stages.encode_network("mge", str(spec), str(weights), {}, str(tmp_path / "g.npz"))


def test_mask_for_wrong_architecture(tmp_path):
    from snntopo.models import build_model, prunable_parameters
    from snntopo.pai.io import load_mask, save_mask

    small = build_model("resnet20", width=0.25, input_size=8)
    big = build_model("resnet20", width=0.5, input_size=8)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(small)}
    path = tmp_path / "mask.safetensors"
    save_mask(path, masks, {"arch": "resnet20"})
    with pytest.raises(MaskError, match=r"mask\.safetensors.*conv1\.weight"):
        load_mask(path, big)


def test_truncated_mask(tmp_path):
    from snntopo.models import build_model, prunable_parameters
    from snntopo.pai.io import load_mask, save_mask

    model = build_model("resnet20", width=0.25, input_size=8)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model)}
    path = tmp_path / "mask.safetensors"
    save_mask(path, masks, {"arch": "resnet20"})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(MaskError, match=r"mask\.safetensors"):
        load_mask(path, model)


def test_corrupt_trained_model(tmp_path):
    from snntopo.artifacts import load_trained_weights

    p = tmp_path / "model.safetensors"
    p.write_bytes(b"nonsense")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_trained_weights(p)


def test_corrupt_training_checkpoint(tmp_path):
    from snntopo.train import load_checkpoint

    p = tmp_path / "checkpoint.pt"
    p.write_bytes(b"\x80\x04truncated")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt"):
        load_checkpoint(p)


# --------------------------------------------------------------------------- atomic writes
def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "a.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_npz_written_atomically_is_complete(tmp_path):
    p = tmp_path / "g.npz"
    save_graph(p, _tiny_graph())
    assert zipfile.is_zipfile(p)
    assert [f.name for f in tmp_path.iterdir()] == ["g.npz"]


# --------------------------------------------------------------------------- numerical care
@pytest.fixture(scope="module")
def emptied_network():
    """ResNet-20 (tiny) whose first block conv and one shortcut conv were emptied entirely."""
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model, prunable_parameters

    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    spec = layer_spec(model, (3, 8, 8))
    weights = {n: p.detach().numpy().copy() for n, p in prunable_parameters(model)}
    weights["layer1.0.conv1.weight"][:] = 0
    weights["layer2.0.shortcut.0.weight"][:] = 0
    return spec, weights


@pytest.mark.parametrize("encoding", ["mge", "rolled", "rolled-channel"])
def test_emptied_layers_encode_and_measure(emptied_network, encoding):
    from snntopo.encode import build_graph
    from snntopo.metrics import FAMILIES, compute_family, family_encoding_names

    spec, weights = emptied_network
    graph = build_graph(encoding, spec, weights)
    nnz = sum(int(np.count_nonzero(w)) for w in weights.values())
    if encoding == "rolled":
        assert graph.n_edges == nnz  # one edge per surviving weight, none for the empty layers
    for family in FAMILIES.names():
        if encoding not in family_encoding_names(family):
            continue
        res = compute_family(family, graph, {"seed": 0})
        for key, value in res["network"].items():
            assert value is None or np.isfinite(value) or key in res["nan_reasons"], (
                family,
                key,
            )


def test_graph_without_edges_gives_nan_with_reasons():
    from snntopo.metrics import compute_family

    blocks = [Block("input", 0, 4, (4,)), Block("out", 4, 6, (2,))]
    empty = from_edges(np.zeros(0, int), np.zeros(0, int), np.zeros(0), blocks)
    res = compute_family("expansion", empty, {"seed": 0})
    for key in ("spectral_gap", "spectral_radius"):
        assert np.isnan(res["network"][key]) and key in res["nan_reasons"]
