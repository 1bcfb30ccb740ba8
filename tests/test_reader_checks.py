"""Every reader checks what it reads for meaning, not only for shape: graph files, mask metadata,
layer specs (against themselves and against the mask) and metric JSON. Each bad file ends in one
error of snntopo's types naming the file and the field; through the CLI, exit 2 and nothing
written."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from snntopo.errors import ArtifactError, GraphError, MaskError, TableError
from snntopo.io import MAX_JSON_DEPTH, json_depth, loads_json, read_json

# ----------------------------------------------------------------------------- graph files
#: a hand-made graph: 2 input nodes -> 1 output node, both edges of weight 0.5 and 2
GOOD = {
    "indptr": np.array([0, 1, 2, 2], dtype=np.int64),
    "indices": np.array([2, 2], dtype=np.int32),
    "weights": np.array([0.5, 2.0], dtype=np.float32),
    "block_offsets": np.array([0, 2, 3], dtype=np.int64),
}
GOOD_META = {
    "encoding": "mge",
    "blocks": [{"name": "input", "shape": [2]}, {"name": "out", "shape": [1]}],
    "layers": [],
}


def write_graph(path, meta=None, **members):
    arrays = {**GOOD, **members}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    text = meta if isinstance(meta, str) else json.dumps(GOOD_META if meta is None else meta)
    np.savez(path, **arrays, meta=np.array(text))
    return path


def test_hand_made_graph_reads(tmp_path):
    from snntopo.encode.graph import load_graph

    g = load_graph(write_graph(tmp_path / "g.npz"))
    # hand count: 3 nodes, 2 edges into node 2, total strength 2.5
    assert (g.n_nodes, g.n_edges, float(g.weights.sum())) == (3, 2, 2.5)
    assert g.in_degree().tolist() == [0, 0, 2]


@pytest.mark.parametrize(
    ("members", "meta", "expect"),
    [
        ({"weights": np.array([-0.5, 2.0], np.float32)}, None, "weights must be finite and > 0"),
        ({"weights": np.array([0.0, 2.0], np.float32)}, None, "found 0.0"),
        ({"weights": np.array([np.nan, 2.0], np.float32)}, None, "found nan"),
        ({"weights": np.array([np.inf, 2.0], np.float32)}, None, "found inf"),
        ({"weights": np.array([1 + 2j, 2], np.complex64)}, None, "member weights has dtype"),
        ({"weights": np.array([1, 2], np.int32)}, None, "has dtype int32, expected float32"),
        (
            {"indices": np.array([2.0, 2.0])},
            None,
            "member indices has dtype float64, expected int32 or int64",
        ),
        ({"indices": np.array([[2], [2]], np.int32)}, None, "expected 1 dimension"),
        ({"block_offsets": np.array([0, 3, 2, 3], np.int64)}, None, "do not rise from 0"),
        ({"block_offsets": np.array([1, 2, 3], np.int64)}, None, "do not rise from 0"),
        ({}, [1, 2], "metadata header is a JSON list"),
        ({}, {**GOOD_META, "blocks": "input"}, "metadata 'blocks' is 'input'"),
        ({}, {**GOOD_META, "blocks": [{"name": 3}, {"name": "o"}]}, "blocks[0]"),
        (
            {},
            {**GOOD_META, "blocks": [{"name": "i", "shape": [-2]}, {"name": "o"}]},
            "blocks[0].shape",
        ),
        ({}, {**GOOD_META, "layers": [{"left": 0, "right": 7}]}, "layers[0].right is 7"),
        ({}, {**GOOD_META, "layers": [{"left": "0", "right": 1}]}, "layers[0].left is '0'"),
        ({}, {**GOOD_META, "layers": {"left": 0}}, "metadata 'layers' is"),
        ({}, {**GOOD_META, "encoding": ["mge"]}, "metadata 'encoding'"),
        ({}, {**GOOD_META, "network": "x"}, "metadata 'network'"),
        (
            {},
            {**GOOD_META, "conv_terms": [{"kernel": "kernel_0", "in_block": 9}]},
            "conv_terms[0].in_block",
        ),
        ({}, {**GOOD_META, "conv_terms": [{"kernel": ["k"]}]}, "not a string"),
        (  # an MGE graph's edges point forward: an edge into the input block is refused
            {"indices": np.array([0, 2], np.int32)},
            {**GOOD_META, "encoding": "mge"},
            "an edge enters the input block (node 0)",
        ),
        ({}, "{" * 10 + "}" * 10, "not valid JSON"),
        ({}, "[" * 500 + "]" * 500, f"nested 500 levels deep (at most {MAX_JSON_DEPTH})"),
        ({}, '{"blocks": [], "x": 1e400}', "out of range"),
        ({"indices": None}, None, "missing array"),
    ],
)
def test_graph_meaning_checked(tmp_path, members, meta, expect):
    from snntopo.encode.graph import load_graph

    path = write_graph(tmp_path / "g.npz", meta=meta, **members)
    with pytest.raises(GraphError) as err:
        load_graph(path)
    msg = str(err.value)
    assert expect in msg and str(path) in msg and "\n" not in msg


def _npy_with_header(shape, dtype, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + payload


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_graph_huge_declared_shape_refused_before_allocation(tmp_path, compress):
    """A header declaring 10**12 weights (4 TB) over 8 bytes of data: refused from the header,
    without a MemoryError or an allocation attempt."""
    from snntopo.encode.graph import load_graph

    path = write_graph(tmp_path / "g.npz")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["weights.npy"] = _npy_with_header((10**12,), "<f4", GOOD["weights"].tobytes())
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(GraphError, match=r"weights declares shape \[1000000000000\]"):
        load_graph(path)


def test_metrics_cli_refuses_negative_weights(tmp_path, capsys):
    from snntopo.cli import main

    path = write_graph(tmp_path / "g.npz", weights=np.array([-0.5, 2.0], np.float32))
    out = tmp_path / "m.json"
    assert main(["metrics", str(path), "--families", "local", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "weights must be finite and > 0 (found -0.5)" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


# ----------------------------------------------------------------------------- JSON readers
def test_json_depth_ignores_brackets_in_strings():
    assert json_depth('{"a": "[[[{{{", "b": [[1]]}') == 3
    assert json_depth('["\\"[["]') == 1


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e400}', "number 1e400 is out of range"),
        ("[" * 65 + "]" * 65, "nested 65 levels deep"),
        (b'{"a": "\xff"}', "not UTF-8 text"),
        ('{"a": 1', "not valid JSON"),
        ('{"a": 1, "b": {"c": 1, "c": 2}}', "duplicate key 'c'"),
    ],
)
def test_loads_json_refuses(text, expect):
    with pytest.raises(ArtifactError, match=expect.replace("[", r"\[")):
        loads_json(text, "f.json")


def test_read_json_deep_file_is_one_line(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)  # json.loads would raise RecursionError
    with pytest.raises(ArtifactError, match="nested 100000 levels deep"):
        read_json(p)


#: the network-level values the ``local`` family writes (its metrics and their _norm forms)
LOCAL = {
    m: 1.0
    for base in ("sink_nodes", "source_nodes", "disc_nodes", "r_out", "r_in")
    for m in (base, f"{base}_norm")
} | {"nodes": 3.0, "edges": 2.0}


def _metric_file(tmp_path, encodings):
    art = {
        "family": "local",
        "network": {"dataset": "d", "arch": "a", "method": "m", "sparsity": 0.5, "seed": 0},
        "encodings": encodings,
    }
    p = tmp_path / "local.json"
    p.write_text(json.dumps(art))
    return str(p)


@pytest.mark.parametrize(
    ("encodings", "expect"),
    [
        ({"mge": [1, 2]}, "encodings.mge has no 'network' object"),
        ({"mge": {"network": [1]}}, "encodings.mge has no 'network' object"),
        ({"mge": {"network": {**LOCAL, "r_in": "1"}}}, "mge metric 'r_in' is '1', not a number"),
        ({"mge": {"network": LOCAL, "layers": "l"}}, "encodings.mge.layers is not a list"),
    ],
)
def test_metric_json_types_checked(tmp_path, encodings, expect):
    from snntopo.tables import metric_tables

    with pytest.raises(TableError, match=expect.replace("[", r"\[")):
        metric_tables([_metric_file(tmp_path, encodings)])


def test_metric_json_good_file_reads(tmp_path):
    from snntopo.tables import metric_tables

    tables, _ = metric_tables([_metric_file(tmp_path, {"mge": {"network": LOCAL}})])
    assert tables["mge"]["edges"].tolist() == [2.0]


# ----------------------------------------------------------------------------- masks and specs
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A traced layer spec, an ERK mask and its masked init of the tiny ResNet-20."""
    from tiny_job import TINY_DIGITS_JOB

    from snntopo.stages import make_mask
    from snntopo.stages.spec import make_spec

    d = tmp_path_factory.mktemp("tiny")
    job = {**TINY_DIGITS_JOB, "method": "erk", "sparsity": 0.5, "seed": 0}
    make_spec(job, str(d / "layers.json"))
    make_mask(job, str(d / "mask.safetensors"), str(d / "init.safetensors"))
    return d


def _rewrite_mask_meta(src, dst, change):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(src), framework="numpy") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    save_file(tensors, str(dst), metadata={"snntopo": change(meta["snntopo"])})
    return dst


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (
            lambda t: t.replace('"realised_sparsity": ', '"realised_sparsity": "x", "_": '),
            "not a number",
        ),
        (lambda t: t.replace('"mask_digest": ', '"mask_digest": 7, "_": '), "mask_digest is 7"),
        (lambda t: "[" * 200 + "]" * 200, "nested 200 levels deep"),
        (lambda t: t.replace('"sparsity": 0.5', '"sparsity": 1e999'), "out of range"),
    ],
)
def test_mask_metadata_checked(tiny, tmp_path, change, expect):
    from snntopo.pai.io import load_mask

    bad = _rewrite_mask_meta(tiny / "mask.safetensors", tmp_path / "m.safetensors", change)
    with pytest.raises(MaskError, match=expect):
        load_mask(bad)


def _spec(tiny, change):
    spec = json.loads((tiny / "layers.json").read_text())
    change(spec)
    return spec


def _set(path, value):
    def change(spec):
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        # layer 7 is layer2.0.conv1, the first stride-2 convolution (8x8 -> 4x4)
        (_set(["layers", 7, "stride"], [1, 1]), "gives output sides [8, 8], not [4, 4]"),
        (_set(["layers", 7, "padding"], [-1, 1]), "padding is [-1, 1]"),
        (_set(["layers", 7, "out_block"], "nowhere"), "names no block"),
        (_set(["layers", 7, "weight_shape"], [8, 4, 3]), "a convolution needs"),
        (_set(["layers", 7, "weight_shape"], [9, 4, 3, 3]), "does not map 4 to 8 channels"),
        (_set(["layers", 2, "in_shape"], [4, 4, 4]), "has shape [4, 8, 8]"),
        (_set(["layers", 0, "param"], 3), "expected a string"),
        (_set(["blocks", 1, "shape"], "4x8x8"), "blocks[1].shape"),
        (_set(["blocks", 2, "name"], "conv1"), "a second block of that name"),
        (_set(["input_shape"], []), "input_shape"),
        (_set(["layers"], {"a": 1}), "expected a non-empty list"),
    ],
)
def test_spec_checked_against_itself(tiny, change, expect):
    from snntopo.encode.spec import check_spec

    with pytest.raises(ArtifactError, match=expect.replace("[", r"\[")):
        check_spec(_spec(tiny, change), "layers.json")


def test_traced_spec_passes(tiny):
    from snntopo.encode.spec import check_spec

    check_spec(_spec(tiny, lambda s: None), "layers.json")


def test_spec_cut_short_refused_by_stage(tiny, tmp_path):
    """The issue's case: a spec with only its first layers encoded a smaller graph with exit 0."""
    from snntopo.stages import encode_network

    spec = _spec(tiny, lambda s: s.update(layers=s["layers"][:5]))
    (tmp_path / "cut.json").write_text(json.dumps(spec))
    out = tmp_path / "g.npz"
    with pytest.raises(ArtifactError, match="has no layer for 17 prunable weight"):
        encode_network(
            "mge",
            str(tmp_path / "cut.json"),
            str(tiny / "init.safetensors"),
            {},
            str(out),
            strict=False,
        )
    assert not out.exists()


@pytest.mark.parametrize("cut", ["stride", "first_layers"])
def test_encode_cli_refuses_spec_that_does_not_fit_the_mask(tiny, tmp_path, capsys, cut):
    from snntopo.cli import main

    if cut == "stride":
        spec = _spec(tiny, _set(["layers", 7, "stride"], [1, 1]))
    else:
        spec = _spec(tiny, lambda s: s.update(layers=s["layers"][:5]))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "g.npz"
    rc = main(
        [
            "encode", "--arch=resnet20", "--dataset=digits", "--width=0.25", "--input-size=8",
            "--method=erk", "--sparsity=0.5", f"--mask={tiny / 'mask.safetensors'}",
            f"--spec={tmp_path / 'spec.json'}", "--encoding=mge", f"--out={out}",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert err[-1].startswith("snntopo encode: error: ") and "spec.json" in err[-1]
    assert ("stride" in err[-1]) if cut == "stride" else ("mask.safetensors" in err[-1])


def _flip_weight_bit(path):
    """Flip the low mantissa bit of the first stored weight (still finite and > 0)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("weights.npy")
    data = bytearray(path.read_bytes())
    start = data.index(b"\x93NUMPY", info.header_offset)
    header_len = int.from_bytes(data[start + 8 : start + 10], "little") + 10
    data[start + header_len] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("digest", [True, False])
def test_flipped_bit_in_a_mapped_weight_is_an_error(tmp_path, digest):
    """Mapped members skip zipfile's CRC check: the recorded content digest (or, for a file
    without one, the zip's CRC-32) catches a weight 0.5 -> 0.50000006 that every other check
    passes. 5000 parallel edges, so that reading a member's header does not read (and CRC-check)
    the whole member."""
    from snntopo.encode.graph import Block, Graph, _savez_aligned, load_graph, save_graph

    e = 5000
    arrays = {
        "indptr": np.array([0, e, e], dtype=np.int64),
        "indices": np.ones(e, dtype=np.int32),
        "weights": np.full(e, 0.5, dtype=np.float32),
    }
    blocks = [Block("input", 0, 1, (1,)), Block("out", 1, 2, (1,))]
    path = tmp_path / "g.npz"
    if digest:
        save_graph(path, Graph(**arrays, blocks=blocks))
    else:
        meta = {"blocks": [{"name": "input", "shape": [1]}, {"name": "out", "shape": [1]}]}
        members = [*arrays.items(), ("block_offsets", np.array([0, 1, 2]))]
        with open(path, "wb") as fh:
            _savez_aligned(fh, [*members, ("meta", np.array(json.dumps(meta)))])
    assert float(load_graph(path).weights.sum()) == 0.5 * e
    _flip_weight_bit(path)
    with pytest.raises(GraphError, match="content_sha256 is" if digest else "fails its CRC-32"):
        load_graph(path)


def test_deferred_digest_check_fails_the_metrics_job_before_output(tmp_path):
    """The content digest is checked on a thread beside the family (load_graph_deferred): the
    graph comes back, ``verified()`` raises the digest error, and ``snntopo metrics`` and the
    workflow's metric job stop with that one error and write nothing."""
    from snntopo.cli import main
    from snntopo.encode.graph import Block, Graph, load_graph_deferred, save_graph
    from snntopo.stages.metrics import compute_metrics

    e = 5000
    graph = Graph(
        indptr=np.array([0, e, e], dtype=np.int64),
        indices=np.ones(e, dtype=np.int32),
        weights=np.full(e, 0.5, dtype=np.float32),
        blocks=[Block("input", 0, 1, (1,)), Block("out", 1, 2, (1,))],
    )
    path = tmp_path / "g.npz"
    save_graph(path, graph)
    _, verified = load_graph_deferred(path)
    verified()  # intact: no error
    _flip_weight_bit(path)
    damaged, verified = load_graph_deferred(path)
    assert damaged.n_edges == e
    with pytest.raises(GraphError, match="content_sha256 is"):
        verified()
    out = tmp_path / "m.json"
    with pytest.raises(GraphError, match="content_sha256 is"):
        compute_metrics("local", {"mge": str(path)}, {"seed": 0}, str(out))
    assert not out.exists()
    assert main(["metrics", str(path), "--families", "local", "--out", str(out)]) != 0
    assert not out.exists()


def test_graph_member_header_cut_mid_dict_is_one_line(tmp_path):
    """numpy parses a .npy header with tokenize: a header whose dict never closes raised
    tokenize.TokenError (found by the fuzz suite, seed 202)."""
    from snntopo.encode.graph import load_graph

    path = write_graph(tmp_path / "g.npz")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,"
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    members["weights.npy"] = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(GraphError, match="member weights has no valid array header"):
        load_graph(path)
