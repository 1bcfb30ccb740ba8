"""The ``local`` and ``strength`` families of an MGE without reading its conv edges.

An MGE block pair made by one plain conv holds that conv's ``|W|`` stencil at every output
position; the graph file stores the kernel beside the CSR (``conv_terms``, see
:mod:`snntopo.metrics.conv_operator`). A conv with a tiling pooling folded in (kernel = stride, no
padding: VGG's and Conv-6's 2x2 max pooling) is applied too, each pooled position standing for
the pre-pool positions of its window (:func:`tiling_pool`). Everything these two families need
follows from the kernels and from the other edges (the *residual*: linear heads, convs with
overlapping pooling or groups, concatenations), so the term-covered part of the CSR is never read
(its pages, memory-mapped by ``load_graph``, are not touched by the family). The terms hold most
edges of a plain conv network (ResNet-20: 99%; torchvision resnet50 at 64x64: 62%, its stem's
overlapping 3x3/2 pooling is not applied):

- out-degree of every node: the *binary* kernel ``(k > 0)``'s transposed conv of ones
  (:meth:`StencilTerm.backward`), in-degree: its conv of ones (``forward``), each plus the residual
  graph's degrees; the ``local`` formulas then run on these degrees unchanged;
- total strength: per kernel tap, ``|w|`` times the number of output positions whose tap reads a
  real input (a closed form: no convolution at all), plus the residual weights;
- coreness: the peeling of :func:`snntopo.metrics.algorithms.coreness` (undirected multigraph,
  degree = in + out, all nodes of degree <= k removed at once, level by level) with the neighbour
  decrements of a wave applied through the terms whose source or target block lost nodes in that
  wave -- through the kernel's nonzero taps for a few removed nodes (:class:`_Stencil`), as one
  binary convolution of their indicator for many -- plus the residual's CSR/CSC.

The residual edges are read row by row at positions computed from the terms' per-node edge
counts: in a row (sorted by target) the residual entries are one run beside the term runs (the
encoder's layout: each term's targets are one block), at the offset of the term runs before it.
Every gathered target is checked to lie outside the terms' blocks; a block whose residual does
not form one run is filtered entry by entry instead (those reads are counted and recorded).
The kernels are trusted to be the edges they replace (the encoder writes both; checking a
product against the CSR, as :func:`conv_operator.conv_adjacency` does, would read it): a row
shorter than its terms' edges, or residual entries that are not where the counts put them, is a
mismatch, and the family reads the CSR instead (logged, recorded as the path taken).

Which path a family takes is :func:`plan` (graph metadata only, also the pre-flight memory
estimate's input): ``params["path"]`` = ``auto`` (implicit for an exact-mode MGE whose terms hold at
least :data:`MIN_SHARE` of the edges), ``implicit`` or ``materialised``.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encode.graph import Block, Graph, count_ids
from ..errors import ConfigError
from ..mapped import release_pages

if TYPE_CHECKING:  # imported where used: the plan (memory pre-flight) needs no scipy
    from ..encode.stencil import StencilTerm

log = logging.getLogger("snntopo.metrics")

#: values of ``params["path"]``
PATHS = ("auto", "implicit", "materialised")
#: ``auto`` takes the implicit path when the conv terms hold at least this share of the edges
MIN_SHARE = 0.5
#: the memory estimate counts a covered edge as this share of a materialised one: the implicit
#: path holds none of them, but ``load_graph``'s checks read the whole memory-mapped file, whose
#: pages (8 bytes per edge) stay resident, against the estimate's 32 bytes per edge
COVERED_EDGE_SHARE = 0.25


@dataclass(frozen=True)
class Plan:
    """The path a family takes on one graph: ``path`` (``implicit``|``materialised``), the edges
    held by conv terms (``covered_edges``), the edges it reads into memory (``materialised_edges``:
    the residual on the implicit path, all edges otherwise) and why."""

    path: str
    covered_edges: int
    materialised_edges: int
    why: str


#: the fields of a plain conv term; this module applies those and, with ``pools`` besides, a conv
#: whose folded pooling is one *tiling* window set (:func:`tiling_pool`). A term with other
#: fields (groups, far-side padding, overlapping windows) is read from the CSR as residual edges
PLAIN_FIELDS = frozenset(
    ("layer", "in_block", "out_block", "kernel", "stride", "padding", "dilation")
)


def tiling_pool(term: Mapping[str, Any]) -> tuple[int, int] | None:
    """(kh, kw) of a term's one folded pooling when its windows tile the map (kernel = stride,
    no padding: VGG's and Conv-6's 2x2 max pooling), else None. Why only those: every pre-pool
    position then lies in one window, so a source reaches a target through one tap and one
    window, an edge's weight is one |w| and the binary kernel's products count edges, not paths
    (with overlapping windows they would count an edge once per window that holds it)."""
    pools = term.get("pools")
    if not isinstance(pools, list) or len(pools) != 1 or not isinstance(pools[0], dict):
        return None
    try:
        k, s, p = ([int(v) for v in pools[0][f]] for f in ("kernel", "stride", "padding"))
    except (KeyError, TypeError, ValueError):
        return None
    if len(k) != 2 or k != s or p != [0, 0] or min(k) < 1:
        return None
    return k[0], k[1]


def plain_terms(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metadata's conv terms that this module applies: plain convs (:data:`PLAIN_FIELDS`)
    and convs with one tiling pooling folded in (:func:`tiling_pool`)."""
    out = []
    for t in meta.get("conv_terms") or []:
        if not isinstance(t, dict):
            continue
        if set(t) <= PLAIN_FIELDS or (set(t) - {"pools"} <= PLAIN_FIELDS and tiling_pool(t)):
            out.append(t)
    return out


def covered_edges(meta: Mapping[str, Any]) -> int:
    """Edges of the graph's conv terms, from its metadata (``mge_layers`` records each layer's
    edges; a term is the only writer of its block pair). 0 where the metadata does not say."""
    terms = plain_terms(meta)
    layers = meta.get("mge_layers")
    if not terms or not isinstance(layers, list):
        return 0
    edges = {lay.get("name"): lay.get("edges") for lay in layers if isinstance(lay, dict)}
    total = 0
    for t in terms:
        e = edges.get(t.get("layer"))
        if not isinstance(e, int):
            return 0
        total += e
    return total


def plan(family: str, meta: Mapping[str, Any], n_edges: int, params: Mapping[str, Any]) -> Plan:
    """Which path ``family`` takes on a graph with metadata ``meta`` and ``n_edges`` edges under
    ``params`` (no array is read). A BGE (its layer graphs) is always materialised; a forced
    ``implicit`` on an MGE without conv terms (reference mode), or an unknown ``path``, is a
    :class:`ConfigError`."""
    want = params.get("path", "auto")
    if want not in PATHS:
        raise ConfigError(f"metric parameter path is {want!r}; use one of {', '.join(PATHS)}")
    cov = covered_edges(meta)
    from . import FAMILIES

    if family not in FAMILIES or not FAMILIES.meta(family).implicit:
        return Plan("materialised", cov, n_edges, f"family {family} has no implicit path")
    if want == "materialised":
        return Plan("materialised", cov, n_edges, "path=materialised")
    if meta.get("encoding") not in (None, "mge"):  # a BGE's layers: no implicit path
        return Plan("materialised", cov, n_edges, "the implicit path applies to MGEs only")
    if not plain_terms(meta):
        if want == "implicit":
            raise ConfigError(
                "metric parameter path=implicit needs an exact-mode MGE with conv terms; this "
                "graph has none (use path=auto or materialised)"
            )
        return Plan("materialised", 0, n_edges, "graph has no conv terms")
    share = cov / n_edges if n_edges else 0.0
    if want == "implicit":
        return Plan("implicit", cov, n_edges - cov, "path=implicit")
    if meta.get("mode", "exact") != "exact":
        return Plan("materialised", cov, n_edges, "not an exact-mode MGE")
    if share < MIN_SHARE:
        return Plan(
            "materialised",
            cov,
            n_edges,
            f"conv terms hold {share:.0%} of the edges (< {MIN_SHARE:.0%})",
        )
    return Plan("implicit", cov, n_edges - cov, f"conv terms hold {share:.1%} of the edges")


def _file_meta(path: str) -> tuple[dict[str, Any], int] | None:
    """A graph file's metadata member and edge count (its ``indices`` header; no CSR read), or
    ``None`` for a file without them (its reader reports it)."""
    from ..io import graph_edges_from_file, loads_json

    n_edges = graph_edges_from_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:  # reads the metadata member only
            meta = loads_json(str(z["meta"]), str(path), ValueError)
    except (OSError, KeyError, zipfile.BadZipFile, ValueError, EOFError):
        return None
    if n_edges is None or not isinstance(meta, dict):
        return None
    return meta, n_edges


def plan_file(path: str, family: str, params: Mapping[str, Any] | None = None) -> Plan | None:
    """:func:`plan` from a graph file's metadata member and its ``indices`` header (no CSR
    read); ``None`` for a file without them (its reader reports it)."""
    found = _file_meta(path)
    if found is None:
        return None
    try:
        return plan(family, found[0], found[1], params or {})
    except ConfigError:
        return None


#: the spectral operator (:mod:`snntopo.metrics.conv_operator`) applies a conv term as a dense
#: convolution when its edges are at least this share of (kernel entries x output positions):
#: per kernel entry and output position the dense product costs ~1/5.6 of a CSR edge (ResNet-20
#: ERK 0.6 MGE, 2 threads: 10 ms for 40.8M entries x positions, both directions, against 34 ms
#: for its 24.9M edges), so below ~0.18 it would lose. Pruned weights and taps that fall on zero
#: padding both lower the share (small feature maps: most taps are padding). Defined here, with
#: the coverage below, so that the memory plan reads them without importing scipy
SPECTRAL_MIN_DENSITY = 0.2
#: ... and uses the operator only when such terms hold at least this share of the edges: its
#: setup (a copy of the other edges, the check product) costs a few CSR products, which a small
#: share does not earn back (torchvision densenet121 at 32x32: 7% of the edges, no faster)
SPECTRAL_MIN_COVERAGE = 0.25


def spectral_covered_edges(meta: Mapping[str, Any], n_edges: int) -> int:
    """Edges the expansion family's operator applies as dense convolutions, from the metadata
    alone (each term's layer edges and weight count, its output block's shape): 0 where those
    hold less than :data:`SPECTRAL_MIN_COVERAGE` of the ``n_edges``, or where the metadata does
    not say (then the estimate counts every edge)."""
    layers = {lay.get("name"): lay for lay in meta.get("mge_layers") or [] if isinstance(lay, dict)}
    blocks = meta.get("blocks") or []
    total = 0
    for t in meta.get("conv_terms") or []:
        try:
            lay = layers[t["layer"]]
            shape = blocks[int(t["out_block"])]["shape"]
            cost = int(lay["numel"]) * int(shape[1]) * int(shape[2])
            edges = int(lay["edges"])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if cost > 0 and edges >= SPECTRAL_MIN_DENSITY * cost:
            total += edges
    return total if total >= max(1, SPECTRAL_MIN_COVERAGE * n_edges) else 0


def job_edges(
    graph_paths: list[str], family: str, params: Mapping[str, Any] | None = None
) -> float:
    """Edges a metric job of ``family`` holds, for its memory estimate: for each stored graph,
    on the implicit path (:func:`plan_file`, the file's metadata only) its residual edges plus
    its covered edges at :data:`COVERED_EDGE_SHARE` (the mapped file's pages), likewise for
    ``expansion`` with the edges its operator applies as convolutions
    (:func:`spectral_covered_edges`), else all of them (:func:`snntopo.memcheck.metrics_edges`);
    the largest graph's count."""
    from ..memcheck import metrics_edges

    counts = []
    for p in graph_paths:
        if family == "expansion":
            meta = _file_meta(p)
            if meta is not None:
                cov = spectral_covered_edges(*meta)
                counts.append(meta[1] - cov + COVERED_EDGE_SHARE * cov)
                continue
        found = plan_file(p, family, params)
        if found is not None and found.path == "implicit":
            counts.append(found.materialised_edges + COVERED_EDGE_SHARE * found.covered_edges)
        else:
            counts.append(metrics_edges([p]))
    return float(max(counts, default=0))


def _tap_outputs(term: Mapping[str, Any], kh: int, kw: int, src: Block, dst: Block) -> np.ndarray:
    """(kh, kw): for each kernel tap, the source positions it joins to an output, summed over
    the outputs: the outputs whose tap reads a real input (taps on zero padding make no edge),
    each times the number of pre-pool positions in the window it reads (1 without pooling)."""
    pool = tiling_pool(term)
    grid = term["pools"][0]["out_shape"] if pool else src.shape  # the conv's input grid

    def valid(axis: int, k: int, s: int, p: int, d: int) -> np.ndarray:
        kp = pool[axis] if pool else 1
        side, n_in = int(grid[1 + axis]), int(src.shape[1 + axis])
        pos = np.arange(int(dst.shape[1 + axis]))[None, :] * s - p + np.arange(k)[:, None] * d
        ok = (pos >= 0) & (pos < side)
        window = np.clip(n_in - np.clip(pos, 0, None) * kp, 0, kp)  # pre-pool rows it holds
        return (ok * window).sum(axis=1)

    (sh, sw), (ph, pw), (dh, dw) = term["stride"], term["padding"], term["dilation"]
    vy, vx = valid(0, kh, sh, ph, dh), valid(1, kw, sw, pw, dw)
    return (vy[:, None] * vx[None, :]).astype(np.int64)


class _Term:
    """One stored conv term as its kernel and geometry; its dense product buffers
    (:class:`StencilTerm` with the binary kernel ``(k > 0)``: float64 kernel, its transpose, im2col
    columns) exist only while a product runs, so that holding every term costs its kernel only."""

    def __init__(self, spec: Mapping[str, Any], kernel: np.ndarray, src: Block, dst: Block):
        self.spec, self.kernel, self.src, self.dst = spec, kernel, src, dst
        self.cout, self.cin, self.kh, self.kw = (int(v) for v in kernel.shape)
        # the source block (pre-pool) and the conv's own input grid (the pooled map, if any)
        self.src_h, self.src_w = (int(v) for v in src.shape[1:])
        self.pool = tiling_pool(spec)
        if self.pool:
            shape = [int(v) for v in spec["pools"][0]["out_shape"]]
            if [int(v) for v in spec["pools"][0]["in_shape"]] != [int(v) for v in src.shape]:
                raise _Mismatch(f"pooling of term {spec.get('layer')} does not fit its block")
            self.h, self.w = shape[1:]
        else:
            self.h, self.w = self.src_h, self.src_w
        self.ho, self.wo = (int(v) for v in dst.shape[1:])
        (self.sh, self.sw), (self.ph, self.pw) = spec["stride"], spec["padding"]
        self.dh, self.dw = spec["dilation"]
        taps = _tap_outputs(spec, self.kh, self.kw, src, dst)
        self.n_edges = int((np.count_nonzero(kernel, axis=(0, 1)) * taps).sum())
        self.weight = float((kernel.astype(np.float64).sum(axis=(0, 1)) * taps).sum())

    def dense(self) -> StencilTerm:
        # the stencil itself, not the spectral module that wraps it (whose scipy.sparse.linalg
        # import costs every local and strength job ~0.08 s)
        from ..encode.stencil import StencilTerm

        return StencilTerm(self.spec, (self.kernel > 0).astype(np.float32), self.src, self.dst)


def _terms(graph: Graph) -> list[_Term]:
    """Every stored conv term (no density threshold: here a term replaces reading its edges)."""
    out = []
    for t in plain_terms(graph.meta):
        k = graph.kernels.get(t["kernel"])
        src, dst = graph.blocks[t["in_block"]], graph.blocks[t["out_block"]]
        if k is None or k.ndim != 4 or k.shape[:2] != (dst.shape[0], src.shape[0]):
            raise _Mismatch(f"kernel {t['kernel']} does not fit its blocks")
        out.append(_Term(t, k, src, dst))
    return out


class _Mismatch(Exception):
    """The stored terms do not fit the CSR (hand-made file): the materialised path is taken."""


@dataclass
class _Parts:
    """Degrees from the terms plus the residual graph (the edges no term holds)."""

    out_deg: np.ndarray  # int64, terms + residual
    in_deg: np.ndarray
    residual: _Residual
    terms: list[_Term]
    covered: int
    read_covered: int  # entries of term-covered blocks read while locating the residual


def _degrees_and_residual(graph: Graph) -> _Parts:
    n = graph.n_nodes
    terms = _terms(graph)
    if not terms:
        raise _Mismatch("no conv terms")
    by_src: dict[int, list[_Term]] = {}
    for t in terms:
        by_src.setdefault(t.src.start, []).append(t)
    ones = np.ones(n)
    out_f = np.zeros(n)
    in_f = np.zeros(n)
    per_term: dict[int, np.ndarray] = {}  # id(term) -> its out-degree over its source block
    scratch = np.zeros(n)
    for t in terms:
        d = t.dense()
        d.forward(ones, in_f)
        scratch[t.src.start : t.src.stop] = 0.0
        d.backward(ones, scratch)
        del d
        c = np.rint(scratch[t.src.start : t.src.stop]).astype(np.int64)
        per_term[id(t)] = c
        out_f[t.src.start : t.src.stop] += c
    del scratch
    out_terms = np.rint(out_f).astype(np.int64)
    in_terms = np.rint(in_f).astype(np.int64)
    del out_f, in_f
    residual, read = _residual(graph, terms, by_src, per_term)
    return _Parts(
        out_deg=out_terms + residual.counts,
        in_deg=in_terms + residual.in_degree(),
        residual=residual,
        terms=terms,
        covered=sum(t.n_edges for t in terms),
        read_covered=read,
    )


def _residual(
    graph: Graph,
    terms: list[_Term],
    by_src: dict[int, list[_Term]],
    per_term: dict[int, np.ndarray],
) -> tuple[_Residual, int]:
    """The edges no term holds, located at computed positions (module docstring); also the number
    of term-covered entries read on the way (0 when every residual run sits where expected)."""
    ptr, ind = graph.indptr, graph.indices

    def outside(targets: np.ndarray, ts: list[_Term]) -> np.ndarray:
        """Which targets lie outside the target blocks of ``ts`` (one source block's terms)."""
        keep = np.ones(targets.shape[0], dtype=bool)
        for t in ts:
            keep &= (targets < t.dst.start) | (targets >= t.dst.stop)
        return keep

    layer_dst: dict[int, set[int]] = {}  # source block start -> target block starts (metadata)
    starts = [b.start for b in graph.blocks]
    for lay in graph.meta.get("mge_layers") or []:
        try:
            layer_dst.setdefault(starts[lay["in_block"]], set()).add(starts[lay["out_block"]])
        except (KeyError, IndexError, TypeError):
            continue
    counts = np.zeros(graph.n_nodes, dtype=np.int64)
    pieces: list[tuple[Block, Any]] = []  # (block, None = whole rows | index array)
    read = 0
    for b in graph.blocks:
        lo, hi = b.start, b.stop
        rows = np.diff(ptr[lo : hi + 1]).astype(np.int64)
        ts = by_src.get(lo, [])
        if not ts:
            counts[lo:hi] = rows
            pieces.append((b, None))
            continue
        term_rows = sum(per_term[id(t)] for t in ts)
        r = rows - term_rows
        if (r < 0).any():
            raise _Mismatch(f"block {b.name}: rows shorter than their conv terms' edges")
        if not r.any():
            continue
        ts_sorted = sorted(ts, key=lambda t: t.dst.start)
        # where the residual run may sit: after the first h term runs; the metadata's
        # hypothesis first (targets of this block's other layers), then the others
        others = [s for s in layer_dst.get(lo, ()) if s not in {t.dst.start for t in ts}]
        first = sum(1 for t in ts_sorted if others and t.dst.start < min(others))
        found = None
        for h in [first] + [h for h in range(len(ts_sorted) + 1) if h != first]:
            off = sum((per_term[id(t)] for t in ts_sorted[:h]), np.zeros(hi - lo, np.int64))
            run_starts = ptr[lo:hi].astype(np.int64) + off
            pos = _run_positions(run_starts, r)
            ok = pos.shape[0] == 0 or bool(outside(ind[pos], ts).all())
            if pos.shape[0]:
                release_pages(ind, int(pos[0]), int(pos[-1]) + 1)
            del pos
            if ok:
                found = _Runs(run_starts, r)
                break
            read += int(r.sum())
        if found is None:  # residual targets on both sides of a term's block: filter the rows
            a, z = int(ptr[lo]), int(ptr[hi])
            seg = np.asarray(ind[a:z])
            read += z - a
            found = a + np.flatnonzero(outside(seg, ts))
            release_pages(ind, a, z)
            if found.shape[0] != r.sum():
                raise _Mismatch(f"block {b.name}: residual edges do not match the conv terms")
        counts[lo:hi] = r
        pieces.append((b, found))
    return _Residual(graph, counts, pieces), read


@dataclass(frozen=True)
class _Runs:
    """One run of residual entries per row of a block: ``length[i]`` entries from ``first[i]``
    (ascending), kept as the runs and expanded chunk by chunk: 16 bytes per row, not 8 per
    entry (ResNet-50 224x224 ERK 0.9: 5.4e8 residual edges, 4.3 GB of positions)."""

    first: np.ndarray
    length: np.ndarray


class _Residual:
    """The edges no term holds, as row counts and where they lie in the mapped CSR (whole rows
    of a block, one run per row, or gathered positions): read again for each use, copied only by
    :meth:`graph`; the mapped pages of each chunk are released once it is used."""

    def __init__(self, graph: Graph, counts: np.ndarray, pieces: list[tuple[Block, Any]]):
        self.g, self.counts, self.pieces = graph, counts, pieces
        self.n_edges = int(counts.sum())

    def chunks(self, arr: np.ndarray) -> Any:
        """``arr`` (the CSR's indices or weights) at the residual entries, block by block in
        pieces of at most :data:`EDGE_CHUNK` entries (one long row's run aside); each piece's
        pages are released when the next is asked for (its user has copied or reduced it)."""
        from .algorithms import EDGE_CHUNK, row_chunks

        ptr = self.g.indptr
        for b, sel in self.pieces:
            if sel is None:
                a, z = int(ptr[b.start]), int(ptr[b.stop])
                for c in range(a, z, EDGE_CHUNK):
                    yield arr[c : min(z, c + EDGE_CHUNK)]
                    release_pages(arr, c, min(z, c + EDGE_CHUNK))
            elif isinstance(sel, _Runs):
                ends = np.concatenate([[0], np.cumsum(sel.length)])
                for i, j in row_chunks(ends, EDGE_CHUNK):
                    pos = _run_positions(sel.first[i:j], sel.length[i:j])
                    if pos.shape[0]:
                        yield arr[pos]
                        release_pages(arr, int(pos[0]), int(pos[-1]) + 1)
            else:
                for c in range(0, sel.shape[0], EDGE_CHUNK):
                    part = sel[c : c + EDGE_CHUNK]
                    yield arr[part]
                    release_pages(arr, int(part.min()), int(part.max()) + 1)

    def in_degree(self) -> np.ndarray:
        n = self.g.n_nodes
        deg = np.zeros(n, dtype=np.int64)
        for c in self.chunks(self.g.indices):
            deg += count_ids(c, n)
        return deg

    def weight(self) -> float:
        return float(sum(c.sum(dtype=np.float64) for c in self.chunks(self.g.weights)))

    def graph(self) -> Graph:
        """The residual as a CSR of its own (targets only; no weights)."""
        indptr = np.zeros(self.g.n_nodes + 1, dtype=np.int64)
        np.cumsum(self.counts, out=indptr[1:])
        indices = np.empty(self.n_edges, dtype=self.g.indices.dtype)
        o = 0
        for c in self.chunks(self.g.indices):
            indices[o : o + c.shape[0]] = c
            o += c.shape[0]
        empty = np.zeros(0, dtype=np.float32)
        return Graph(indptr=indptr, indices=indices, weights=empty, blocks=self.g.blocks, meta={})


def _run_positions(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenated ``first[i] + arange(length[i])`` (int64)."""
    total = int(length.sum())
    keep = length > 0
    first, length = first[keep], length[keep]
    out = np.ones(total, dtype=np.int64)
    if total == 0:
        return out
    heads = np.concatenate([[0], np.cumsum(length)[:-1]])
    out[heads] = first - np.concatenate([[0], first[:-1] + length[:-1] - 1])
    return np.cumsum(out)


def degrees(graph: Graph) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(out-degree, in-degree, info) of every node from the terms and the residual."""
    parts = _degrees_and_residual(graph)
    return parts.out_deg, parts.in_deg, _info(parts)


def _info(parts: _Parts) -> dict[str, Any]:
    return {
        "path": "implicit",
        "conv_terms": len(parts.terms),
        "covered_edges": int(parts.covered),
        "residual_edges": int(parts.residual.n_edges),
        "covered_entries_read": int(parts.read_covered),
    }


def strength(graph: Graph) -> tuple[float, np.ndarray, dict[str, Any]]:
    """(total edge weight, coreness of every node, info) without reading the covered edges."""
    parts = _degrees_and_residual(graph)
    total = sum(t.weight for t in parts.terms)
    total += parts.residual.weight()
    core, rounds, applied = peel(parts)
    info = _info(parts)
    info.update({"peel_rounds": rounds, "term_products": applied})
    return total, core, info


#: a wave's removed nodes of one term's block go through the term's stencil one edge at a time
#: (:class:`_Stencil`) when that costs less than the dense product: per edge ~this many dense
#: multiply-adds (numpy gathers and a scatter against BLAS; measured on resnet18 at 64x64)
SPARSE_COST = 24


class _Stencil:
    """The edges of given nodes of one binary term, from its kernel's nonzero taps: a wave that
    removes few nodes of a block costs its removed nodes' edges, not a dense convolution."""

    def __init__(self, t: _Term) -> None:
        self.t = t
        b = t.kernel > 0
        f = b.transpose(1, 2, 3, 0).reshape(-1, t.cout)  # (c, u, v) -> output channels
        self.f_ptr = np.concatenate([[0], np.cumsum(f.sum(axis=1))]).astype(np.int64)
        self.f_idx = np.nonzero(f)[1].astype(np.int64)
        g = b.transpose(0, 2, 3, 1).reshape(-1, t.cin)  # (o, u, v) -> input channels
        self.b_ptr = np.concatenate([[0], np.cumsum(g.sum(axis=1))]).astype(np.int64)
        self.b_idx = np.nonzero(g)[1].astype(np.int64)
        self.per_src = t.n_edges / max(1, t.src.size)
        self.per_dst = t.n_edges / max(1, t.dst.size)
        self.dense = t.kernel.size * t.ho * t.wo
        self._tables: tuple[_Table, _Table] | None = None

    def tables(self) -> tuple[_Table, _Table]:
        """The taps that join an input position of the conv's own (pooled) grid to an output
        position, grouped by input (p = y * w + x: its taps u * kw + v and their outputs) and by
        output (q = oy * wo + ox: its taps and their inputs), each as (ptr, taps, positions): a
        wave reads a removed node's taps from them, not from the geometry. One relation, found
        once from the outputs' side (tap reads inside the grid) and grouped both ways, made on
        the first wave that uses the term (ho * wo * kh * kw entries at most)."""
        if self._tables is None:
            t = self.t
            sy = np.arange(t.ho)[:, None] * t.sh - t.ph + np.arange(t.kh)[None, :] * t.dh
            sx = np.arange(t.wo)[:, None] * t.sw - t.pw + np.arange(t.kw)[None, :] * t.dw
            vy = (sy >= 0) & (sy < t.h)
            vx = (sx >= 0) & (sx < t.w)
            oy, ox, u, v = np.nonzero(vy[:, None, :, None] & vx[None, :, None, :])
            q, tap, p = oy * t.wo + ox, u * t.kw + v, sy[oy, u] * t.w + sx[ox, v]
            by_p = np.argsort(p, kind="stable")
            self._tables = (
                _table(p[by_p], t.h * t.w, tap[by_p], q[by_p]),
                _table(q, t.ho * t.wo, tap, p),
            )
        return self._tables

    def targets(self, nodes: np.ndarray) -> np.ndarray:
        """Targets of every edge out of ``nodes`` (global ids in the source block), repeated."""
        from .algorithms import gather_ranges

        t = self.t
        loc = nodes - t.src.start
        c, at = np.divmod(loc, t.src_h * t.src_w)
        if t.pool:  # the window each pre-pool position lies in (none past the last one)
            y, x = (at // t.src_w) // t.pool[0], (at % t.src_w) // t.pool[1]
            ok = (y < t.h) & (x < t.w)
            c, at = c[ok], y[ok] * t.w + x[ok]
        ptr, taps, outs = self.tables()[0]
        i, lens = gather_ranges(ptr[:-1], ptr[1:], at)
        j = np.repeat(c * (t.kh * t.kw), lens) + taps[i]
        pos, lens = gather_ranges(self.f_ptr[:-1], self.f_ptr[1:], j)
        return t.dst.start + self.f_idx[pos] * (t.ho * t.wo) + np.repeat(outs[i], lens)

    def spread(
        self, nodes: np.ndarray, removed_sources: bool, ind: np.ndarray, dec: np.ndarray
    ) -> tuple[Block, np.ndarray | None]:
        """The block on the other side of ``nodes`` (removed nodes of the term's source block,
        or of its target block) and the ids there that lose one edge per removed edge (through
        the stencil), or ``None`` when the losses went into ``dec`` through one dense product
        of the indicator ``ind`` (the cheaper of the two, :data:`SPARSE_COST`)."""
        other = self.t.dst if removed_sources else self.t.src
        per = self.per_src if removed_sources else self.per_dst
        if nodes.shape[0] * per * SPARSE_COST < self.dense:
            return other, self.targets(nodes) if removed_sources else self.sources(nodes)
        ind[nodes] = 1.0
        op = self.t.dense()
        (op.forward if removed_sources else op.backward)(ind, dec)
        return other, None

    def sources(self, nodes: np.ndarray) -> np.ndarray:
        """Sources of every edge into ``nodes`` (global ids in the target block), repeated."""
        from .algorithms import gather_ranges

        t = self.t
        o, at = np.divmod(nodes - t.dst.start, t.ho * t.wo)
        ptr, taps, ins = self.tables()[1]
        i, lens = gather_ranges(ptr[:-1], ptr[1:], at)
        j = np.repeat(o * (t.kh * t.kw), lens) + taps[i]
        pos, lens = gather_ranges(self.b_ptr[:-1], self.b_ptr[1:], j)
        ch = self.b_idx[pos]
        at = np.repeat(ins[i], lens)
        if not t.pool:
            return t.src.start + ch * (t.h * t.w) + at
        # every pre-pool position of the window each pooled source stands for
        py, px = np.divmod(at, t.w)
        out = []
        for a in range(t.pool[0]):
            for b in range(t.pool[1]):
                yy, xx = py * t.pool[0] + a, px * t.pool[1] + b
                ok = (yy < t.src_h) & (xx < t.src_w)
                out.append(ch[ok] * (t.src_h * t.src_w) + yy[ok] * t.src_w + xx[ok])
        return t.src.start + np.concatenate(out)


#: (ptr, taps, positions) of :meth:`_Stencil.tables`
_Table = tuple[np.ndarray, np.ndarray, np.ndarray]


def _table(key: np.ndarray, n_keys: int, taps: np.ndarray, other: np.ndarray) -> _Table:
    """(ptr, taps, other) grouped by ``key`` (ascending)."""
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n_keys), out=ptr[1:])
    return ptr, taps.astype(np.int64), other.astype(np.int64)


def peel(parts: _Parts) -> tuple[np.ndarray, int, int]:
    """Coreness by peeling with convolutions (module docstring): (core, waves, dense term
    products). Per wave and term, the removed nodes' edges are subtracted through the stencil
    (few removed nodes) or through one dense product of their indicator (many)."""
    from .algorithms import gather_rows, in_neighbour_lists

    n = parts.out_deg.shape[0]
    deg = parts.out_deg + parts.in_deg
    rest = parts.residual.graph()
    r_ptr, r_ind = rest.indptr, rest.indices
    c_ptr, c_src = in_neighbour_lists(rest)
    starts = np.array([b.start for b in rest.blocks] + [n], dtype=np.int64)
    stop_of = {b.start: b.stop for b in rest.blocks}
    block_of = np.repeat(  # block index of every node (for the residual's neighbours)
        np.arange(len(rest.blocks), dtype=np.int32), np.diff(starts)
    )
    by_src: dict[int, list[_Stencil]] = {}
    by_dst: dict[int, list[_Stencil]] = {}
    for t in parts.terms:
        st = _Stencil(t)
        by_src.setdefault(t.src.start, []).append(st)
        by_dst.setdefault(t.dst.start, []).append(st)
    core = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    ind = np.zeros(n)  # indicator of the nodes removed in this wave
    dec = np.zeros(n)  # their neighbours' decrements through dense term products
    remaining, k, waves, products = n, 0, 0, 0
    scan: list[int] | None = None  # block starts whose degrees changed (None: all)
    while remaining:
        if scan is None:
            sel = np.flatnonzero(alive & (deg <= k))
        else:
            sel = np.concatenate(
                [[]]
                + [
                    a + np.flatnonzero(alive[a : stop_of[a]] & (deg[a : stop_of[a]] <= k))
                    for a in scan
                ]
            ).astype(np.int64)
            sel.sort()
        if sel.shape[0] == 0:
            if scan is None:
                k = int(deg[alive].min())
            scan = None
            continue
        waves += 1
        core[sel] = k
        alive[sel] = False
        remaining -= sel.shape[0]
        bounds = np.searchsorted(sel, starts)
        hit: set[int] = set()
        dense: list[tuple[int, int]] = []
        lost: list[np.ndarray] = []  # nodes losing one edge (repeated per edge)
        for bi in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist():  # blocks that lost nodes
            a = int(starts[bi])
            nodes = sel[int(bounds[bi]) : int(bounds[bi + 1])]
            # removed sources: their targets lose an in-edge; removed targets: their sources
            # lose an out-edge
            for removed_sources, table in ((True, by_src), (False, by_dst)):
                for st in table.get(a, []):
                    other, ids = st.spread(nodes, removed_sources, ind, dec)
                    hit.add(other.start)
                    if ids is not None:
                        lost.append(ids)
                    else:
                        dense.append((other.start, other.stop))
                        products += 1
        for a, b in set(dense):
            deg[a:b] -= np.rint(dec[a:b]).astype(np.int64)
            dec[a:b] = 0.0
        ind[sel] = 0.0
        for p, q in ((r_ptr, r_ind), (c_ptr, c_src)):
            if p[-1]:
                nb = q[gather_rows(p, sel)]
                lost.append(nb)
                seen = np.zeros(len(starts), dtype=bool)
                seen[block_of[nb]] = True
                hit.update(starts[np.flatnonzero(seen)].tolist())
        nb = np.concatenate(lost) if lost else np.zeros(0, dtype=np.int64)
        if nb.shape[0] > n // 4:
            deg -= count_ids(nb, n)
        elif nb.shape[0]:
            np.subtract.at(deg, nb, 1)
        scan = sorted(hit)
    return core, waves, products


def choose(family: str, graph: Graph, params: Mapping[str, Any]) -> Plan:
    """:func:`plan` for a loaded graph (a layer graph of a BGE has no terms: materialised)."""
    return plan(family, graph.meta, graph.n_edges, params)


def fall_back(why: str) -> dict[str, Any]:
    log.warning("the implicit path does not fit this graph (%s); reading the CSR instead", why)
    return {"path": "materialised", "why": f"implicit path failed: {why}"}
