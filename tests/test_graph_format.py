"""Graph files: written uncompressed by default, compressed on request, and both (plus files
written by the earlier compressed-only ``save_graph``) read back identically."""

from __future__ import annotations

import json
import mmap
import zipfile

import numpy as np

from snntopo.encode.graph import Block, from_edges, load_graph, save_graph


def _graph():
    rng = np.random.default_rng(0)
    # edges point forward, block a -> block b, as every encoding's do (load_graph checks it)
    s, d = rng.integers(0, 10, 200), rng.integers(10, 30, 200)
    return from_edges(
        s, d, rng.random(200) + 0.1, [Block("a", 0, 10, (1, 2, 5)), Block("b", 10, 30, (20,))]
    )


def _same(a, b):
    assert np.array_equal(a.indptr, b.indptr) and a.indptr.dtype == b.indptr.dtype
    assert np.array_equal(a.indices, b.indices) and a.indices.dtype == b.indices.dtype
    assert np.array_equal(a.weights, b.weights) and a.weights.dtype == b.weights.dtype
    assert a.blocks == b.blocks and a.layers == b.layers and a.meta == b.meta


def _owner(arr):
    """The object that owns an array's memory (an mmap for mapped members)."""
    while isinstance(arr, np.ndarray):
        arr = arr.base
    return arr.obj if isinstance(arr, memoryview) else arr


def test_default_file_is_stored_and_compressed_file_is_deflated(tmp_path):
    g = _graph()
    save_graph(tmp_path / "plain.npz", g)
    save_graph(tmp_path / "small.npz", g, compress=True)
    with zipfile.ZipFile(tmp_path / "plain.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert sorted(z.namelist()) == sorted(
            f"{k}.npy" for k in ("indptr", "indices", "weights", "block_offsets", "meta")
        )
    with zipfile.ZipFile(tmp_path / "small.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    plain, small = load_graph(tmp_path / "plain.npz"), load_graph(tmp_path / "small.npz")
    _same(plain, small)
    _same(plain, load_graph(tmp_path / "plain.npz"))
    assert plain.n_edges == g.n_edges and np.array_equal(plain.indices, g.indices)


def test_a_file_in_the_earlier_compressed_layout_loads(tmp_path):
    g = _graph()
    meta = {
        "encoding": "mge",
        "blocks": [{"name": b.name, "shape": list(b.shape)} for b in g.blocks],
        "layers": [],
        "format_version": 1,
    }
    np.savez_compressed(
        tmp_path / "old.npz",
        indptr=g.indptr,
        indices=g.indices,
        weights=g.weights,
        block_offsets=np.array([0, 10, 30], dtype=np.int64),
        meta=np.array(json.dumps(meta)),
    )
    old = load_graph(tmp_path / "old.npz")
    assert np.array_equal(old.indices, g.indices) and np.array_equal(old.weights, g.weights)
    assert [b.shape for b in old.blocks] == [(1, 2, 5), (20,)]


def test_the_config_switch_reaches_the_encode_stage(tmp_path):
    """``encode.compress`` (the rule passes the config's ``encode:`` mapping) deflates the file the
    encode stage writes; the graph read back is the same either way."""
    import torch  # noqa: F401  (the layer spec is traced from the model)

    from snntopo.encode.layers import layer_spec
    from snntopo.io import write_json
    from snntopo.models import build_model, prunable_parameters
    from snntopo.stages.encode import encode_network

    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    spec = tmp_path / "layers.json"
    write_json(spec, layer_spec(model, (3, 8, 8)))
    from safetensors.numpy import save_file

    weights = tmp_path / "init.safetensors"
    save_file({n: p.detach().numpy() for n, p in prunable_parameters(model)}, str(weights))
    graphs = {}
    for compress in (False, True):
        out = tmp_path / f"g{int(compress)}.npz"
        encode_network("mge", str(spec), str(weights), {"compress": compress}, str(out))
        with zipfile.ZipFile(out) as z:
            kinds = {i.compress_type for i in z.infolist()}
        assert kinds == ({zipfile.ZIP_DEFLATED} if compress else {zipfile.ZIP_STORED})
        graphs[compress] = load_graph(out)
    a, b = graphs[False], graphs[True]
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.weights, b.weights)


def test_members_are_aligned_and_mapped_copy_on_write(tmp_path):
    """The default file puts every array's data on a 64-byte boundary, stays a valid zip (CRCs
    included) that ``np.load`` reads, and loads as private maps: writing to a loaded array
    changes neither the file nor another load."""
    g = _graph()
    path = tmp_path / "g.npz"
    save_graph(path, g)
    raw = path.read_bytes()
    for arr in (g.indptr, g.indices, g.weights):
        pos = raw.find(arr.tobytes())
        assert pos > 0 and pos % 64 == 0
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    with np.load(path) as z:
        assert np.array_equal(z["indices"], g.indices)
    ref, a = load_graph(path), load_graph(path)
    assert isinstance(_owner(a.indices), mmap.mmap) and a.indices.flags.writeable
    a.indices[:] = 0
    a.weights *= 2
    _same(load_graph(path), ref)
    assert np.array_equal(ref.indices, g.indices) and np.array_equal(ref.weights, g.weights)
    assert path.read_bytes() == raw


def test_an_unaligned_stored_file_reads_by_copy(tmp_path):
    """``np.savez`` (stored, no alignment) is read member by member as before."""
    g = _graph()
    save_graph(tmp_path / "new.npz", g)
    with np.load(tmp_path / "new.npz") as z:
        np.savez(tmp_path / "plain.npz", **{k: z[k] for k in z.files})
    _same(load_graph(tmp_path / "plain.npz"), load_graph(tmp_path / "new.npz"))


def test_without_memory_maps_the_file_is_read(tmp_path, monkeypatch):
    """A file system (or platform) that cannot map files: every member is read by copy."""
    g = _graph()
    save_graph(tmp_path / "g.npz", g)
    mapped = load_graph(tmp_path / "g.npz")
    mmap_type = mmap.mmap

    def no_map(*args, **kwargs):
        raise OSError("mmap not supported here")

    monkeypatch.setattr(mmap, "mmap", no_map)
    copied = load_graph(tmp_path / "g.npz")
    assert isinstance(_owner(mapped.indices), mmap_type)
    assert not isinstance(_owner(copied.indices), mmap_type)
    _same(copied, mapped)


def _digest_by_hand(path) -> str:
    """The documented recipe, from the zip's own member order and np.load's arrays."""
    import hashlib

    with zipfile.ZipFile(path) as z:
        names = [n.removesuffix(".npy") for n in z.namelist()]
    assert names[-1] == "meta"  # written last, after the digest is known
    h = hashlib.sha256()
    with np.load(path) as f:
        for name in names[:-1]:
            a = f[name]
            h.update(f"{name}:{a.dtype.str}:{list(a.shape)};".encode() + a.tobytes())
        meta = json.loads(str(f["meta"]))
    recorded = meta.pop("content_sha256")
    h.update(json.dumps(meta, sort_keys=True).encode())
    assert recorded == h.hexdigest()[:16]
    return recorded


def test_the_recorded_content_digest_follows_the_recipe_and_not_the_layout(tmp_path):
    g = _graph()
    g.kernels = {"kernel_0": np.ones((2, 1, 3, 3), np.float32)}
    g.meta["conv_terms"] = []  # the kernel is unused here; only its bytes matter
    save_graph(tmp_path / "plain.npz", g)
    save_graph(tmp_path / "small.npz", g, compress=True)
    plain, small = _digest_by_hand(tmp_path / "plain.npz"), _digest_by_hand(tmp_path / "small.npz")
    assert plain == small  # the same content, another zip layout
    assert load_graph(tmp_path / "plain.npz").meta["content_sha256"] == plain
    # re-saving a loaded graph records the same digest (the old one is not hashed into it)
    save_graph(tmp_path / "again.npz", load_graph(tmp_path / "plain.npz"))
    assert _digest_by_hand(tmp_path / "again.npz") == plain
    g.weights = g.weights.copy()
    g.weights[3] *= 2
    save_graph(tmp_path / "other.npz", g)
    assert _digest_by_hand(tmp_path / "other.npz") != plain


def test_metric_provenance_names_the_graph_by_its_recorded_digest(tmp_path):
    """A metric job records the encoder's content digest (no re-hash of the file); a file
    written before digests were recorded is named by its bytes' sha256, as it was."""
    import hashlib

    from snntopo.stages.metrics import compute_metrics

    g = _graph()
    save_graph(tmp_path / "g.npz", g)
    compute_metrics("local", {"mge": str(tmp_path / "g.npz")}, {}, str(tmp_path / "m.json"))
    prov = json.loads((tmp_path / "m.json").read_text())["encodings"]["mge"]["provenance"]
    assert prov["graph"]["content_sha256"] == _digest_by_hand(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz") as f:
        members = {k: f[k] for k in f.files}
    meta = json.loads(str(members["meta"]))
    del meta["content_sha256"]
    members["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **members)
    compute_metrics("local", {"mge": str(tmp_path / "old.npz")}, {}, str(tmp_path / "o.json"))
    prov = json.loads((tmp_path / "o.json").read_text())["encodings"]["mge"]["provenance"]
    want = hashlib.sha256((tmp_path / "old.npz").read_bytes()).hexdigest()[:16]
    assert prov["graph"]["digest"] == want and "content_sha256" not in prov["graph"]
