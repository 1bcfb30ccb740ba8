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
- optional ``kernel_<k>`` float32[C_out, C_in/groups, kh, kw], each named by an entry of the
  metadata's ``conv_terms`` (``in_block``, ``out_block``, ``kernel``, ``stride``, ``padding``,
  ``dilation``, and where not the default: ``groups`` (1), ``padding_end`` (far-side padding;
  = ``padding``), ``pools`` (the non-adaptive pooling windows folded into the conv, each
  ``kernel``, ``stride``, ``padding``, ``in_shape``, ``out_shape``; none)): an MGE block pair
  whose edges are exactly that |W| applied as a cross-correlation to the window sums of the
  source block (see :mod:`snntopo.encode.stencil`; the encoder checks each term against the
  edges it built and keeps only those that match). The edges are in the CSR all the same; the
  kernel is a second, compact form of them that the spectral metrics apply as a dense
  convolution. Files without these members (older ones, other encodings) or without the newer
  fields (plain convs) read as before.

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
cache already holds the file). The mapped bytes are checked all the same: against the recorded
content digest (:func:`load_graph`), or for a file without one against the zip's CRC-32
(``zlib.crc32`` on two threads), so a flipped bit in a weight is an error, not a different graph;
unaligned, deflated or older files are read as before.

:mod:`snntopo.encode.stream` writes the same file (byte for byte) from row blocks made one at a
time, for graphs too large to hold whole (the MGE of ``snntopo encode``, :func:`snntopo.encode.mge.write`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import mmap
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from tokenize import TokenError
from typing import TYPE_CHECKING, Any

import numpy as np

# scipy is imported where a CSR is built, so that a job reading degrees only (the local family)
# does without its ~0.1 s import
if TYPE_CHECKING:
    import scipy.sparse as sp

from ..errors import GraphError
from ..io import atomic_path, loads_json, read_npy_header
from ..mapped import iter_chunks, register_map, release_pages


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
        release_pages(ids, lo, lo + chunk)  # a mapped member is not left resident
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
    offsets = block_offsets(graph.blocks, graph.n_nodes)
    meta = file_meta(graph.meta, graph.blocks, graph.layers)
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


def blocks_tile(blocks: list[Block], n_nodes: int) -> bool:
    """Whether ``blocks``, in the given order, cover nodes 0 .. n_nodes - 1 end to end (a file's
    ``block_offsets`` always do; a graph built in memory may not): the node coordinates that
    per-block geometry reads rely on it."""
    if not blocks or blocks[0].start != 0 or blocks[-1].stop != n_nodes:
        return False
    return all(a.stop == b.start for a, b in zip(blocks[:-1], blocks[1:], strict=True))


def block_offsets(blocks: list[Block], n_nodes: int) -> np.ndarray:
    """The ``block_offsets`` member: the node ranges of ``blocks``."""
    return np.array([b.start for b in blocks] + [n_nodes], dtype=np.int64)


def file_meta(
    meta: dict[str, Any], blocks: list[Block], layers: list[dict[str, Any]]
) -> dict[str, Any]:
    """The metadata as stored (without its digest): the graph's own, then the blocks, the
    layers and the format version."""
    out = dict(meta)
    out.pop(DIGEST_KEY, None)
    out["blocks"] = [{"name": b.name, "shape": list(b.shape)} for b in blocks]
    out["layers"] = layers
    out.setdefault("format_version", 1)
    return out


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
        digest_member_header(h, name, a.dtype, a.shape)
        if a.ndim == 1 and a.flags.c_contiguous:  # a mapped member: streamed, pages released
            for _, part in iter_chunks(a):
                h.update(memoryview(part).cast("B"))
        else:
            h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return digest_meta(h, meta)


def digest_member_header(h: Any, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """:func:`content_digest`'s record of one member before its bytes (a streaming writer
    feeds the same records, then the bytes in order)."""
    h.update(f"{name}:{np.dtype(dtype).str}:{list(shape)};".encode())


def digest_meta(h: Any, meta: dict[str, Any]) -> str:
    """:func:`content_digest`'s last record (the metadata without its digest) and the result."""
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
            with zf.open(aligned_member(name, fh.tell()), "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def aligned_member(name: str, offset: int) -> zipfile.ZipInfo:
    """The entry of member ``name.npy`` whose local header starts at ``offset`` (stored, fixed
    date, padded so that its data starts on a 64-byte boundary; opened with ``force_zip64``)."""
    info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    fixed = offset + 30 + len(info.filename.encode()) + 4 + 20
    pad = -fixed % _ALIGN
    info.extra = struct.pack("<HH", _PAD_ID, pad) + bytes(pad)
    return info


def _mapped_members(path: Path, names: tuple[str, ...], crc: bool = True) -> dict[str, np.ndarray]:
    """The stored, aligned ``.npy`` members ``names`` as arrays over a private (copy-on-write)
    map of the file; a member that is deflated, unaligned or absent is left out (read normally).
    ``crc``: check each mapped member against the zip's CRC-32 (a file whose content digest is
    checked instead needs not)."""
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
        register_map(mm)
        spans: dict[str, tuple[int, int, int]] = {}
        for name in names:
            info = infos.get(name + ".npy")
            if info is None or info.compress_type != zipfile.ZIP_STORED:
                continue
            head = mm[info.header_offset : info.header_offset + 30]
            if len(head) < 30 or head[:4] != b"PK\x03\x04":
                continue
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            data_start = info.header_offset + 30 + name_len + extra_len
            if data_start + info.file_size > size:
                raise ValueError(f"member {name} runs past the end of the file")
            spans[name] = (data_start, info.file_size, info.CRC)
            fh.seek(data_start)
            shape, fortran, dtype = read_npy_header(fh)
            start = fh.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if fortran or dtype.hasobject or start % dtype.alignment:
                continue
            if start + count * dtype.itemsize > size:
                raise ValueError(f"member {name} runs past the end of the file")
            out[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=start).reshape(shape)
    with ThreadPoolExecutor(max_workers=2) as pool:  # zlib releases the GIL on large buffers
        crcs = {
            name: pool.submit(_crc32, np.frombuffer(mm, dtype=np.uint8, count=n, offset=lo))
            for name, (lo, n, _) in spans.items()
            if name in out and crc
        }
    for name, crc in crcs.items():
        if crc.result() != spans[name][2]:
            raise ValueError(f"member {name} fails its CRC-32 check (a changed or damaged file)")
    return out


def _crc32(data: np.ndarray) -> int:
    """CRC-32 of a byte array, streamed (:func:`iter_chunks`: a mapped member's pages released)."""
    value = 0
    for _, part in iter_chunks(data):
        value = zlib.crc32(part, value)
    return value


#: the array members of a graph file and the dtypes each may have (the format's; a float64,
#: complex, object or string array is refused, ``U``: any unicode string)
_MEMBER_KINDS = {
    "indptr": ("<i8",),
    "indices": ("<i4", "<i8"),
    "weights": ("<f4",),
    "block_offsets": ("<i8",),
    "meta": ("U",),
}
#: a deflated member may not claim more than this many bytes per stored byte (deflate's own
#: limit is about 1032)
_MAX_DEFLATE_RATIO = 1100


def _check_members(p: Path) -> None:
    """Every ``.npy`` member's header against the zip's own sizes, before any array is allocated:
    a header declaring more data than the member holds (a huge shape), an object, complex or
    string array where numbers belong, or a member claiming more bytes than deflate can produce
    is refused with one line naming the member."""
    with zipfile.ZipFile(p) as zf:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            kinds = _MEMBER_KINDS.get(name, ("<f4",) if name.startswith("kernel_") else None)
            if kinds is None:
                continue
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > (
                _MAX_DEFLATE_RATIO * info.compress_size + (1 << 20)
            ):
                raise GraphError(
                    f"{p}: member {name} claims {info.file_size} bytes from "
                    f"{info.compress_size} compressed (not a deflated array)"
                )
            with zf.open(info) as fh:
                try:
                    shape, _fortran, dtype = read_npy_header(fh)
                except (ValueError, EOFError, OSError, SyntaxError, TokenError) as exc:
                    raise GraphError(
                        f"{p}: member {name} has no valid array header ({exc})"
                    ) from None
                head = fh.tell()
            if dtype.str not in kinds and (kinds != ("U",) or dtype.kind != "U"):
                raise GraphError(
                    f"{p}: member {name} has dtype {dtype}, expected "
                    + " or ".join(str(np.dtype(k)) if k != "U" else "a JSON string" for k in kinds)
                )
            want_ndim = 0 if name == "meta" else 4 if name.startswith("kernel_") else 1
            if len(shape) != want_ndim:
                raise GraphError(
                    f"{p}: member {name} has shape {list(shape)}, expected {want_ndim} dimension(s)"
                )
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared != info.file_size - head:
                raise GraphError(
                    f"{p}: member {name} declares shape {list(shape)} ({declared} bytes) but "
                    f"holds {info.file_size - head} bytes"
                )


def load_graph(path: str | Path) -> Graph:
    """Read and validate a graph file; any defect raises :class:`GraphError` naming the file.

    Checked before anything is allocated: every member's declared size against the bytes it
    holds, and its dtype (:func:`_check_members`); then the meaning: a CSR whose offsets rise
    from 0 to the edge count, edge targets inside the graph, weights finite and > 0, block offsets
    rising from 0 to the node count, a metadata object whose blocks, layers and conv terms have
    the types and ranges the readers index with (:func:`_meta_problems`). A file that records its
    :func:`content_digest` must match it (a weight changed by hand or by a flipped bit is an
    error, not another graph: sha256 of the members, ~0.36 s for a 25M-edge graph here); one
    without is checked against the zip's CRC-32 instead."""
    graph, verified = _load_graph(path, defer_digest=False)
    verified()
    return graph


def load_graph_deferred(path: str | Path) -> tuple[Graph, Callable[[], None]]:
    """:func:`load_graph` whose content-digest check runs on a thread while the caller works:
    returns the graph and ``verified``, which waits for the check and raises the same
    :class:`GraphError` on a mismatch. Every other check is done before this returns. The caller
    must call ``verified()`` before it writes anything computed from the graph (and before it
    reports an error of its own, which a damaged file may have caused).

    Why: the digest reads every byte of the members (~0.4 s for 25M edges, a few seconds for a
    Conv-6 MGE), which no longer delays the metric family that reads the same arrays."""
    return _load_graph(path, defer_digest=True)


def _load_graph(path: str | Path, defer_digest: bool) -> tuple[Graph, Callable[[], None]]:
    p = Path(path)
    if not p.exists():
        raise GraphError(f"{p}: graph file not found")
    try:
        _check_members(p)
        with np.load(p, allow_pickle=False) as z:
            meta = loads_json(str(z["meta"]), f"{p}: metadata header", GraphError)
            if not isinstance(meta, dict):
                raise GraphError(
                    f"{p}: metadata header is a JSON {type(meta).__name__}, not an object"
                )
            recorded = meta.get(DIGEST_KEY)
            arrays = _mapped_members(p, ("indptr", "indices", "weights"), crc=recorded is None)
            for k in ("indptr", "indices", "weights", "block_offsets"):
                if k not in arrays:
                    arrays[k] = z[k]
            kernels = {k: z[k] for k in z.files if k.startswith("kernel_")}
    except KeyError as exc:
        raise GraphError(f"{p}: not a snntopo graph file (missing array {exc})") from None
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
        SyntaxError,
        TokenError,  # numpy parses a .npy header with tokenize: a damaged one can end there
    ) as exc:
        raise GraphError(f"{p}: unreadable or truncated graph file ({exc})") from None
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
    elif weights.size:
        for _, part in iter_chunks(weights):  # streamed: a mapped member is not left resident
            if not (part.min() > 0 and np.isfinite(part.max())):  # NaN fails both comparisons
                bad = part[~((part > 0) & np.isfinite(part))][0]
                problems.append(f"weights must be finite and > 0 (found {bad})")
                break
    lo_hi = [(part.min(), part.max()) for _, part in iter_chunks(indices)]
    if lo_hi and (min(v[0] for v in lo_hi) < 0 or max(v[1] for v in lo_hi) >= n):
        problems.append(f"edge targets outside [0, {n})")
    elif (
        not problems
        and meta.get("encoding") is not None  # hand-built graphs may have any direction
        and offsets.size
        and offsets[0] == 0
        and np.all(np.diff(offsets) >= 0)
    ):
        problems += _backward_edges(indptr, indices, offsets)
    if offsets.size == 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        problems.append(
            f"block_offsets {offsets[:8].tolist()} do not rise from 0 (a block of negative size)"
        )
    if problems:
        raise GraphError(f"{p}: inconsistent graph file: " + "; ".join(problems))
    problems += _meta_problems(meta, offsets.shape[0] - 1)
    if not problems and indices.dtype != np.int32 and n < 2**31:
        problems.append(
            f"indices are {indices.dtype} for {n} nodes (the format: int32 below 2**31)"
        )
    block_meta = meta.get("blocks", [])
    if not problems and (offsets.shape[0] != len(block_meta) + 1 or offsets[-1] != n):
        problems.append(
            f"block_offsets ({offsets.shape[0] - 1} blocks ending at {offsets[-1]}) disagree "
            f"with metadata ({len(block_meta)} blocks, {n} nodes)"
        )
    if not problems:
        for b, lo, hi in zip(block_meta, offsets[:-1], offsets[1:], strict=True):
            if "shape" in b and int(np.prod(b["shape"], dtype=object)) != hi - lo:
                problems.append(
                    f"block {b.get('name')!r} has {hi - lo} nodes but shape {b['shape']}"
                )
                break
    for k, kernel in kernels.items():
        if kernel.size and not (kernel.min() >= 0 and np.isfinite(kernel.max())):
            problems.append(f"{k} must hold finite values >= 0 (|W|)")
            break
    if not problems:
        problems += _conv_term_problems(meta, kernels)
    if problems:
        raise GraphError(f"{p}: inconsistent graph file: " + "; ".join(problems))
    # last, so that a file whose fields disagree is told what disagrees
    verified = _digest_check(p, recorded, arrays, kernels, meta, defer_digest)
    blocks = [
        Block(b["name"], int(lo), int(hi), tuple(b.get("shape", (int(hi - lo),))))
        for b, lo, hi in zip(block_meta, offsets[:-1], offsets[1:], strict=True)
    ]
    layers = meta.pop("layers", [])
    meta.pop("blocks", None)
    graph = Graph(indptr, indices, weights, blocks, meta=meta, layers=layers, kernels=kernels)
    return graph, verified


def _digest_check(
    p: Path,
    recorded: Any,
    arrays: dict[str, np.ndarray],
    kernels: dict[str, np.ndarray],
    meta: dict[str, Any],
    defer: bool,
) -> Callable[[], None]:
    """The recorded content digest checked now (``defer`` False) or on a thread; returns the
    function that waits for the thread and raises on a mismatch (nothing to wait for: a no-op)."""
    if recorded is None:
        return lambda: None
    members = {k: arrays[k] for k in ("indptr", "indices", "weights", "block_offsets")}
    members.update(kernels)
    meta = copy.deepcopy(meta)  # the caller's copy loses its blocks and layers
    message = (
        f"{p}: content_sha256 is {recorded!r:.40} but the content gives another digest "
        "(a changed or damaged file)"
    )
    if not defer:
        if recorded != content_digest(members, meta):
            raise GraphError(message)
        return lambda: None
    pool = ThreadPoolExecutor(max_workers=1)  # hashlib releases the GIL on large buffers
    digest = pool.submit(content_digest, members, meta)
    pool.shutdown(wait=False)

    def verified() -> None:
        if recorded != digest.result():
            raise GraphError(message)

    return verified


def _backward_edges(indptr: np.ndarray, indices: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Every encoding's edges point forward: in a graph that names its encoding, no edge enters
    the input block, and none goes back to an earlier block (the reference MGE has edges
    within a block, so not "past its block"). One ``minimum.reduceat`` (~30 ms for 25M edges)."""
    rows = np.flatnonzero(np.diff(indptr))
    if rows.size == 0 or offsets[-1] != indptr.shape[0] - 1 or offsets.shape[0] < 2:
        return []
    starts = indptr[rows]
    first_target = np.empty(rows.shape[0], dtype=indices.dtype)
    done = 0
    for a, part in iter_chunks(indices):  # the rows that start in each chunk (pages released)
        b = a + part.shape[0]
        upto = int(np.searchsorted(starts, b, side="left"))
        if upto > done:
            first_target[done:upto] = np.minimum.reduceat(part, starts[done:upto] - a)
            if indptr[rows[upto - 1] + 1] > b:  # the last one runs on into the next chunk
                first_target[upto - 1] = indices[
                    int(starts[upto - 1]) : int(indptr[rows[upto - 1] + 1])
                ].min()
            done = upto
    if first_target.min() < offsets[1]:
        return [f"an edge enters the input block (node {int(first_target.min())})"]
    block_start = offsets[np.searchsorted(offsets, rows, side="right") - 1]
    bad = np.flatnonzero(first_target < block_start)
    if bad.size:
        r = int(rows[bad[0]])
        return [f"node {r} has an edge back to node {int(first_target[bad[0]])}, an earlier block"]
    return []


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _meta_problems(meta: dict[str, Any], n_blocks: int) -> list[str]:
    """The metadata fields the readers index with, checked for type and range (one problem per
    field, naming field and value)."""

    def show(v: Any) -> str:
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."

    blocks = meta.get("blocks", [])
    if not isinstance(blocks, list):
        return [f"metadata 'blocks' is {show(blocks)}, not a list"]
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            return [f"metadata blocks[{i}] is {show(b)}, not an object with a string name"]
        shape = b.get("shape", [])
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            return [f"metadata blocks[{i}].shape is {show(shape)}, not a list of sizes >= 0"]
    for key in ("encoding", "mode"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            return [f"metadata {key!r} is {show(meta[key])}, not a string"]
    for key in ("network", "provenance"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            return [f"metadata {key!r} is {show(meta[key])}, not an object"]
    layers = meta.get("layers", [])
    if not isinstance(layers, list):
        return [f"metadata 'layers' is {show(layers)}, not a list"]
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            return [f"metadata layers[{i}] is {show(layer)}, not an object"]
        for side in ("left", "right"):
            v = layer.get(side)
            if not _is_int(v) or not 0 <= v < n_blocks:
                return [
                    f"metadata layers[{i}].{side} is {show(v)}, not a block index in [0, {n_blocks})"
                ]
        if layer["left"] == layer["right"]:
            return [f"metadata layers[{i}] has the same block {layer['left']} on both sides"]
    terms = meta.get("conv_terms", [])
    if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
        return [f"metadata 'conv_terms' is {show(terms)}, not a list of objects"]
    named = [str(t.get("kernel")) for t in terms]
    if len(set(named)) != len(named):
        return ["metadata conv_terms name one kernel twice"]
    for i, t in enumerate(terms):
        if not isinstance(t.get("layer", ""), str) or not isinstance(t.get("kernel"), str):
            return [f"metadata conv_terms[{i}] has a layer or kernel that is not a string"]
        for side in ("in_block", "out_block"):
            v = t.get(side)
            if not _is_int(v) or not 0 <= v < n_blocks:
                return [
                    f"metadata conv_terms[{i}].{side} is {show(v)}, not a block index in [0, {n_blocks})"
                ]
        for key in ("stride", "padding", "dilation"):
            v = t.get(key)
            least = 1 if key != "padding" else 0
            if (
                not isinstance(v, list)
                or len(v) != 2
                or not all(_is_int(x) and x >= least for x in v)
            ):
                return [f"metadata conv_terms[{i}].{key} is {show(v)}, not two integers >= {least}"]
        if "padding_end" in t and not _ints_at_least(t["padding_end"], 2, 0):
            return [
                f"metadata conv_terms[{i}].padding_end is {show(t['padding_end'])}, "
                "not two integers >= 0"
            ]
        groups = t.get("groups", 1)
        if not _is_int(groups) or groups < 1:
            return [f"metadata conv_terms[{i}].groups is {show(groups)}, not an integer >= 1"]
        pools = t.get("pools", [])
        if not isinstance(pools, list) or not all(isinstance(p, dict) for p in pools):
            return [f"metadata conv_terms[{i}].pools is {show(pools)}, not a list of objects"]
        for j, pool in enumerate(pools):
            for key, n, least in (
                ("kernel", 2, 1),
                ("stride", 2, 1),
                ("padding", 2, 0),
                ("in_shape", 3, 1),
                ("out_shape", 3, 1),
            ):
                if not _ints_at_least(pool.get(key), n, least):
                    return [
                        f"metadata conv_terms[{i}].pools[{j}].{key} is {show(pool.get(key))}, "
                        f"not {n} integers >= {least}"
                    ]
    return []


def _ints_at_least(v: Any, n: int, least: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_int(x) and x >= least for x in v)


def conv_output_side(side: int, k: int, stride: int, pad: int, dil: int) -> int:
    """torch's output length of a convolution along one axis."""
    return (side + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _conv_term_problems(meta: dict[str, Any], kernels: dict[str, np.ndarray]) -> list[str]:
    """What is wrong with the ``conv_terms`` of a file: a missing kernel, or one whose shape does
    not map its input block onto its output block (through the term's pooling windows, which
    must chain from the input block and keep the channels; with ``groups``, a kernel of
    ``C_in/groups`` input channels; with ``padding_end``, that far-side padding)."""
    shapes = [list(b.get("shape", [])) for b in meta.get("blocks", [])]
    for t in meta.get("conv_terms", []):
        try:
            k = kernels[t["kernel"]]
            grid = list(shapes[t["in_block"]])
            fits = len(grid) == 3
            for p in t.get("pools", []):
                fits = fits and list(p["in_shape"]) == grid and p["out_shape"][0] == grid[0]
                for d in range(2):
                    span = p["in_shape"][1 + d] + 2 * p["padding"][d] - p["kernel"][d]
                    floor = span // p["stride"][d] + 1
                    ceil = -(-span // p["stride"][d]) + 1
                    fits = fits and span >= 0 and p["out_shape"][1 + d] in (floor, ceil)
                grid = list(p["out_shape"])
            cin, h, w = grid
            cout, ho, wo = shapes[t["out_block"]]
            groups = int(t.get("groups", 1))
            end = t.get("padding_end", t["padding"])
            sides = [
                conv_output_side(
                    side + end[d] - t["padding"][d],
                    k.shape[2 + d],
                    t["stride"][d],
                    t["padding"][d],
                    t["dilation"][d],
                )
                for d, side in enumerate((h, w))
            ]
            fits = fits and k.ndim == 4 and cin % groups == 0 and cout % groups == 0
            if not fits or list(k.shape[:2]) != [cout, cin // groups] or sides != [ho, wo]:
                return [f"conv term of layer {t.get('layer')!r} does not fit its blocks"]
        except (KeyError, IndexError, TypeError, ValueError):
            return [f"conv term {t!r} is incomplete or names a missing kernel"]
    return []
