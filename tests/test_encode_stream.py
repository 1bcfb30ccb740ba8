"""The MGE written row block by row block (``mge.write``) is the file ``save_graph(build(...))``
writes, byte for byte; zip64 members read back; a crash leaves no output; memory stays below one
copy of the edges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from snntopo.encode import build_graph, load_graph, mge, stream
from snntopo.encode.graph import save_graph
from snntopo.encode.layers import layer_spec
from snntopo.models import build_model
from tests.test_encode_mge import _masked_positive


def _both(tmp_path, spec, weights, chunk, **options):
    """The in-memory graph, and the bytes of both files."""
    g = build_graph("mge", spec, weights, **options)
    save_graph(tmp_path / "memory.npz", g)
    counts = mge.write(tmp_path / "stream.npz", spec, weights, chunk_edges=chunk, **options)
    assert counts == {"nodes": g.n_nodes, "edges": g.n_edges}
    return g, (tmp_path / "memory.npz").read_bytes(), (tmp_path / "stream.npz").read_bytes()


@pytest.mark.parametrize("arch", ["conv6", "resnet20"])
@pytest.mark.parametrize("mode", ["exact", "reference"])
# 1 << 30: one row block per node block; 3000: a block's rows split in many ranges, mid-channel
@pytest.mark.parametrize("chunk", [1 << 30, 3000])
def test_paper_models_stream_to_the_same_file(tmp_path, arch, mode, chunk):
    model = build_model(arch, width=0.25, input_size=16, seed=0)
    spec = layer_spec(model, (3, 16, 16), arch=arch)
    weights = _masked_positive(model, 0.3)
    g, memory, stream = _both(tmp_path, spec, weights, chunk, mode=mode)
    assert g.n_edges > 30 * 3000  # the small row blocks are many
    assert memory == stream
    back = load_graph(tmp_path / "stream.npz")
    assert back.meta["content_sha256"] == load_graph(tmp_path / "memory.npz").meta["content_sha256"]
    assert [lay["edges"] for lay in back.meta["mge_layers"]] == [
        lay["edges"] for lay in g.meta["mge_layers"]
    ]


def test_identity_edges_stream_to_the_same_file(tmp_path):
    model = build_model("resnet20", width=0.25, input_size=16, seed=0)
    spec = layer_spec(model, (3, 16, 16), arch="resnet20")
    weights = _masked_positive(model, 0.3)
    _, memory, stream = _both(tmp_path, spec, weights, 2000, identity_edges=True)
    assert memory == stream


def _small_densenet() -> torch.nn.Module:
    import torchvision

    # concatenations in every dense layer, 1x1 bottlenecks, an overlapping 3x3/s2 max pool
    # folded into the first dense layer, avg-pool transitions, and the final adaptive pool
    return torchvision.models.DenseNet(
        growth_rate=8, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10
    )


def _googlenet() -> torch.nn.Module:
    import torchvision

    return torchvision.models.googlenet(
        num_classes=10, aux_logits=False, init_weights=False, transform_input=False
    )


@pytest.mark.parametrize(
    ("make", "density"), [(_small_densenet, 0.5), (_googlenet, 0.02)], ids=["densenet", "googlenet"]
)
def test_concatenations_and_pooling_folds_stream_to_the_same_file(tmp_path, make, density):
    torch.manual_seed(0)
    model = make().eval()
    spec = layer_spec(model, (3, 32, 32))
    assert any("inputs" in lay for lay in spec["layers"])  # concatenated inputs
    assert any(lay["pools"] for lay in spec["layers"])  # pooling folds
    weights = _masked_positive(model, density)
    g, memory, stream = _both(tmp_path, spec, weights, 5000, identity_edges=True)
    assert g.n_edges > 20 * 5000
    assert memory == stream


def test_zip64_members_read_back(tmp_path, monkeypatch):
    """Members past zipfile's zip64 threshold (4 GB in real files; lowered here to 1 kB so that
    every member and offset crosses it) are written as save_graph writes them and read back
    by zipfile, np.load and load_graph."""
    model = build_model("conv6", width=0.125, input_size=16, seed=0)
    spec = layer_spec(model, (3, 16, 16), arch="conv6")
    weights = _masked_positive(model, 0.3)
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1024)
    g, memory, stream = _both(tmp_path, spec, weights, 5000)
    assert memory == stream
    monkeypatch.undo()
    with zipfile.ZipFile(tmp_path / "stream.npz") as zf:
        assert zf.testzip() is None  # every member's CRC-32
        # the central directory's fields stand at 0xFFFFFFFF, the values in zip64 records
        raw = (tmp_path / "stream.npz").read_bytes()
        assert raw.count(b"\xff\xff\xff\xff") >= 2 * len(zf.infolist())
    with np.load(tmp_path / "stream.npz") as z:
        np.testing.assert_array_equal(z["indices"], g.indices)
        np.testing.assert_array_equal(z["weights"], g.weights)
    back = load_graph(tmp_path / "stream.npz")
    np.testing.assert_array_equal(back.indptr, g.indptr)
    np.testing.assert_array_equal(back.indices, g.indices)


def test_zip_members_hold_the_patched_crc(tmp_path):
    """indptr and indices are patched after their data: zipfile's own CRC check on reading
    every member (which np.load does too) agrees with what the file holds."""
    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    spec = layer_spec(model, (3, 8, 8), arch="resnet20")
    weights = _masked_positive(model, 0.5)
    mge.write(tmp_path / "g.npz", spec, weights, chunk_edges=1000)
    with zipfile.ZipFile(tmp_path / "g.npz") as zf:
        import zlib

        for info in zf.infolist():
            assert zlib.crc32(zf.read(info)) == info.CRC


_KILL = """
import os, signal, sys
sys.path.insert(0, {root!r})
from snntopo.encode import mge
from snntopo.encode.layers import layer_spec
from snntopo.io import remove_temps_on_signal
from snntopo.models import build_model
from tests.test_encode_mge import _masked_positive

remove_temps_on_signal()
model = build_model("resnet20", width=0.25, input_size=16, seed=0)
spec = layer_spec(model, (3, 16, 16), arch="resnet20")
weights = _masked_positive(model, 0.3)
rows = mge._stream_rows

def dying(plan, chunk):
    for k, r in enumerate(rows(plan, chunk)):
        if k == 5:
            {action}
        yield r

mge._stream_rows = dying
mge.write({out!r}, spec, weights, chunk_edges=2000)
"""


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
        ("os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
        ("raise RuntimeError('disk full')", 1),
    ],
    ids=["sigterm", "sigkill", "error"],
)
def test_a_kill_in_the_middle_leaves_no_output(tmp_path, action, code):
    out = tmp_path / "out" / "g.npz"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = _KILL.format(root=root, out=str(out), action=action)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    assert not out.exists()
    left = sorted(p.name for p in out.parent.iterdir())
    if code == -signal.SIGKILL:  # no handler runs: the temporary file stays until swept
        assert len(left) == 1 and left[0].startswith(".g.npz.snntopo-")
        model = build_model("conv6", width=0.125, input_size=8, seed=0)
        spec = layer_spec(model, (3, 8, 8), arch="conv6")
        mge.write(out.parent / "next.npz", spec, _masked_positive(model, 0.3))
        assert sorted(p.name for p in out.parent.iterdir()) == ["next.npz"]
    else:  # the scratch file of the weights has no name: nothing at all is left
        assert left == []


def test_peak_memory_is_a_row_block_not_the_graph(tmp_path):
    """Python's and numpy's allocations (tracemalloc) while writing: the in-memory build holds
    the graph (8 bytes per edge) and more; the streaming writer about one row block plus the
    per-node arrays and its copy buffer."""
    model = build_model("conv6", width=0.25, input_size=32, seed=0)
    spec = layer_spec(model, (3, 32, 32), arch="conv6")
    weights = _masked_positive(model, 0.3)
    tracemalloc.start()
    try:
        g = build_graph("mge", spec, weights)
        _, built = tracemalloc.get_traced_memory()
        n_edges, n_nodes = g.n_edges, g.n_nodes
        del g
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        mge.write(tmp_path / "g.npz", spec, weights, chunk_edges=1 << 16)
        _, streamed = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_edges > 4_000_000
    assert built > 8 * n_edges  # measured: 16 bytes per edge
    # one row block (at most ~2x chunk_edges edges, as a range ends past the estimate's cut, ~40
    # bytes each at the worst moment), the per-node arrays, the writer's copy buffer; measured:
    # the buffer plus 0.3 bytes per edge
    assert streamed - base < stream.COPY_BYTES + 40 * 2 * (1 << 16) + 64 * n_nodes
    assert streamed - base < stream.COPY_BYTES + 2 * n_edges
