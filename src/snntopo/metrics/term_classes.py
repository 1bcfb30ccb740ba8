"""Translation classes of an MGE's rows from its conv terms' geometry, without reading the edges.

Why: the 2-hop count (``neighbourhood``) counts one row per class of rows whose 2-hop sets are
translates of each other (:mod:`snntopo.metrics.translation`). Finding those classes from the
edges reads every entry four times (hashes and their exact check, at two levels): 1.8 s of
ResNet-20 ERK 0.6's 25M edges, 13 s of Conv-6's 173M, more than the counting it saves on
ResNet-20. A block pair held by a conv term (:mod:`snntopo.encode.stencil`) has its edges fixed by
the kernel and the geometry, so the classes follow from the geometry alone, per axis.

The argument. Node v = (c, y, x) of a block S. Along the row axis, the term T: S -> D joins row y
of S to the rows ``R_T(y) = {(oy, u): tap u of output row oy reaches y}`` of D (``axis_reach``:
stride, padding, dilation and any pooling windows folded into the conv); along the columns
likewise, and the channels through the kernel's nonzero taps for input channel c. So v's targets
through T are {(oc, oy, ox): (oy, u) in R_T(y), (ox, w) in R_T(x), K_T[oc, c, u, w] != 0}, and a
target u = (oc, oy, ox) reaches through a term T2 out of D the rows R_T2(oy). The *row key* of y
lists, for every term T out of S, its pairs (u, oy) and, for every term T2 out of D_T and every
such oy, the pairs (u2, oy2) of R_T2(oy); every row of a block X in it is written relative to the
smallest row of X in the key. Two rows y, y' with the same key have the same pairs with every row
of block X shifted by one amount d_X; with the column key likewise, nodes (c, y, x) and
(c, y', x') of S have 1-hop and 2-hop sets that are translates block by block (X shifted by
(d_X, e_X), an injective map), hence 2-hop rows of one size. That needs every edge out of v and
out of its targets to come from terms: a block is *clean* when its rows hold exactly the edges of
its terms (counted from the geometry, :func:`snntopo.encode.stencil.edge_count`; a block pair has
one term at most, checked by the encoder against the edges it wrote), and only the rows of a
clean block with terms whose every target block is clean are grouped. Every other row is a class
of its own (counted directly).

A class is (S, c, row key, column key): its size is the product of the two keys' row counts, its
representative the node at the first row and column of each. The neighbourhood family checks
sampled classes (representative against farthest member), and any graph whose metadata does not
fit (blocks that do not tile the nodes, terms that claim more edges than a block has) gets
``None``: the caller then uses the edge-reading classes or counts every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encode.graph import Graph, blocks_tile
from ..encode.stencil import axis_reach, edge_count


@dataclass(frozen=True)
class _Term:
    """One conv term: its metadata entry, source and target block indices, kernel size."""

    meta: dict[str, Any]
    src: int
    dst: int
    k: tuple[int, int]


def _terms(graph: Graph) -> tuple[list[_Term], np.ndarray]:
    """The terms with a kernel between two (C, H, W) blocks, and the edges they make per source
    block (from the geometry and the kernel's nonzero taps, not from the CSR)."""
    blocks = graph.blocks
    made = np.zeros(len(blocks), dtype=np.int64)
    terms = []
    for t in graph.meta.get("conv_terms") or []:
        kernel = graph.kernels.get(t.get("kernel", ""))
        if kernel is None or kernel.ndim != 4:
            continue  # its edges then count as the block's other edges: the block is not clean
        s, d = int(t["in_block"]), int(t["out_block"])
        if len(blocks[s].shape) != 3 or len(blocks[d].shape) != 3:
            continue
        made[s] += edge_count(kernel, t, blocks[s].shape, blocks[d].shape)
        terms.append(_Term(t, s, d, (int(kernel.shape[2]), int(kernel.shape[3]))))
    return terms, made


def _axis_keys(
    s: int, axis: int, out: dict[int, list[_Term]], shapes: list[tuple[int, ...]]
) -> np.ndarray:
    """Key id of every row (axis 0) or column (axis 1) of block ``s`` (module docstring)."""

    def side(b: int) -> int:
        return int(shapes[b][1 + axis])

    reach: dict[int, np.ndarray] = {}  # id(term) -> [n_in, n_out, k] bool

    def of(t: _Term) -> np.ndarray:
        if id(t) not in reach:
            r = axis_reach(t.meta, axis, side(t.src), side(t.dst), t.k[axis])
            reach[id(t)] = np.ascontiguousarray(r.transpose(2, 0, 1))
        return reach[id(t)]

    ids: dict[bytes, int] = {}
    keys = np.empty(side(s), dtype=np.int64)
    for y in range(side(s)):
        rows: list[tuple[int, np.ndarray]] = []  # (block, rows) in key order
        labels: list[np.ndarray] = []
        for i, t in enumerate(out[s]):
            oy, u = np.nonzero(of(t)[y])
            rows.append((t.dst, oy))
            labels.append(np.stack([np.full_like(u, i), u]).ravel())
            for j, t2 in enumerate(out.get(t.dst, [])):
                r2 = of(t2)[oy]  # [len(oy), n_out2, k2]
                at, oy2, u2 = np.nonzero(r2)
                rows.append((t.dst, oy[at]))
                rows.append((t2.dst, oy2))
                labels.append(
                    np.stack([np.full_like(u2, i), np.full_like(u2, j), u[at], u2]).ravel()
                )
        low: dict[int, int] = {}
        for b, r in rows:
            if r.shape[0]:
                low[b] = min(low.get(b, int(r.min())), int(r.min()))
        parts = [np.asarray([len(r) for _, r in rows], dtype=np.int64)]
        parts += [r - low.get(b, 0) for b, r in rows] + labels
        key = np.concatenate([p.astype(np.int64) for p in parts]).tobytes()
        keys[y] = ids.setdefault(key, len(ids))
    return keys


@dataclass(frozen=True)
class TermClasses:
    """Classes of the rows of I + A: ``reps`` and ``sizes`` per class, ``others`` a second
    member of each class (its last row and column: the farthest translate; the representative
    itself for a class of one), and ``grouped``, the rows in classes found from the terms."""

    reps: np.ndarray
    sizes: np.ndarray
    others: np.ndarray
    grouped: int


def term_classes(graph: Graph) -> TermClasses | None:
    """The classes of the rows of I + A of an MGE from its conv terms (module docstring); every
    row not grouped is its own class. None where the graph has no terms or its blocks do not
    tile the nodes in order."""
    blocks = graph.blocks
    if graph.n_nodes == 0 or not blocks_tile(blocks, graph.n_nodes):
        return None
    terms, made = _terms(graph)
    if not terms:
        return None
    ptr = graph.indptr
    held = np.array([int(ptr[b.stop]) - int(ptr[b.start]) for b in blocks], dtype=np.int64)
    if np.any(made > held):
        return None  # terms claim edges the block does not have: not this graph's terms
    clean = made == held  # every edge out of the block is a term's (or it has none)
    out: dict[int, list[_Term]] = {}
    for t in terms:
        out.setdefault(t.src, []).append(t)
    shapes = [tuple(int(v) for v in b.shape) for b in blocks]
    reps: list[np.ndarray] = []
    sizes: list[np.ndarray] = []
    others: list[np.ndarray] = []
    grouped = 0
    for s, b in enumerate(blocks):
        if not (s in out and clean[s] and all(clean[t.dst] for t in out[s])):
            ids = np.arange(b.start, b.stop, dtype=np.int64)
            reps.append(ids)
            others.append(ids)
            sizes.append(np.ones(b.size, dtype=np.int64))
            continue
        c, h, w = shapes[s]
        yf, yl, yn = _spread(_axis_keys(s, 0, out, shapes))
        xf, xl, xn = _spread(_axis_keys(s, 1, out, shapes))
        # one class per (channel, row key, column key): representative at the first row and
        # column of each key, size the product of their counts
        chan = b.start + np.arange(c, dtype=np.int64)[:, None] * (h * w)
        reps.append((chan + (yf[:, None] * w + xf[None, :]).ravel()[None, :]).ravel())
        others.append((chan + (yl[:, None] * w + xl[None, :]).ravel()[None, :]).ravel())
        size = (yn[:, None] * xn[None, :]).ravel()
        sizes.append(np.broadcast_to(size, (c, size.shape[0])).ravel())
        grouped += b.size
    return TermClasses(np.concatenate(reps), np.concatenate(sizes), np.concatenate(others), grouped)


def _spread(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key: its first index, its last index and how often it occurs."""
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    _, last_rev = np.unique(keys[::-1], return_index=True)
    last = keys.shape[0] - 1 - last_rev
    return first.astype(np.int64), last.astype(np.int64), counts.astype(np.int64)
