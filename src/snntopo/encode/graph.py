"""The one graph type every encoding produces and every metric consumes, and its ``.npz`` format.

A graph is a directed, weighted CSR adjacency (row = source node, column = target node; edges point
from a layer's input to its output) plus a list of contiguous node *blocks* (the input pixels, each
layer's output activations, or a bipartite layer's left/right sides) and a JSON metadata header.

Why CSR arrays and not an igraph object: degrees, strengths, components and spectra come straight
from the arrays with numpy/scipy, and an igraph object is built in one call only where its C core is
needed (bridges, articulation points, coreness, motifs).

File format (a ``.npz``: a zip of ``.npy`` members, read with ``np.load``), format version 1:

- ``indptr``  int64[n_nodes + 1]
- ``indices`` int32 (int64 if n_nodes >= 2**31)[n_edges], target node of each edge, sorted per row
- ``weights`` float32[n_edges], |w| of the weight that made the edge (always > 0)
- ``block_offsets`` int64[n_blocks + 1], node ranges of the blocks
- ``meta`` 0-d unicode array holding JSON: ``encoding``, ``blocks`` (name, shape), ``layers``
  (for layered encodings: name, kind, left/right block index), ``provenance``, free parameters
  and ``content_sha256``, the :func:`content_digest` of the other members and this metadata
  (files written before it was added have none); written as the last member.
- optional ``kernel_<k>`` float32[C_out, C_in, kh, kw], each named by an entry of the metadata's
  ``conv_terms`` (``in_block``, ``out_block``, ``kernel``, ``stride``, ``padding``, ``dilation``):
  an MGE block pair whose edges are exactly that |W| applied as a cross-correlation (see
  :func:`snntopo.encode.mge._operator_terms`). The edges are in the CSR all the same; the kernel is
  a second, compact form of them that the spectral metrics apply as a dense convolution. Files
  without these members (older ones, other encodings) read as before.

Graphs are written *uncompressed* (``np.savez``, zip members stored) by default: deflating a
ResNet-20 MGE (25M edges) cost ~3 s to write and ~2 s to read in every metric job, more than the
graph construction itself; a stored member is read with one copy. The price is disk: 8 bytes per
edge (a compressed file was ~1.1 bytes per edge, because MGE weights repeat per position).
``save_graph(..., compress=True)`` writes the deflated variant; both read back identically
(files written before this change are compressed and stay readable).

The stored members are also *aligned*: each member's data starts on a 64-byte boundary of the file
(a padding record in the zip entry's extra field, which zip readers skip), so ``load_graph`` maps
``indptr``, ``indices`` and ``weights`` from the file (private, copy-on-write) instead of reading
them into new memory. Why: a metric job reads only parts of them again and again, and copying
8 bytes per edge into fresh memory cost 0.25-0.45 s per job on a 25M-edge graph here (the page
cache already holds the file). Mapped members skip the zip's CRC check (a truncated file still
fails: its central directory is gone); unaligned, deflated or older files are read as before.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# scipy is imported where a CSR is built, so that a job reading degrees only (the local family)
# does without its ~0.1 s import
if TYPE_CHECKING:
    import scipy.sparse as sp

from ..errors import GraphError
from ..io import atomic_path, read_npy_header


@dataclass(frozen=True)
class Block:
    """A contiguous range of node ids ``[start, stop)`` that stands for one activation tensor."""

    name: str
    start: int
    stop: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class Graph:
    """Directed weighted graph in CSR form with node blocks and metadata (see module docstring).

    ``layers`` is non-empty for *layered* encodings (the BGEs): each entry names a bipartite layer
    whose left and right sides are the blocks ``left`` and ``right`` (block indices); layers never
    share nodes, so each is an independent graph (see :meth:`layer_graphs`).
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    blocks: list[Block]
    meta: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    #: ``kernel_<k>`` arrays of the metadata's ``conv_terms`` (module docstring)
    kernels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def input_block(self) -> Block:
        return self.blocks[0]

    @property
    def output_block(self) -> Block:
        return self.blocks[-1]

    def out_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def in_degree(self) -> np.ndarray:
        return count_ids(self.indices, self.n_nodes)

    def sources(self) -> np.ndarray:
        """Source node of every edge, aligned with ``indices`` (expands ``indptr``)."""
        return np.repeat(np.arange(self.n_nodes, dtype=self.indices.dtype), self.out_degree())

    def csr(self, weighted: bool = True) -> sp.csr_array:
        import scipy.sparse as sp

        data = self.weights if weighted else np.ones(self.n_edges, dtype=np.float32)
        return sp.csr_array(
            (data, self.indices, self.indptr), shape=(self.n_nodes, self.n_nodes), copy=False
        )

    def to_igraph(self, weighted: bool = False, directed: bool = True) -> Any:
        """Build an igraph graph from the edge arrays, streaming the edges in chunks.

        Why this path: the abi3 igraph wheel has no zero-copy buffer import, so every edge passes
        through Python objects anyway. Handing a numpy (E, 2) array or memoryview to the
        constructor goes through ``tolist()`` of the whole array (26 s and 4.7 GB for 25M edges);
        ``add_edges`` fed by a generator of ``(int, int)`` tuples made from 1M-edge ``tolist()``
        chunks takes ~6 s and only igraph's own ~48 bytes per edge, measured on a ResNet-20 MGE.
        """
        import igraph as ig

        g = ig.Graph(n=self.n_nodes, directed=directed)
        if self.n_edges:
            src, dst = self.sources(), self.indices
            step = 1 << 20

            def pairs() -> Iterator[tuple[int, int]]:
                for lo in range(0, src.shape[0], step):
                    yield from zip(
                        src[lo : lo + step].tolist(), dst[lo : lo + step].tolist(), strict=True
                    )

            ig.GraphBase.add_edges(g, pairs())
            if weighted:
                g.es["weight"] = self.weights.astype(np.float64).tolist()
        return g

    def subgraph(self, start: int, stop: int, blocks: list[Block] | None = None) -> Graph:
        """Induced subgraph on the node range ``[start, stop)`` (ids shifted to start at 0)."""
        a = self.csr()[start:stop, start:stop].tocsr()
        a.sort_indices()
        if blocks is None:
            blocks = [
                Block(b.name, b.start - start, b.stop - start, b.shape)
                for b in self.blocks
                if b.start >= start and b.stop <= stop
            ]
        return Graph(
            indptr=a.indptr.astype(np.int64),
            indices=a.indices.astype(self.indices.dtype),
            weights=a.data.astype(np.float32),
            blocks=blocks,
            meta={k: v for k, v in self.meta.items() if k != "conv_terms"},  # block ids change
        )

    def layer_graphs(self) -> Iterator[tuple[dict[str, Any], Graph]]:
        """Yield ``(layer, bipartite graph)`` for layered encodings; blocks are (left, right)."""
        for layer in self.layers:
            left, right = self.blocks[layer["left"]], self.blocks[layer["right"]]
            lo, hi = min(left.start, right.start), max(left.stop, right.stop)
            blocks = [
                Block(left.name, left.start - lo, left.stop - lo, left.shape),
                Block(right.name, right.start - lo, right.stop - lo, right.shape),
            ]
            yield layer, self.subgraph(lo, hi, blocks=blocks)


def count_ids(ids: np.ndarray, n: int, chunk: int = 1 << 20) -> np.ndarray:
    """``np.bincount(ids, minlength=n)``, cast to ``intp`` chunk by chunk.

    Why: numpy 2.4's bincount of an int32 array takes ~5x longer than a cast plus a bincount of
    the intp copy (25M ids: 0.34 s against 0.12 s measured), and node ids are int32 throughout;
    casting through one small reused buffer, not a copy of all ids, also keeps a fresh process
    from faulting in 8 bytes per edge of new memory (0.29 s of a 0.35 s ResNet-20 ``local`` job).
    """
    if ids.dtype == np.intp or ids.shape[0] <= chunk:
        return np.bincount(ids.astype(np.intp, copy=False), minlength=n)
    out = np.zeros(n, dtype=np.intp)
    buf = np.empty(chunk, dtype=np.intp)
    for lo in range(0, ids.shape[0], chunk):
        part = buf[: min(chunk, ids.shape[0] - lo)]
        part[...] = ids[lo : lo + chunk]
        out += np.bincount(part, minlength=n)
    return out


def from_edges(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray,
    blocks: list[Block],
    meta: dict[str, Any] | None = None,
    layers: list[dict[str, Any]] | None = None,
    sum_duplicates: bool = False,
) -> Graph:
    """Assemble a :class:`Graph` from edge arrays (vectorised COO -> CSR conversion).

    Zero-weight edges are dropped (a pruned weight is no edge). Duplicate (src, dst) pairs are kept
    as parallel edges unless ``sum_duplicates`` is set.
    """
    import scipy.sparse as sp

    n = blocks[-1].stop if blocks else 0
    w = np.abs(np.asarray(weights, dtype=np.float32))
    keep = w > 0
    src, dst, w = np.asarray(src)[keep], np.asarray(dst)[keep], w[keep]
    a = sp.coo_array((w, (src.astype(np.int64), dst.astype(np.int64))), shape=(n, n))
    a = a.tocsr() if sum_duplicates else _coo_to_csr_keep_duplicates(src, dst, w, n)
    idx_dtype = np.int32 if n < 2**31 else np.int64
    return Graph(
        indptr=np.asarray(a.indptr, dtype=np.int64),
        indices=np.asarray(a.indices, dtype=idx_dtype),
        weights=np.asarray(a.data, dtype=np.float32),
        blocks=list(blocks),
        meta=dict(meta or {}),
        layers=list(layers or []),
    )


def _coo_to_csr_keep_duplicates(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray, n: int
) -> sp.csr_array:
    import scipy.sparse as sp

    order = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count_ids(src, n), out=indptr[1:])
    return sp.csr_array((w[order], dst[order], indptr), shape=(n, n))


def save_graph(path: str | Path, graph: Graph, compress: bool = False) -> None:
    """Write ``graph`` atomically as ``.npz`` (format in the module docstring), uncompressed
    unless ``compress``. The metadata records the :func:`content_digest` of what is written."""
    offsets = np.array([b.start for b in graph.blocks] + [graph.n_nodes], dtype=np.int64)
    meta = dict(graph.meta)
    meta.pop(DIGEST_KEY, None)
    meta["blocks"] = [{"name": b.name, "shape": list(b.shape)} for b in graph.blocks]
    meta["layers"] = graph.layers
    meta.setdefault("format_version", 1)
    arrays = {
        "indptr": graph.indptr,
        "indices": graph.indices,
        "weights": graph.weights,
        "block_offsets": offsets,
        **graph.kernels,
    }
    # the digest is taken on a thread while the arrays are written (hashlib and the file writes
    # release the GIL); the metadata, which records it, is the last member
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(content_digest, arrays, meta)

        def members() -> Iterator[tuple[str, np.ndarray]]:
            yield from arrays.items()
            yield "meta", np.array(json.dumps({**meta, DIGEST_KEY: digest.result()}))

        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            if compress:
                np.savez_compressed(fh, **dict(members()))
            else:
                _savez_aligned(fh, members())


#: metadata key of the content digest (:func:`content_digest`)
DIGEST_KEY = "content_sha256"


def content_digest(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Short sha256 of a graph's content: every array member's name, dtype, shape and bytes, in
    member order, then the metadata's JSON (keys sorted) without this digest.

    Why recorded in the file: each metric job ties its result to the graph it read, and hashing a
    ResNet-20 MGE's 200 MB there cost ~0.2 s of CPU per job (five jobs per network); the encoder
    takes it once, beside the write. Unlike a digest of the file's bytes it does not depend on
    how the zip is laid out (compressed or not, aligned or not)."""
    h = hashlib.sha256()
    for name, arr in arrays.items():
        a = np.asarray(arr)
        h.update(f"{name}:{a.dtype.str}:{list(a.shape)};".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    rest = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    h.update(json.dumps(rest, sort_keys=True).encode())
    return h.hexdigest()[:16]


#: zip extra-field id of the padding record (the one Android's zipalign uses); readers skip it
_PAD_ID = 0xD935
_ALIGN = 64


def _savez_aligned(fh: Any, arrays: Iterable[tuple[str, np.ndarray]]) -> None:
    """``np.savez`` (stored members, zip64) with every member's data on a 64-byte boundary.

    A local zip header is 30 bytes, the name, the extra field (here: the padding record, then the
    20-byte zip64 record ``force_zip64`` adds); numpy pads its own ``.npy`` header to a multiple of
    64, so the array data is aligned when the member's data is."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays:
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            fixed = fh.tell() + 30 + len(info.filename.encode()) + 4 + 20
            pad = -fixed % _ALIGN
            info.extra = struct.pack("<HH", _PAD_ID, pad) + bytes(pad)
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def _mapped_members(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The stored, aligned ``.npy`` members ``names`` as arrays over a private (copy-on-write)
    map of the file; a member that is deflated, unaligned or absent is left out (read normally)."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return out
        if not hasattr(mmap, "MAP_PRIVATE"):  # Windows: no POSIX private maps, read instead
            return out
        try:
            mm = mmap.mmap(
                fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError:  # a file system without mmap: read every member instead
            return out
        for name in names:
            info = infos.get(name + ".npy")
            if info is None or info.compress_type != zipfile.ZIP_STORED:
                continue
            head = mm[info.header_offset : info.header_offset + 30]
            if len(head) < 30 or head[:4] != b"PK\x03\x04":
                continue
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype = read_npy_header(fh)
            start = fh.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if fortran or dtype.hasobject or start % dtype.alignment:
                continue
            if start + count * dtype.itemsize > size:
                raise ValueError(f"member {name} runs past the end of the file")
            out[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=start).reshape(shape)
    return out


def load_graph(path: str | Path) -> Graph:
    """Read and validate a graph file; any defect raises :class:`GraphError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise GraphError(f"{p}: graph file not found")
    try:
        arrays = _mapped_members(p, ("indptr", "indices", "weights"))
        with np.load(p, allow_pickle=False) as z:
            for k in ("indptr", "indices", "weights", "block_offsets", "meta"):
                if k not in arrays:
                    arrays[k] = z[k]
            kernels = {k: z[k] for k in z.files if k.startswith("kernel_")}
    except KeyError as exc:
        raise GraphError(f"{p}: not a snntopo graph file (missing array {exc})") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise GraphError(f"{p}: unreadable or truncated graph file ({exc})") from None
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise GraphError(f"{p}: metadata header is not valid JSON ({exc})") from None
    indptr, indices, weights, offsets = (
        arrays["indptr"],
        arrays["indices"],
        arrays["weights"],
        arrays["block_offsets"],
    )
    n = indptr.shape[0] - 1
    problems = []
    if n < 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        problems.append("indptr is not a non-decreasing offset array starting at 0")
    elif indptr[-1] != indices.shape[0]:
        problems.append(f"indptr ends at {indptr[-1]} but there are {indices.shape[0]} edges")
    if weights.shape != indices.shape:
        problems.append(f"{weights.shape[0]} weights for {indices.shape[0]} edges")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        problems.append(f"edge targets outside [0, {n})")
    block_meta = meta.get("blocks", [])
    if offsets.shape[0] != len(block_meta) + 1 or (offsets.size and offsets[-1] != n):
        problems.append(
            f"block_offsets ({offsets.shape[0] - 1} blocks ending at "
            f"{offsets[-1] if offsets.size else '?'}) disagree with metadata "
            f"({len(block_meta)} blocks, {n} nodes)"
        )
    else:
        for b, lo, hi in zip(block_meta, offsets[:-1], offsets[1:], strict=True):
            if "shape" in b and int(np.prod(b["shape"])) != hi - lo:
                problems.append(
                    f"block {b.get('name')!r} has {hi - lo} nodes but shape {b['shape']}"
                )
                break
    if not problems:
        problems += _conv_term_problems(meta, kernels)
    if problems:
        raise GraphError(f"{p}: inconsistent graph file: " + "; ".join(problems))
    blocks = [
        Block(b["name"], int(lo), int(hi), tuple(b.get("shape", (int(hi - lo),))))
        for b, lo, hi in zip(block_meta, offsets[:-1], offsets[1:], strict=True)
    ]
    layers = meta.pop("layers", [])
    meta.pop("blocks", None)
    return Graph(indptr, indices, weights, blocks, meta=meta, layers=layers, kernels=kernels)


def conv_output_side(side: int, k: int, stride: int, pad: int, dil: int) -> int:
    """torch's output length of a convolution along one axis."""
    return (side + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _conv_term_problems(meta: dict[str, Any], kernels: dict[str, np.ndarray]) -> list[str]:
    """What is wrong with the ``conv_terms`` of a file: a missing kernel, or one whose shape does
    not map its input block onto its output block."""
    shapes = [list(b.get("shape", [])) for b in meta.get("blocks", [])]
    for t in meta.get("conv_terms", []):
        try:
            k = kernels[t["kernel"]]
            cin, h, w = shapes[t["in_block"]]
            cout, ho, wo = shapes[t["out_block"]]
            sides = [
                conv_output_side(
                    side, k.shape[2 + d], t["stride"][d], t["padding"][d], t["dilation"][d]
                )
                for d, side in enumerate((h, w))
            ]
            if k.ndim != 4 or list(k.shape[:2]) != [cout, cin] or sides != [ho, wo]:
                return [f"conv term of layer {t.get('layer')!r} does not fit its blocks"]
        except (KeyError, IndexError, TypeError, ValueError):
            return [f"conv term {t!r} is incomplete or names a missing kernel"]
    return []
