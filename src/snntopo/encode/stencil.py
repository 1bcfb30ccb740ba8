"""Geometry of an MGE conv term: which pre-pool positions each tap of each output reads.

A conv term (``conv_terms`` of :mod:`snntopo.encode.graph`) is one conv's block pair of the MGE
held as its ``|W|`` kernel and geometry: stride, top/left ``padding``, an optional far-side
``padding_end``, dilation, ``groups``, and the non-adaptive pooling windows (``pools``, applied in
order to the source block) that the encoder folds into the conv. The pair's adjacency is then

    A = M_0 M_1 ... M_last C

with ``C`` the conv's edges on its (pooled) input grid and ``M_i`` the 0/1 window membership of
pool ``i`` (pre-pool position x pooled position). Both factors separate by axis, so the
operator (:mod:`snntopo.metrics.conv_operator`) applies ``M_i`` as strided window sums along
each axis (k slices per axis) and the conv as an im2col product; nothing here or there forms an
effective kernel on the pre-pool grid, so the borders are exact: a pooled position that does not
exist (the conv's zero padding) reaches no pre-pool position, even where the pre-pool grid would
still have one (3x3/s2/p1 pooling of 112 -> 56, then a 3x3/p1 conv reading pooled row 56).

:func:`edge_count` counts the pair's edges from the same geometry without building them: per
axis, each output row's taps reach a set of pre-pool rows (:func:`axis_reach`); output rows with
the same reach pattern (up to a shift) form a class (the interior and a few border rows), and a
kernel slice's edges at an output position are the nonzero entries of ``Ry^T P Rx`` for its tap
pattern ``P``. The count is exact (integers) and costs (classes per axis)^2 x (distinct tap
patterns) small products, whatever the size of the feature map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .graph import Block


def window_axis(pool: dict[str, Any], d: int) -> np.ndarray:
    """Dense float64 [n_in, n_out] 0/1 membership of a non-adaptive pooling window set along axis
    ``d``: pooled position q holds input rows ``[q*s - p, q*s - p + k)`` that exist."""
    n, n_out = int(pool["in_shape"][1 + d]), int(pool["out_shape"][1 + d])
    k, s, p = int(pool["kernel"][d]), int(pool["stride"][d]), int(pool["padding"][d])
    lo = np.arange(n_out) * s - p
    y = np.arange(n)[:, None]
    return ((y >= lo[None, :]) & (y < lo[None, :] + k)).astype(np.float64)


def _window_span(pool: dict[str, Any], d: int) -> tuple[int, int, int, int, int]:
    """(k, s, p, n_in, n_out) of a pool along axis d and the padded length its windows span."""
    k, s, p = int(pool["kernel"][d]), int(pool["stride"][d]), int(pool["padding"][d])
    n, n_out = int(pool["in_shape"][1 + d]), int(pool["out_shape"][1 + d])
    return k, s, p, n, n_out


def _window_sum(z: np.ndarray, pool: dict[str, Any], d: int) -> np.ndarray:
    """Sums of ``z`` (C, H, W) over the pool's windows along spatial axis d (the rows of
    :func:`window_axis`: positions outside the input add nothing)."""
    k, s, p, n, n_out = _window_span(pool, d)
    ax = 1 + d
    span = max(p + n, (n_out - 1) * s + k)
    shape = list(z.shape)
    shape[ax] = span
    zp = np.zeros(shape)
    idx = [slice(None)] * 3
    idx[ax] = slice(p, p + n)
    zp[tuple(idx)] = z
    shape[ax] = n_out
    out = np.zeros(shape)
    for j in range(k):  # a loop over the window's taps
        idx[ax] = slice(j, j + (n_out - 1) * s + 1, s)
        out += zp[tuple(idx)]
    return out


def _window_spread(g: np.ndarray, pool: dict[str, Any], d: int) -> np.ndarray:
    """The transpose of :func:`_window_sum`: each pooled value added to its window's inputs."""
    k, s, p, n, n_out = _window_span(pool, d)
    ax = 1 + d
    shape = list(g.shape)
    shape[ax] = max(p + n, (n_out - 1) * s + k)
    zp = np.zeros(shape)
    idx = [slice(None)] * 3
    for j in range(k):
        idx[ax] = slice(j, j + (n_out - 1) * s + 1, s)
        zp[tuple(idx)] += g
    idx[ax] = slice(p, p + n)
    return zp[tuple(idx)]


def chain_axis(pools: list[dict[str, Any]], d: int, n: int) -> np.ndarray:
    """[n, n_conv_in] bool: pre-pool row y lies in some window chain ending at conv-input row q."""
    m = np.eye(n, dtype=np.float64)
    for pool in pools:
        m = m @ window_axis(pool, d)
    return m > 0


def axis_reach(term: dict[str, Any], d: int, n_in: int, n_out: int, k: int) -> np.ndarray:
    """[n_out, k, n_in] bool: which pre-pool rows tap u of output row o reaches along axis d."""
    pools = term.get("pools") or []
    chain = chain_axis(pools, d, n_in)
    side = chain.shape[1]  # rows of the conv's own input grid
    s, p, dil = int(term["stride"][d]), int(term["padding"][d]), int(term["dilation"][d])
    q = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :] * dil  # (n_out, k)
    ok = (q >= 0) & (q < side)
    reach = chain.T[np.clip(q, 0, side - 1)]  # (n_out, k, n_in)
    reach &= ok[:, :, None]
    return reach


def _classes(reach: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Output rows grouped by their reach pattern up to a shift: (pattern [k, width], rows)."""
    seen: dict[tuple[int, bytes], list[Any]] = {}
    for r in reach:
        cols = np.flatnonzero(r.any(axis=0))
        if cols.size == 0:
            continue  # every tap of this row falls on padding: no edges
        pat = np.ascontiguousarray(r[:, cols[0] : cols[-1] + 1])
        key = (pat.shape[1], pat.tobytes())
        if key in seen:
            seen[key][1] += 1
        else:
            seen[key] = [pat, 1]
    return [(pat, n) for pat, n in seen.values()]


def _tap_patterns(nz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nonempty rows of a bool [slices, taps] array and how often each occurs; rows are
    packed into one integer each (a 1-D sort, not ``np.unique(axis=0)``'s row-wise one)."""
    n = nz.shape[1]
    if n <= 62:
        codes = nz.astype(np.int64) @ (np.int64(1) << np.arange(n, dtype=np.int64))
        vals, counts = np.unique(codes[codes != 0], return_counts=True)
        pats = ((vals[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(bool)
        return pats, counts
    pats, counts = np.unique(nz, axis=0, return_counts=True)
    keep = pats.any(axis=1)
    return pats[keep], counts[keep]


def edge_count(kernel: np.ndarray, term: dict[str, Any], src_shape: Any, dst_shape: Any) -> int:
    """Edges of the pair ``term`` describes: distinct (source, target) positions joined by a
    nonzero weight through a valid tap (and pooling windows). ``kernel``: [C_out, C_in/groups,
    kh, kw]; ``src_shape``: the source block (pre-pool); ``dst_shape``: the conv's output."""
    kh, kw = kernel.shape[2:]
    _, h, w = (int(v) for v in src_shape)
    _, ho, wo = (int(v) for v in dst_shape)
    pats, counts = _tap_patterns((kernel != 0).reshape(-1, kh * kw))
    pats = pats.reshape(-1, kh, kw).astype(np.float64)
    if not pats.shape[0]:
        return 0
    ys = _classes(axis_reach(term, 0, h, ho, kh))
    xs = _classes(axis_reach(term, 1, w, wo, kw))
    total = 0
    for ry, ny in ys:
        left = np.matmul(ry.T.astype(np.float64), pats)  # (U, Ty, kw)
        for rx, nx in xs:
            hits = np.count_nonzero(np.matmul(left, rx.astype(np.float64)) > 0, axis=(1, 2))
            total += ny * nx * int(hits @ counts)
    return total


class StencilTerm:
    """One conv block pair: ``forward`` adds ``A^T x`` (the conv), ``backward`` adds ``A x``.

    Groups: one matrix product per group, batched (kernel ``(groups, C_out/g, C_in/g*kh*kw)``;
    a depthwise conv never becomes a dense ``(C_out, C_in)`` kernel). Pooling folded into the
    conv (``pools``): the source block is first summed over each window (strided slices, axis
    by axis: the windows of :func:`window_axis`), then convolved on the pooled grid; ``backward`` spreads the conv's transpose
    back over the windows. That is the pair's adjacency as the encoder builds it (an edge
    reached through several windows carries the sum of their |w|), exact at the borders (see
    :mod:`snntopo.encode.stencil`). ``padding_end`` (far-side padding) only sizes the buffer."""

    def __init__(self, term: dict[str, Any], kernel: np.ndarray, src: Block, dst: Block) -> None:
        cout, cin_g, kh, kw = kernel.shape
        self.src, self.dst = src, dst
        self.pools = [p for p in term.get("pools") or []]
        self.c_src, self.h_src, self.w_src = (int(v) for v in src.shape)
        conv_in = self.pools[-1]["out_shape"] if self.pools else src.shape
        self.cin, self.h, self.w = (int(v) for v in conv_in)
        self.cout, self.ho, self.wo = (int(v) for v in dst.shape)
        (self.sh, self.sw), (self.ph, self.pw) = term["stride"], term["padding"]
        self.dh, self.dw = term["dilation"]
        self.g = int(term.get("groups", 1))
        self.kh, self.kw = kh, kw
        g = self.g
        self.k = kernel.astype(np.float64).reshape(g, cout // g, cin_g * kh * kw)
        self.kt = np.ascontiguousarray(self.k.transpose(0, 2, 1))
        # membership matrices (pre-pool x pooled) per pool and axis
        # padded input buffer: its border stays zero (padding makes no edges); tall enough for
        # the last window (far-side padding may differ from the near side)
        hp = max(self.ph + self.h, (self.ho - 1) * self.sh + (kh - 1) * self.dh + 1)
        wp = max(self.pw + self.w, (self.wo - 1) * self.sw + (kw - 1) * self.dw + 1)
        self.xp = np.zeros((self.cin, hp, wp))
        self.cols = np.empty((self.cin, kh, kw, self.ho, self.wo))
        self.gp = np.zeros_like(self.xp)
        self.n_edges = edge_count(kernel, term, src.shape, dst.shape)

    @property
    def multiplicity(self) -> int:
        """The most pooling windows (chained) that can hold one pre-pool position."""
        m = 1
        for p in self.pools:
            for d in range(2):
                m *= -(-int(p["kernel"][d]) // int(p["stride"][d]))
        return m

    @property
    def cost(self) -> int:
        """Kernel entries x output positions: the dense product's multiply-adds per direction."""
        return int(self.k.size) * self.ho * self.wo

    def _windows(self, a: np.ndarray) -> np.ndarray:
        """(cin, kh, kw, ho, wo) strided view: the input position each tap of each output reads."""
        s = a.strides
        return as_strided(
            a,
            shape=(self.cin, self.kh, self.kw, self.ho, self.wo),
            strides=(s[0], self.dh * s[1], self.dw * s[2], self.sh * s[1], self.sw * s[2]),
            writeable=False,
        )

    def forward(self, x: np.ndarray, y: np.ndarray) -> None:
        ph, pw = self.ph, self.pw
        z = x[self.src.start : self.src.stop].reshape(self.c_src, self.h_src, self.w_src)
        for p in self.pools:  # sum over each window (pre-pool -> pooled)
            z = _window_sum(_window_sum(z, p, 0), p, 1)
        self.xp[:, ph : ph + self.h, pw : pw + self.w] = z
        np.copyto(self.cols, self._windows(self.xp))
        cols = self.cols.reshape(self.g, self.k.shape[2], self.ho * self.wo)
        y[self.dst.start : self.dst.stop] += np.matmul(self.k, cols).ravel()

    def backward(self, x: np.ndarray, y: np.ndarray) -> None:
        xs = x[self.dst.start : self.dst.stop].reshape(self.g, self.cout // self.g, -1)
        g = np.matmul(self.kt, xs).reshape(self.cin, self.kh, self.kw, self.ho, self.wo)
        gp = self.gp
        gp.fill(0.0)
        ey, ex = (self.ho - 1) * self.sh + 1, (self.wo - 1) * self.sw + 1
        for u in range(self.kh):  # a loop over the kernel's taps, not over nodes or edges
            for v in range(self.kw):
                oy, ox = u * self.dh, v * self.dw
                gp[:, oy : oy + ey : self.sh, ox : ox + ex : self.sw] += g[:, u, v]
        ph, pw = self.ph, self.pw
        z = gp[:, ph : ph + self.h, pw : pw + self.w]
        for p in reversed(self.pools):  # spread back over the windows (pooled -> pre-pool)
            z = _window_spread(_window_spread(z, p, 1), p, 0)
        y[self.src.start : self.src.stop] += np.ascontiguousarray(z).ravel()
