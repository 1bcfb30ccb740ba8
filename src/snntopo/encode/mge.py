"""Unrolled, input-aware multipartite graph encoding (MGE), the paper's contribution.

One node per scalar activation: the input pixels (block ``input``, C x H x W) and the output of
every main-path conv/linear layer (one block each, in spec order). Node ids are contiguous per
block and channel-major inside a block: ``id = block_start + c*H*W + y*W + x``.

Edges (``exact`` mode, the default):

- conv weight ``W[o, i, u, v] != 0`` gives, for every output position ``(oy, ox)`` whose tap lands on
  a real input position ``y = oy*s - p + u*d`` (same for x), an edge ``in(i, y, x) -> out(o, oy, ox)``
  of weight ``|W[o, i, u, v]|`` (``p`` is the top/left padding, ``padding``; an asymmetric conv's
  bottom/right side, ``padding_end``, only shows in its output size). Zero padding creates no nodes
  and no edges. Groups are honoured.
- pooling windows between a layer's input block and the layer fold into the layer: every edge from
  a pooled position q is replicated to each pre-pool position of q's window (same weight; max and
  avg pooling have the same structure). With overlapping, adaptive or broadcast (gate) windows a
  position can reach a target through several windows; the edge then carries the sum of the |w|.
- a layer with ``inputs`` (channel concatenation, gating, union; see ``docs/architecture.md``)
  takes each row range of its input from the term's block through the term's windows.
- linear weight ``W[o, f] != 0`` gives ``in(f) -> out(o)``; after a flatten ``f`` is the channel-major
  index of the (pooled) feature map, which is the block's node order.
- a conv shortcut (role ``shortcut``) connects its input block to the main block it is added to.
  Identity shortcuts add no edges unless ``identity_edges=True`` (then weight-1 edges c,y,x -> c,y,x).

``reference`` mode reproduces the node numbering and counts of the paper's code (eliacunegatti/
mge-snn, read for facts only) so that node counts equal the paper's (CONV-6 233,366; ResNet-20
191,894; ResNet-32 306,582; WRN-28-2 478,614 for 10 classes). It differs from ``exact`` in exactly:

1. The first layer's input block is the *zero-padded* input, ``C x (H+2p) x (W+2p)`` (3 x 34 x 34 =
   3468 nodes for CIFAR), and the padding nodes carry edges: every tap of every output position
   makes an edge (the first conv is unrolled with padding 0 on the padded grid).
2. Stride-s convs whose padded input does not tile (``(H + 2p - k) % s != 0``, e.g. 3x3/s2/p1 on
   32x32) are unrolled on a truncated padded grid of side ``a = (H_out-1)*s + k`` (33), whose real
   part is taken to be ``R = a - 2p`` (31) instead of H: only input positions ``y, x < R`` keep their
   edges, they are numbered ``c*R*R + y*R + x`` inside the input block (so they land on the wrong
   activations), and the layer's targets are shifted back by ``C_in*(H*W - R*R)`` ids (the first of
   them fall into the tail of the input block; the tail of the true output block gets no in-edges).
   This is the misalignment of spec C3 / H1 (2000 spurious sources in ResNet-20/32, 4000 in WRN).
3. Identity shortcut edges are never added (option refused).

Not reproduced: the reference stores weights as float16 (we keep float32 |w|), and its graph is an
igraph multigraph in insertion order (ours is CSR with each row sorted by target). Shortcut convs,
pooling folds and linear layers are built with the correct geometry in both modes, as the reference
does for the bundled models.

Construction is vectorised: per layer, the nonzero weights are broadcast against the output
positions in chunks of bounded size (int32 index arithmetic), the validity mask filters taps that
fall on padding, and the (source-local, target-global) pairs go through scipy's linear-time
COO->CSR conversion. The enumeration order is target-major with kernel taps reversed, so every CSR
row comes out sorted without any argsort. Pooling is a CSR row gather.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError
from .common import base_meta, layer_weight
from .graph import Block, Graph

MODES = ("exact", "reference")
_CHUNK = 1 << 23  # candidate (weight x output position) pairs per vectorised step


def _prod(shape: Any) -> int:
    return int(np.prod(shape, dtype=np.int64))


@dataclass
class _LayerPlan:
    """One layer ready to unroll: its masked weight, source geometry and first target id."""

    lay: dict[str, Any]
    w: np.ndarray
    geo: dict[str, Any] | None  # None: a linear layer
    dst_base: int


@dataclass
class _Plan:
    """Everything about an MGE but its edges: node layout, layers, identity shortcuts, the
    conv terms and kernels, and the per-layer metadata whose ``edges`` the builder fills."""

    spec: dict[str, Any]
    weights: Mapping[str, np.ndarray]
    mode: str
    identity_edges: bool
    names: list[str]
    shapes: dict[str, list[int]]
    sizes: list[int]
    starts: np.ndarray
    index: dict[str, int]
    layers: list[_LayerPlan]
    layer_meta: list[dict[str, Any]]
    identities: list[tuple[int, list[dict[str, Any]]]]  # (target block, terms)
    checks: dict[tuple[int, int], _TermCheck]  # (layer, input term or -1) -> its term check
    writers: dict[tuple[int, int], int]
    terms: list[dict[str, Any]] = field(default_factory=list)
    kernels: dict[str, np.ndarray] = field(default_factory=dict)

    def check(self, key: tuple[int, int], rows: sp.csr_array, lo: int) -> None:
        """Feed rows ``[lo, lo + len)`` of a layer's edges into that pair to its term check."""
        c = self.checks.get(key)
        if c is not None:
            c.add(rows, lo)

    def finish_terms(self) -> None:
        """The conv terms and kernels, from the checks once every edge was made (filled in
        place: :func:`write` hands ``kernels`` to the file writer before the rows exist)."""
        passed = [(c.lay, c.w) for c in self.checks.values() if c.passed()]
        terms, kernels = _operator_terms(passed, self.writers, self.index)
        self.terms[:] = terms
        self.kernels.clear()
        self.kernels.update(kernels)

    @property
    def n_nodes(self) -> int:
        return int(self.starts[-1])

    def blocks(self) -> list[Block]:
        return [
            Block(n, int(self.starts[i]), int(self.starts[i + 1]), tuple(self.shapes[n]))
            for i, n in enumerate(self.names)
        ]

    def meta(self) -> dict[str, Any]:
        """The graph's metadata; made once the builder has counted every layer's edges (the
        provenance block copies them)."""
        meta = base_meta(
            "mge",
            self.spec,
            self.weights,
            mode=self.mode,
            identity_edges=bool(self.identity_edges),
            mge_layers=self.layer_meta,
        )
        if self.terms:
            meta["conv_terms"] = self.terms
        return meta

    def identity_csr(self, block: int) -> sp.csr_array:
        """Weight-1 edges from each position to the same position of ``block`` (rows: its
        positions plus the spare row)."""
        n = self.sizes[block]
        rows = np.arange(n + 2, dtype=np.int64)
        rows[-1] = n
        cols = (np.arange(n, dtype=np.int64) + self.starts[block]).astype(np.int32)
        return sp.csr_array((np.ones(n, np.float32), cols, rows), shape=(n + 1, self.n_nodes))


def _plan(
    spec: dict[str, Any], weights: Mapping[str, np.ndarray], mode: str, identity_edges: bool
) -> _Plan:
    if mode not in MODES:
        raise ConfigError(f"unknown MGE mode {mode!r}; allowed: {', '.join(MODES)}")
    if mode == "reference" and identity_edges:
        raise ConfigError("identity_edges is not available in reference mode (the paper has none)")
    layers = spec["layers"]
    shapes = {b["name"]: list(b["shape"]) for b in spec["blocks"]}
    names = [b["name"] for b in spec["blocks"]]

    padded_input = False  # reference mode: the first conv keeps its zero-padded input grid
    if mode == "reference":
        first = layers[0]
        if first["kind"] == "conv" and first["in_block"] == "input" and not first["pools"]:
            padded_input = True
            shapes["input"] = [first["in_shape"][0], *_padded_grid(first)]
        others = [lay for lay in layers[1:] if lay["in_block"] == "input"]
        if others:
            raise ConfigError("reference mode: only the first layer may read the input block")
        uneven = [lay["name"] for lay in layers if "padding_end" in lay]
        if uneven:
            raise ConfigError(
                f"reference mode reproduces the paper code's symmetric padding; layer "
                f"{uneven[0]!r} pads one side more than the other (use mode exact)"
            )
        several = [lay["name"] for lay in layers if "inputs" in lay]
        if several:
            raise ConfigError(
                f"reference mode reproduces the paper code's plain conv stacks; layer "
                f"{several[0]!r} reads several tensors (use mode exact)"
            )

    sizes = [_prod(shapes[n]) for n in names]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_nodes = int(starts[-1])
    if n_nodes >= 2**31:
        raise ConfigError(f"MGE with {n_nodes} nodes exceeds int32 node ids")
    index = {n: i for i, n in enumerate(names)}

    plans, layer_meta = [], []
    writers: dict[tuple[int, int], int] = {}  # layers (and shortcuts) adding edges to a block pair
    checks: dict[tuple[int, int], _TermCheck] = {}
    for k, lay in enumerate(layers):
        w = layer_weight(weights, lay)
        dst_base = int(starts[index[lay["out_block"]]])
        geo = None
        if lay["kind"] == "conv":
            geo = _conv_geometry(lay, mode, is_first=lay is layers[0] and padded_input)
            dst_base -= geo["dst_shift"]
            if mode == "exact":
                for j, term in enumerate(lay.get("inputs") or [None]):
                    plain = lay if term is None else _whole_input(lay, term)
                    if plain is not None:
                        checks[(k, j if term is not None else -1)] = _TermCheck(
                            plain, w, dst_base, shapes
                        )
        plans.append(_LayerPlan(lay, w, geo, dst_base))
        for term in lay.get("inputs") or [{"block": lay["in_block"]}]:
            pair = (index[term["block"]], index[lay["out_block"]])
            writers[pair] = writers.get(pair, 0) + 1
        layer_meta.append(
            {
                "name": lay["name"],
                "param": lay["param"],
                "kind": lay["kind"],
                "role": lay["role"],
                "in_block": index[lay["in_block"]],
                "out_block": index[lay["out_block"]],
                "edges": 0,  # counted by the builder
                "numel": int(w.size),
                "nnz": int(np.count_nonzero(w)),
            }
        )
    identities = []
    if identity_edges:
        for sc in spec.get("identity_shortcuts", []):
            f, t = sc["from_block"], sc["to_block"]
            terms = sc.get("inputs") or [{"block": f, "pools": [], "rows": [0, sizes[index[t]]]}]
            for term in terms:
                pair = (index[term["block"]], index[t])
                writers[pair] = writers.get(pair, 0) + 1
            identities.append((index[t], terms))
    return _Plan(
        spec=spec,
        weights=weights,
        mode=mode,
        identity_edges=identity_edges,
        names=names,
        shapes=shapes,
        sizes=sizes,
        starts=starts,
        index=index,
        layers=plans,
        layer_meta=layer_meta,
        identities=identities,
        checks=checks,
        writers=writers,
    )


def _layer_csr(lp: _LayerPlan, n_nodes: int, keep: np.ndarray | None = None) -> sp.csr_array:
    """A layer's edges as CSR over the rows of its (pooled) input layout; ``keep``: only the
    input channels (conv) or features (linear) where it is True."""
    if lp.geo is not None:
        return _conv_csr(lp.w, lp.lay, lp.geo, lp.dst_base, n_nodes, keep)
    return _linear_csr(lp.w, lp.dst_base, n_nodes, keep)


def build(
    spec: dict[str, Any],
    weights: Mapping[str, np.ndarray],
    mode: str = "exact",
    identity_edges: bool = False,
) -> Graph:
    """Build the MGE of the network described by ``spec`` with masked ``weights`` (see module doc)
    in memory. :func:`write` writes the same graph to a file block by block instead."""
    plan = _plan(spec, weights, mode, identity_edges)
    names, sizes, shapes, index = plan.names, plan.sizes, plan.shapes, plan.index
    n_nodes = plan.n_nodes

    # One CSR (rows = nodes of a block, columns = global node ids) per consumer of each block.
    parts: dict[str, list[sp.csr_array]] = {n: [] for n in names}
    for k, (lp, entry) in enumerate(zip(plan.layers, plan.layer_meta, strict=True)):
        lay = lp.lay
        a = _layer_csr(lp, n_nodes)
        if "inputs" in lay:  # cat / gating / union of tensors: each term feeds its own block
            n_edges = 0
            for j, term in enumerate(lay["inputs"]):
                t = _term_rows(a, term, sizes[index[term["block"]]], shapes[term["block"]])
                n_edges += int(t.nnz)
                parts[term["block"]].append(t)
                plan.check((k, j), t, 0)
        else:
            a = _unpool(a, lay["pools"], sizes[index[lay["in_block"]]])
            n_edges = int(a.nnz)
            parts[lay["in_block"]].append(a)
            plan.check((k, -1), a, 0)
        entry["edges"] = n_edges
    for target, terms in plan.identities:
        a = plan.identity_csr(target)
        for term in terms:
            parts[term["block"]].append(
                _term_rows(a, term, sizes[index[term["block"]]], shapes[term["block"]])
            )

    indptr, indices, data = _assemble(parts, names, sizes, n_nodes)
    plan.finish_terms()
    return Graph(
        indptr=indptr,
        indices=indices,
        weights=data,
        blocks=plan.blocks(),
        meta=plan.meta(),
        kernels=plan.kernels,
    )


def _operator_terms(
    convs: list[tuple[dict[str, Any], np.ndarray]],
    writers: dict[tuple[int, int], int],
    index: dict[str, int],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The convs whose edges are, alone, all edges between their two blocks: those block pairs
    of the adjacency are the conv itself (``|W|`` applied as a cross-correlation, after the
    pooling windows folded into it), which the spectral metrics apply as a dense convolution
    instead of reading every edge (:mod:`snntopo.metrics.conv_operator`). ``convs`` holds only
    the convs whose term :class:`_TermCheck` checked against the edges just built; a pair that
    another layer also writes (a shortcut beside it) stays in the CSR alone."""
    terms, kernels = [], {}
    for lay, w in convs:
        pair = (index[lay["in_block"]], index[lay["out_block"]])
        if writers.get(pair) != 1:
            continue
        name = f"kernel_{len(terms)}"
        kernels[name] = np.abs(w).astype(np.float32)
        terms.append(
            {
                "layer": lay["name"],
                "in_block": pair[0],
                "out_block": pair[1],
                "kernel": name,
                **_term_geometry(lay),
            }
        )
    return terms, kernels


def _whole_input(lay: dict[str, Any], term: dict[str, Any]) -> dict[str, Any] | None:
    """A conv with several inputs (gating, union) as a plain layer reading one of them, when that
    input term is the conv's whole input (all rows, from channel 0): e.g. the tensor an SE gate
    multiplies. Its pair with the conv's block is then the conv's stencil (checked by
    :class:`_TermCheck` like any other); channel slices of a concatenation are not."""
    if lay["kind"] != "conv" or int(term.get("from_channel", 0)):
        return None
    if list(term["rows"]) != [0, _prod(lay["in_shape"])]:
        return None
    plain = {k: v for k, v in lay.items() if k != "inputs"}
    plain["in_block"], plain["pools"] = term["block"], list(term["pools"])
    return plain


def _term_geometry(lay: dict[str, Any]) -> dict[str, Any]:
    """A conv term's geometry fields (the graph file's ``conv_terms``); ``groups``,
    ``padding_end`` and ``pools`` only where they are not the plain default."""
    geo: dict[str, Any] = {
        "stride": [int(v) for v in lay["stride"]],
        "padding": [int(v) for v in lay["padding"]],
        "dilation": [int(v) for v in lay["dilation"]],
    }
    if int(lay.get("groups", 1)) != 1:
        geo["groups"] = int(lay["groups"])
    if "padding_end" in lay:
        geo["padding_end"] = [int(v) for v in lay["padding_end"]]
    if lay["pools"]:
        geo["pools"] = [
            {
                k: [int(v) for v in p[k]]
                for k in ("kernel", "stride", "padding", "in_shape", "out_shape")
            }
            for p in lay["pools"]
        ]
    return geo


#: relative difference, entry by entry, tolerated between a term's product and its edges' in
#: :class:`_TermCheck`: an edge reached through several pooling windows is stored as a float32
#: sum (one rounding, 6e-8, per window), the term sums in float64
_TERM_RTOL = 1e-5


class _TermCheck:
    """Whether one conv's edges into one block pair are exactly its stencil term: the same
    number of edges as the term's geometry makes (:func:`snntopo.encode.stencil.edge_count`,
    counted from the kernel, not from the edges), every edge inside the pair, and the same
    products with a seeded random vector both ways (``A^T x`` and ``A x``, within
    :data:`_TERM_RTOL`). The builder feeds it the pair's rows as it makes them (:meth:`add`: all
    at once in :func:`build`, row block by row block in :func:`write`), so no edge is kept for
    it; the operator is made only at the end (:meth:`passed`). Adaptive pooling and
    concatenated inputs are no stencil."""

    def __init__(
        self, lay: dict[str, Any], w: np.ndarray, dst_base: int, shapes: dict[str, Any]
    ) -> None:
        self.lay, self.w = lay, w
        self.src_shape, self.dst_shape = shapes[lay["in_block"]], shapes[lay["out_block"]]
        self.n_src, self.n_dst = _prod(self.src_shape), _prod(self.dst_shape)
        self.offset = dst_base - self.n_src  # global target id -> index in the pair's vectors
        self.ok = self._stencil_like()
        self.nnz = 0
        if self.ok:
            self.x = np.random.default_rng(0).uniform(0.5, 1.5, size=self.n_src + self.n_dst)
            self.want = np.zeros_like(self.x)

    def _stencil_like(self) -> bool:
        lay = self.lay
        if lay["kind"] != "conv" or "inputs" in lay or any(p.get("adaptive") for p in lay["pools"]):
            return False
        grid = list(self.src_shape)  # the pools must chain from the block to the conv's input
        for p in lay["pools"]:
            if list(p["in_shape"]) != grid:
                return False
            grid = list(p["out_shape"])
        return grid == list(lay["in_shape"]) and list(self.dst_shape) == list(lay["out_shape"])

    def add(self, a: sp.csr_array, lo: int) -> None:
        """Rows ``[lo, lo + a.shape[0])`` of the pair's source block (columns: global ids)."""
        from scipy.sparse._sparsetools import csc_matvec, csr_matvec

        if not self.ok:
            return
        n, ptr = self.n_src + self.n_dst, a.indptr
        rows = a.shape[0]
        self.nnz += int(a.nnz)
        step = max(1, (_CHUNK >> 2) // max(1, a.nnz // max(1, rows) + 1))
        for r0 in range(0, rows, step):  # row chunks: bounded temporaries, like the matvecs
            r1 = min(rows, r0 + step)
            s, e = int(ptr[r0]), int(ptr[r1])
            if e == s:
                continue
            local = (ptr[r0 : r1 + 1] - s).astype(np.int32)  # n_nodes < 2**31 (checked)
            ind = a.indices[s:e] - np.int32(self.offset)
            if int(ind.min()) < self.n_src or int(ind.max()) >= n:
                self.ok = False  # an edge outside the pair (and the C kernels check no bounds)
                return
            data = a.data[s:e].astype(np.float64)
            g0, g1 = lo + r0, lo + r1
            csr_matvec(r1 - r0, n, local, ind, data, self.x, self.want[g0:g1])
            csc_matvec(n, r1 - r0, local, ind, data, self.x[g0:g1], self.want)

    def passed(self) -> bool:
        from .stencil import StencilTerm

        if not self.ok:
            return False
        n_src, n_dst = self.n_src, self.n_dst
        got = np.zeros_like(self.x)
        try:
            op = StencilTerm(
                _term_geometry(self.lay),
                np.abs(self.w).astype(np.float32),
                Block("src", 0, n_src, tuple(self.src_shape)),
                Block("dst", n_src, n_src + n_dst, tuple(self.dst_shape)),
            )
            if op.n_edges != self.nnz:  # counted from the kernel and geometry
                return False
            op.forward(self.x, got)
            op.backward(self.x, got)
        except (ValueError, IndexError):  # a geometry the operator cannot apply: edges stay
            return False
        return bool(np.all(np.abs(got - self.want) <= _TERM_RTOL * self.want))


def _stencil_pair(
    lay: dict[str, Any], w: np.ndarray, a: sp.csr_array, dst_base: int, shapes: dict[str, Any]
) -> bool:
    """:class:`_TermCheck` on a pair's edges held whole (``a``: the source block's rows)."""
    check = _TermCheck(lay, w, dst_base, shapes)
    check.add(a, 0)
    return check.passed()


def _reference_side(h: int, k: int, s: int, p: int, out: int) -> int:
    """Reference mode: the side of the padded grid the paper code unrolls a conv on. When the
    padded side does not tile with the stride it is truncated to the last window's end, which is
    the source of the stride-2 misalignment (module docstring)."""
    padded = h + 2 * p
    return (out - 1) * s + k if (padded - k) % s else padded


def _padded_grid(lay: dict[str, Any]) -> list[int]:
    """Both sides of a conv's reference-mode grid."""
    return [
        _reference_side(
            lay["in_shape"][1 + d],
            lay["kernel"][d],
            lay["stride"][d],
            lay["padding"][d],
            lay["out_shape"][1 + d],
        )
        for d in range(2)
    ]


def _conv_geometry(lay: dict[str, Any], mode: str, is_first: bool) -> dict[str, Any]:
    """Source layout of a conv: grid side, offset of real coordinates in it, target shift.

    exact: the real grid. reference: the padded grid for the first conv, the truncated grid for
    non-tiling strided main convs (see module docstring); shortcut convs keep the real grid.
    """
    c_in, h, w = lay["in_shape"]
    grid, off, shift = [h, w], [0, 0], 0
    if mode == "reference":
        if is_first:
            grid = _padded_grid(lay)
            off = list(lay["padding"])
        elif lay["role"] == "main":
            real = [a - 2 * p for a, p in zip(_padded_grid(lay), lay["padding"], strict=True)]
            if real != [h, w]:
                grid = real
                shift = c_in * (h * w - real[0] * real[1])
    return {"grid": grid, "off": off, "dst_shift": shift}


def _conv_csr(
    w: np.ndarray,
    lay: dict[str, Any],
    geo: dict[str, Any],
    dst_base: int,
    n_nodes: int,
    keep: np.ndarray | None = None,
) -> sp.csr_array:
    """Edges of one conv as CSR: rows = source positions of its (pooled) input grid layout;
    ``keep`` (bool per input channel): only the rows of those channels (the others empty)."""
    c_out, c_in_g, kh, kw = w.shape
    c_in = lay["in_shape"][0]
    _, ho, wo = lay["out_shape"]
    (sh, sw), (ph, pw), (dh, dw) = lay["stride"], lay["padding"], lay["dilation"]
    groups = int(lay.get("groups", 1))
    gh, gw = geo["grid"]
    oy0, ox0 = geo["off"]
    n_rows = c_in * gh * gw

    # Taps reversed so that, per source row, targets come out in increasing order (module doc).
    wr = w[:, :, ::-1, ::-1]
    o, i, ur, vr = np.nonzero(wr)
    vals = np.abs(wr[o, i, ur, vr]).astype(np.float32)
    u = (kh - 1 - ur).astype(np.int32)
    v = (kw - 1 - vr).astype(np.int32)
    del ur, vr
    ci = (o // (c_out // groups)) * c_in_g + i if groups > 1 else i
    ci = ci.astype(np.int32)
    o = o.astype(np.int32)
    del i
    if keep is not None:  # a row block of the streaming builder: its input channels only
        sel = keep[ci]
        o, ci, u, v, vals = o[sel], ci[sel], u[sel], v[sel], vals[sel]

    oy = np.arange(ho, dtype=np.int32) * sh - ph + oy0  # grid row of tap 0 per output row
    ox = np.arange(wo, dtype=np.int32) * sw - pw + ox0
    tgt_sp = (np.arange(ho, dtype=np.int32)[:, None] * wo + np.arange(wo, dtype=np.int32)).ravel()

    srcs, dsts, ws = [], [], []
    step = max(1, _CHUNK // max(1, ho * wo))
    for lo in range(0, o.shape[0], step):  # chunks bound memory; not a loop over taps or edges
        sl = slice(lo, lo + step)
        y = oy[None, :] + (u[sl] * dh)[:, None]  # (n, ho)
        x = ox[None, :] + (v[sl] * dw)[:, None]  # (n, wo)
        vy = (y >= 0) & (y < gh)
        vx = (x >= 0) & (x < gw)
        mask = (vy[:, :, None] & vx[:, None, :]).reshape(y.shape[0], -1)
        src = (ci[sl] * (gh * gw))[:, None, None] + (y * gw)[:, :, None] + x[:, None, :]
        srcs.append(src.reshape(mask.shape)[mask])
        dst = (o[sl] * (ho * wo) + dst_base)[:, None] + tgt_sp[None, :]
        dsts.append(dst[mask])
        ws.append(np.broadcast_to(vals[sl, None], mask.shape)[mask])
        del y, x, vy, vx, mask, src, dst
    return _csr_from_sorted_pairs(srcs, dsts, ws, n_rows + 1, n_nodes)


def _linear_csr(
    w: np.ndarray, dst_base: int, n_nodes: int, keep: np.ndarray | None = None
) -> sp.csr_array:
    o, f = np.nonzero(w)  # C order: by target, so rows come out sorted
    if keep is not None:  # only the features where ``keep`` is True
        sel = keep[f]
        o, f = o[sel], f[sel]
    vals = np.abs(w[o, f]).astype(np.float32)
    dst = (o + dst_base).astype(np.int32)
    return _csr_from_sorted_pairs([f.astype(np.int32)], [dst], [vals], w.shape[1] + 1, n_nodes)


def _csr_from_sorted_pairs(
    srcs: list[np.ndarray], dsts: list[np.ndarray], ws: list[np.ndarray], n_rows: int, n_cols: int
) -> sp.csr_array:
    """Bucket (src, dst, w) triples into CSR by source; the last row is a spare empty row.

    An emptied layer (every weight pruned) contributes no chunk at all: that is an empty CSR.
    """
    if not srcs:
        srcs, dsts = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
        ws = [np.zeros(0, np.float32)]
    src = np.concatenate(srcs) if len(srcs) != 1 else srcs[0]
    srcs.clear()
    dst = np.concatenate(dsts) if len(dsts) != 1 else dsts[0]
    dsts.clear()
    val = np.concatenate(ws) if len(ws) != 1 else ws[0]
    ws.clear()
    # scipy's COO->CSR is a linear-time stable bucket pass (C++); with the target-major
    # enumeration each row is already sorted, so the canonical-format check finds nothing to do.
    coo = sp.coo_array((val, (src, dst)), shape=(n_rows, n_cols))
    del src, dst, val
    a = coo.tocsr()
    del coo
    a.indices = a.indices.astype(np.int32, copy=False)
    return a


def _pool_map(pool: dict[str, Any]) -> np.ndarray:
    """For each pre-pool position (channel-major), the pooled position whose window holds it (-1:
    in no window). Requires non-overlapping windows."""
    c, h, w = pool["in_shape"]
    _, oh, ow = pool["out_shape"]
    (kh, kw), (sh, sw), (ph, pw) = pool["kernel"], pool["stride"], pool["padding"]
    if kh > sh or kw > sw:
        raise ConfigError(
            f"pooling window {pool['kernel']} with stride {pool['stride']} overlaps; "
            "the MGE supports non-overlapping pooling only"
        )
    qy = (np.arange(h) + ph) // sh
    oky = ((np.arange(h) + ph) - qy * sh < kh) & (qy < oh)
    qx = (np.arange(w) + pw) // sw
    okx = ((np.arange(w) + pw) - qx * sw < kw) & (qx < ow)
    q = (
        np.arange(c)[:, None, None] * (oh * ow) + (qy * ow)[None, :, None] + qx[None, None, :]
    ).astype(np.int64)
    ok = np.broadcast_to(oky[None, :, None] & okx[None, None, :], q.shape)
    return np.where(ok, q, -1).ravel()


def _row_range(a: sp.csr_array, lo: int, hi: int) -> sp.csr_array:
    """Rows ``[lo, hi)`` of ``a`` plus one spare empty row (the layout :func:`_unpool` expects)."""
    ptr = a.indptr[lo : hi + 1]
    indptr = np.concatenate([ptr - ptr[0], ptr[-1:] - ptr[0]])
    s, e = int(ptr[0]), int(ptr[-1])
    return sp.csr_array(
        (a.data[s:e], a.indices[s:e], indptr), shape=(hi - lo + 1, a.shape[1]), copy=False
    )


def _simple_window(pool: dict[str, Any]) -> bool:
    return not pool.get("adaptive") and all(
        k <= s for k, s in zip(pool["kernel"], pool["stride"], strict=True)
    )


def _window_axis(pool: dict[str, Any], d: int) -> sp.csr_array:
    """[n, n_out] 0/1 membership of input positions in the pooling windows along axis ``d``."""
    n, n_out = pool["in_shape"][1 + d], pool["out_shape"][1 + d]
    q = np.arange(n_out)
    if pool.get("adaptive"):  # torch's adaptive windows (upsampling when n_out > n)
        lo, hi = (q * n) // n_out, -((-(q + 1) * n) // n_out)
    else:
        k, st, p = pool["kernel"][d], pool["stride"][d], pool["padding"][d]
        lo = q * st - p
        hi = lo + k
    y = np.arange(n)[:, None]
    return sp.csr_array(((y >= lo[None, :]) & (y < hi[None, :])).astype(np.float32))


def _membership(pool: dict[str, Any]) -> sp.csr_array:
    """[pre-pool positions, pooled positions] 0/1 matrix of one pooling window set, channel-major."""
    c = pool["in_shape"][0]
    spatial = sp.kron(_window_axis(pool, 0), _window_axis(pool, 1), format="csr")
    return sp.csr_array(sp.kron(sp.identity(c, dtype=np.float32, format="csr"), spatial, "csr"))


def _unpool(a: sp.csr_array, pools: list[dict[str, Any]], in_size: int) -> sp.csr_array:
    """Map the rows of a layer's CSR (positions of its pooled input) back to its input block.

    ``a`` has one spare empty last row that absorbs positions outside every window. Without pools
    it is trimmed (or padded, for reference-mode layouts) to the block size. Non-overlapping
    windows are a row gather; overlapping, adaptive and broadcast (gate) windows multiply by the
    window membership matrix, so an edge reached through several windows carries the sum of the
    |w| that make it.
    """
    spare = a.shape[0] - 1
    if pools and not all(_simple_window(p) for p in pools):
        out = _take_head(a, spare)
        for pool in reversed(pools):
            out = sp.csr_array(_membership(pool) @ out)
        out.sum_duplicates()
        out.indices = out.indices.astype(np.int32, copy=False)
        return out
    if pools:
        rows = np.arange(_prod(pools[-1]["out_shape"]), dtype=np.int64)
        for pool in reversed(pools):
            m = _pool_map(pool)
            rows = np.where(m >= 0, rows[np.maximum(m, 0)], -1)
        rows = np.where((rows >= 0) & (rows < spare), rows, spare)
    else:
        rows = np.arange(in_size, dtype=np.int64)
        rows[rows >= spare] = spare
        if in_size == spare:
            return _take_head(a, in_size)
    out = sp.csr_array(a[rows, :])
    out.indices = out.indices.astype(np.int32, copy=False)
    return out


def _term_rows(
    a: sp.csr_array, term: dict[str, Any], block_size: int, block_shape: list[int]
) -> sp.csr_array:
    """The rows ``term["rows"]`` of a layer's CSR mapped to positions of the term's block: through
    its pooling windows, then from channel ``from_channel`` on (a channel slice or permutation)."""
    sub = _row_range(a, *term["rows"])
    start = int(term.get("from_channel", 0))
    if not start:
        return _unpool(sub, term["pools"], block_size)
    area = block_size // int(block_shape[0])
    # positions of the channels read: before the first pool, or the rows themselves
    pools = term["pools"]
    n_local = _prod(pools[0]["in_shape"]) if pools else term["rows"][1] - term["rows"][0]
    t = _unpool(sub, term["pools"], n_local)
    t = _take_head(t, n_local) if t.shape[0] != n_local else t
    lo = start * area
    ptr = t.indptr.astype(np.int64)
    indptr = np.concatenate(
        [np.zeros(lo, np.int64), ptr, np.full(block_size - lo - n_local, ptr[-1], np.int64)]
    )
    out = sp.csr_array((t.data, t.indices, indptr), shape=(block_size, a.shape[1]), copy=False)
    out.indices = out.indices.astype(np.int32, copy=False)
    return out


def _take_head(a: sp.csr_array, n: int) -> sp.csr_array:
    """First ``n`` rows without copying the edge arrays."""
    end = int(a.indptr[n])
    return sp.csr_array(
        (a.data[:end], a.indices[:end], a.indptr[: n + 1]), shape=(n, a.shape[1]), copy=False
    )


def _assemble(
    parts: dict[str, list[sp.csr_array]], names: list[str], sizes: list[int], n_nodes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the per-block CSRs into one graph CSR, merging blocks read by several layers."""
    merged: list[sp.csr_array | None] = []
    for name in names:
        ps = parts[name]
        if not ps:
            merged.append(None)
            continue
        m = ps[0]
        for other in ps[1:]:  # a block read by a main conv and a shortcut (and identity edges)
            m = sp.csr_array(m + other)
        ps.clear()
        m.sum_duplicates()
        merged.append(m)
    nnz = sum(int(m.nnz) for m in merged if m is not None)
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    indices = np.empty(nnz, dtype=np.int32)
    data = np.empty(nnz, dtype=np.float32)
    row, pos = 0, 0
    for k, (m, size) in enumerate(zip(merged, sizes, strict=True)):
        if m is not None:
            e = int(m.nnz)
            indptr[row + 1 : row + size + 1] = m.indptr[1:] + pos
            indices[pos : pos + e] = m.indices
            data[pos : pos + e] = m.data
            pos += e
            merged[k] = None
        else:
            indptr[row + 1 : row + size + 1] = pos
        row += size
        del m
    return indptr, indices, data


#: upper estimate of the edges per row block of :func:`write`; at the worst moment a row block
#: holds ~35-40 bytes per edge (the pairs, their CSR, the block rows, the merge): ~300 MB
STREAM_EDGES = 1 << 23


@dataclass
class _Consumer:
    """One reader of a block in :func:`write`: a layer, one term of a layer that reads several
    tensors, or an identity shortcut. ``make(rows)`` is its CSR over its own input rows, complete
    for the given rows (the others may be empty); ``to_block`` maps those rows to the block's."""

    layer: int | None  # index into the plan's layers; None: identity edges (not counted there)
    make: Callable[[np.ndarray], sp.csr_array]
    to_block: Callable[[sp.csr_array], sp.csr_array]
    n_rows: int
    bound: np.ndarray  # an upper bound of the edges of each of its input rows
    term: int = -1  # which input term of the layer (-1: its only input)


def _conv_taps_per_channel(w: np.ndarray, lay: dict[str, Any]) -> np.ndarray:
    """Nonzero kernel taps per input channel of a conv (each gives a source at most one edge)."""
    c_out, c_in_g = w.shape[:2]
    groups = int(lay.get("groups", 1))
    taps = np.count_nonzero(w.reshape(c_out, c_in_g, -1), axis=2)
    o, i = np.indices(taps.shape)
    ci = (o // (c_out // groups)) * c_in_g + i if groups > 1 else i
    return np.bincount(ci.ravel(), weights=taps.ravel(), minlength=int(lay["in_shape"][0]))


def _consumers(plan: _Plan) -> list[list[_Consumer]]:
    """The readers of every block, in the order :func:`build` stacks their parts."""
    out: list[list[_Consumer]] = [[] for _ in plan.names]
    n_nodes = plan.n_nodes
    for k, lp in enumerate(plan.layers):
        lay = lp.lay
        if lp.geo is not None:
            c_in = int(lay["in_shape"][0])
            area = int(lp.geo["grid"][0]) * int(lp.geo["grid"][1])
            n_rows = c_in * area
            bound = np.repeat(_conv_taps_per_channel(lp.w, lay), area)

            def make(rows: np.ndarray, lp: _LayerPlan = lp, area: int = area, n: int = c_in):
                keep = np.zeros(n, dtype=bool)
                keep[rows // area] = True
                return _layer_csr(lp, n_nodes, keep)

        else:
            n_rows = int(lp.w.shape[1])
            bound = np.count_nonzero(lp.w, axis=0).astype(np.float64)

            def make(rows: np.ndarray, lp: _LayerPlan = lp, n: int = n_rows):
                keep = np.zeros(n, dtype=bool)
                keep[rows] = True
                return _layer_csr(lp, n_nodes, keep)

        for j, term in enumerate(lay.get("inputs") or [None]):
            if term is None:
                j = -1
                b = plan.index[lay["in_block"]]
                size, pools = plan.sizes[b], lay["pools"]

                def to_block(a: sp.csr_array, pools: Any = pools, size: int = size):
                    return _unpool(a, pools, size)

            else:
                b = plan.index[term["block"]]
                to_block = _term_mapper(plan, term)
            out[b].append(_Consumer(k, make, to_block, n_rows, bound, j))
    for target, terms in plan.identities:
        n = plan.sizes[target]
        for term in terms:

            def ident(rows: np.ndarray, target: int = target) -> sp.csr_array:
                return plan.identity_csr(target)

            out[plan.index[term["block"]]].append(
                _Consumer(None, ident, _term_mapper(plan, term), n, np.ones(n))
            )
    return out


def _term_mapper(plan: _Plan, term: dict[str, Any]) -> Callable[[sp.csr_array], sp.csr_array]:
    b = plan.index[term["block"]]
    size, shape = plan.sizes[b], plan.shapes[term["block"]]
    return lambda a: _term_rows(a, term, size, shape)


def _probe(c: _Consumer) -> sp.csr_array:
    """Which of the consumer's input rows feed each row of its block: ``to_block`` of the
    identity (pattern only; its spare row empty)."""
    r = c.n_rows
    indptr = np.concatenate([np.arange(r + 1, dtype=np.int64), [r]])
    eye = sp.csr_array(
        (np.ones(r, np.float32), np.arange(r, dtype=np.int32), indptr), shape=(r + 1, r + 1)
    )
    p = sp.csr_array(c.to_block(eye))
    p.data = np.ones_like(p.data)
    return p


def _row_slice(a: sp.csr_array, lo: int, hi: int) -> sp.csr_array:
    """Rows ``[lo, hi)`` of ``a`` (views of its edge arrays)."""
    ptr = a.indptr[lo : hi + 1].astype(np.int64)
    s, e = int(ptr[0]), int(ptr[-1])
    return sp.csr_array(
        (a.data[s:e], a.indices[s:e], ptr - s), shape=(hi - lo, a.shape[1]), copy=False
    )


def _row_blocks(est: np.ndarray, chunk_edges: int) -> list[tuple[int, int]]:
    """Row ranges of about ``chunk_edges`` estimated edges each (a row is never split)."""
    size = est.shape[0]
    cum = np.cumsum(est)
    total = float(cum[-1]) if size else 0.0
    if total <= chunk_edges:
        return [(0, size)]
    targets = chunk_edges * np.arange(1, int(np.ceil(total / chunk_edges)))
    cuts = np.searchsorted(cum, targets, side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, size), [size]]))
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _stream_rows(
    plan: _Plan, chunk_edges: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The graph's rows in node order, one row block at a time: for each block, its rows are
    split into ranges of about ``chunk_edges`` edges; every reader of the block builds only
    the input channels that feed the range, and the parts merge as in :func:`_assemble`. Counts
    each layer's edges into the plan's layer metadata on the way."""
    consumers = _consumers(plan)
    for b, size in enumerate(plan.sizes):
        cons = consumers[b]
        if not cons:
            yield np.zeros(size + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
            continue
        probes = [_probe(c) for c in cons]
        est = np.zeros(size)
        for c, p in zip(cons, probes, strict=True):
            est += p @ np.append(c.bound.astype(np.float64), 0.0)  # the spare column: none
        for lo, hi in _row_blocks(est, chunk_edges):
            parts = []
            for c, p in zip(cons, probes, strict=True):
                s, e = int(p.indptr[lo]), int(p.indptr[hi])
                if s == e:
                    continue
                part = _row_slice(c.to_block(c.make(p.indices[s:e])), lo, hi)
                if c.layer is not None:
                    plan.layer_meta[c.layer]["edges"] += int(part.nnz)
                    plan.check((c.layer, c.term), part, lo)
                parts.append(part)
            if not parts:
                yield (
                    np.zeros(hi - lo + 1, np.int64),
                    np.zeros(0, np.int32),
                    np.zeros(0, np.float32),
                )
                continue
            m = parts[0]
            for other in parts[1:]:  # as _assemble: the same sums in the same order
                m = sp.csr_array(m + other)
            parts.clear()
            m.sum_duplicates()
            yield m.indptr.astype(np.int64), m.indices, m.data
            del m


def write(
    path: str | Path,
    spec: dict[str, Any],
    weights: Mapping[str, np.ndarray],
    mode: str = "exact",
    identity_edges: bool = False,
    extra_meta: Callable[[], dict[str, Any]] | None = None,
    chunk_edges: int = STREAM_EDGES,
) -> dict[str, int]:
    """Write the MGE that :func:`build` returns to ``path`` as :func:`save_graph
    <snntopo.encode.graph.save_graph>` would (the same file), without holding its edges: rows
    are made and written a row block of about ``chunk_edges`` edges at a time
    (:mod:`snntopo.encode.stream`). ``extra_meta`` is called when every row is written and
    returns entries to add to the metadata. Returns ``nodes`` and ``edges``."""
    from .stream import write_rows

    plan = _plan(spec, weights, mode, identity_edges)

    def finish() -> dict[str, Any]:
        plan.finish_terms()
        meta = plan.meta()
        if extra_meta is not None:
            meta.update(extra_meta())
        return meta

    edges = write_rows(
        path,
        plan.n_nodes,
        plan.blocks(),
        _stream_rows(plan, chunk_edges),
        finish,
        kernels=plan.kernels,
    )
    return {"nodes": plan.n_nodes, "edges": edges}
