"""Classes of nodes whose 2-hop neighbourhoods are translates of each other (exact, verified).

Why: the 2-hop count (``neighbourhood``) is a symbolic sparse product whose cost is
sum_u indeg(u) * outdeg(u); on an MGE most rows are the same convolution stencil at another
position, so their 2-hop sets are translates and have the same size. Counting one representative
per class and multiplying by the class size gives the same total for a fraction of the work
(Conv-6's MGE: ~7x fewer steps).

Coordinates: node ``v`` of a block of shape (C, H, W) is (block, c, y, x) in C order; any other
shape is read as (size, 1, 1). The *relative signature* of an entry v -> w is
(block(w) - block(v), c(w), y(w) H(v) - y(v) H(w), x(w) W(v) - x(v) W(w)); it is unchanged when v
and w move by strides that keep the blocks' resolution ratio (v by t, w by t H(w) / H(v)).

Classes, level 1: rows of ``B`` (the closed structure I + A) with the same block, degree and
sequence of relative signatures. Two such rows u, u' have out-sets that are the same set
translated, block by block, by (u' - u) H(w) / H(u). Level 2: rows with the same block, degree and
sequence of (relative position of u, level-1 class of u) over their entries u. For v, v' in one
level-2 class every intermediate u' of v' is u translated by (v' - v) H(u) / H(v) with the same
level-1 class, so every target of every 2-hop path moves by (v' - v) H(w) / H(v) -- one shift per
block, an injective map -- and |row v of B^2| = |row v' of B^2|.

Exactness: rows are grouped by a 64-bit hash of their signature sequence, then every member is
compared entry by entry with its class representative (rows are sorted by target id, and the
translation keeps that order); a member that differs (a hash collision, or a row whose targets
are not in translated order) becomes a class of its own. Signatures are packed into int64
exactly; when they do not fit, or the blocks do not tile the nodes, every node is its own class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..encode.graph import Graph, blocks_tile
from .algorithms import row_chunks

#: entries per chunk of the signature passes: small enough that the temporaries stay in cache
CHUNK = 1 << 15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: codes(src rows, entry positions) -> int64 arrays that must agree entry by entry
Codes = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


def _mix(x: np.ndarray) -> np.ndarray:
    """A cheap 64-bit mix (multiply, xor-shift, multiply) that spreads nearby codes apart; its
    collisions only cost merging (members are verified exactly)."""
    z = x.astype(np.uint64) * _M1
    z ^= z >> np.uint64(29)
    z *= _M2
    return z


@dataclass
class _Codes:
    """Per node: ``full`` codes (block, channel, position) and ``pos`` codes (block, position).

    Positions are on the finest common grid (y * L / H with L the lcm of the blocks' heights, the
    same for x), and the fields are packed with doubled radices, so that ``full[w] - pos[v]`` is
    an injective function of (block(w) - block(v), channel(w), y-offset, x-offset) -- balanced
    digits -- and one gather plus one subtraction gives the relative signature of an entry.
    Within a class key (the block of v) and one block difference, the offset on the fine grid
    determines the relative signature of the module docstring and back.
    """

    full: np.ndarray
    pos: np.ndarray
    blk: np.ndarray


def _codes(graph: Graph) -> _Codes | None:
    n = graph.n_nodes
    blocks = sorted(graph.blocks, key=lambda b: b.start)
    if not blocks_tile(blocks, n):
        return None
    dims = []
    for b in blocks:
        shape = tuple(int(s) for s in b.shape)
        ok = len(shape) == 3 and int(np.prod(shape)) == b.size
        dims.append(shape if ok else (b.size, 1, 1))
    hh = np.array([d[1] for d in dims], dtype=np.int64)
    ww = np.array([d[2] for d in dims], dtype=np.int64)
    ly, lx = int(np.lcm.reduce(hh)), int(np.lcm.reduce(ww))
    rc = max(int(d[0]) for d in dims)
    ry, rx = 2 * ly, 2 * lx  # doubled: balanced digits of the differences stay unique
    if float(2 * len(blocks)) * rc * ry * rx >= 2.0**62:
        return None
    sizes = np.array([b.size for b in blocks], dtype=np.int64)
    blk = np.repeat(np.arange(len(blocks), dtype=np.int64), sizes)
    starts = np.array([b.start for b in blocks], dtype=np.int64)
    local = np.arange(n, dtype=np.int64) - starts[blk]
    h, w = hh[blk], ww[blk]
    ch = local // (h * w)
    rem = local - ch * (h * w)
    y = rem // w
    x = rem - y * w
    yn, xn = y * (ly // h), x * (lx // w)
    pos = ((blk * rc) * ry + yn) * rx + xn
    full = pos + ch * (ry * rx)
    return _Codes(full, pos, blk)


def _entries(bp: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Source row and position of every entry of rows [lo, hi)."""
    rows = np.repeat(np.arange(lo, hi, dtype=np.int64), np.diff(bp[lo : hi + 1]))
    return rows, np.arange(int(bp[lo]), int(bp[hi]), dtype=np.int64)


def _classes(
    bp: np.ndarray,
    key_of: np.ndarray,
    codes: Codes,
    chunk: int,
    release: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Class id per row: same ``key_of`` value, same degree and the same sequence of ``codes``.

    ``codes(src, pos)`` returns, for entries at positions ``pos`` of rows ``src``, a tuple of
    int64 arrays that must all be equal entry by entry; their hash groups the rows first.
    ``release(lo, hi)``, where given, is called once rows [lo, hi) have been read in a pass (a
    mapped graph's pages are then dropped: each pass holds one chunk of them, issue 29).
    """
    n = bp.shape[0] - 1
    deg = np.diff(bp)
    h = np.zeros(n, dtype=np.uint64)
    for lo, hi in row_chunks(bp, chunk):
        if bp[hi] == bp[lo]:
            continue
        rows, pos = _entries(bp, lo, hi)
        acc = np.zeros(pos.shape[0], dtype=np.uint64)
        for i, part in enumerate(codes(rows, pos)):
            acc ^= _mix(part + (i + 1) * 0x5851F42D)
        acc = _mix(acc)
        nz = np.flatnonzero(deg[lo:hi] > 0)
        h[lo + nz] = np.add.reduceat(acc, (bp[lo:hi][nz] - bp[lo]).astype(np.int64))
        if release is not None:
            release(lo, hi)
    order = np.lexsort((h, deg, key_of))
    ks = np.stack([key_of[order], deg[order], h[order].view(np.int64)])
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(ks[:, 1:] != ks[:, :-1], axis=0)
    cls_sorted = np.cumsum(new) - 1
    cls = np.empty(n, dtype=np.int64)
    cls[order] = cls_sorted
    first = order[new]  # the representative of class k (lowest id: lexsort is stable)
    rep = first[cls]
    bad = np.zeros(n, dtype=bool)
    for lo, hi in row_chunks(bp, chunk):
        if bp[hi] == bp[lo]:
            continue
        rows, pos = _entries(bp, lo, hi)
        rrow = rep[rows]
        rpos = bp[rrow] + (pos - bp[rows])
        mism = np.zeros(pos.shape[0], dtype=bool)
        for own, other in zip(codes(rows, pos), codes(rrow, rpos), strict=True):
            mism |= own != other
        bad[rows[mism]] = True
        if release is not None:
            release(lo, hi)
    if bad.any():  # collisions (or untranslated order): each such row is its own class
        idx = np.flatnonzero(bad)
        cls[idx] = cls_sorted[-1] + 1 + np.arange(idx.shape[0])
        _, cls = np.unique(cls, return_inverse=True)
    return cls.astype(np.int64)


def translation_classes(
    b: sp.csr_array | Any, graph: Graph, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray] | None:
    """(representative rows, class sizes) of the level-2 classes of ``b`` (= I + A of ``graph``),
    or None when the graph's blocks give no usable coordinates (then count every row).

    ``b`` is a CSR matrix, or any object with ``shape``, an ``indptr`` and a ``targets(src, pos)``
    method giving the columns of the entries at offsets ``pos`` of rows ``src`` (the implicit
    I + A of :class:`snntopo.metrics.neighbourhood.ClosedRows`: its entries are read chunk by
    chunk from the graph's own arrays, never copied as a whole).
    """
    n = b.shape[0]
    if n == 0 or n != graph.n_nodes:
        return None
    codes = _codes(graph)
    if codes is None:
        return None
    full, pos_code = codes.full, codes.pos
    bp = b.indptr.astype(np.int64, copy=False)
    targets = getattr(b, "targets", None)
    if targets is None:
        bj = b.indices

        def targets(src: np.ndarray, pos: np.ndarray) -> np.ndarray:
            return bj[pos]

    def codes1(src: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, ...]:
        return (full[targets(src, pos)] - pos_code[src],)

    release = getattr(b, "release", None)
    c1 = _classes(bp, codes.blk, codes1, chunk, release)

    def codes2(src: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, ...]:
        dst = targets(src, pos)
        return pos_code[dst] - pos_code[src], c1[dst]

    c2 = _classes(bp, codes.blk, codes2, chunk, release)
    _, reps, counts = np.unique(c2, return_index=True, return_counts=True)
    return reps.astype(np.int64), counts.astype(np.int64)
