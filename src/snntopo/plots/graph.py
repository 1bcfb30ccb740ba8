"""Drawing of a small multipartite graph encoding: one column per node block, edges as segments.

For the report: it shows how the MGE unrolls convolutions (each column is an activation block,
nodes ordered by id = c*H*W + y*W + x from top to bottom). Meant for small networks; above
``max_edges`` a uniform random subset of edges is drawn (and the title says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the drawing's widest size (inches), resolution and label size: at 14 x 100 dpi the PNG is
#: 1400 px wide, shown at ~1100 px in report.html, so 10-point labels stay ~8 points on screen
MAX_WIDTH = 14.0
DPI = 100
LABEL_SIZE = 10


def plot_mge(graph: Any, path: str | Path, max_edges: int = 20000, seed: int = 0) -> Path:
    """Draw ``graph`` (a :class:`snntopo.encode.graph.Graph`) with blocks as columns; save to path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    n = graph.n_nodes
    col = np.zeros(n, dtype=np.float64)
    ypos = np.zeros(n, dtype=np.float64)
    for k, b in enumerate(graph.blocks):
        col[b.start : b.stop] = k
        ypos[b.start : b.stop] = 1.0 - (np.arange(b.size) + 0.5) / max(b.size, 1)
    src, dst, w = graph.sources(), graph.indices, graph.weights
    sampled = graph.n_edges > max_edges
    if sampled:
        keep = np.random.default_rng(seed).choice(graph.n_edges, max_edges, replace=False)
        src, dst, w = src[keep], dst[keep], w[keep]
    segs = np.stack(
        [np.column_stack([col[src], ypos[src]]), np.column_stack([col[dst], ypos[dst]])], 1
    )
    alpha = 0.05 + 0.6 * (w / w.max() if w.size else w)
    colors = np.zeros((len(w), 4))
    colors[:, 2] = 0.5
    colors[:, 3] = np.clip(alpha, 0, 1)
    k = len(graph.blocks)
    # at most MAX_WIDTH inches wide: the page shows the PNG at ~1100 px, so a wider figure would be
    # scaled down until its labels are unreadable; labels are rotated instead of shrunk
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(5.0, 0.55 * k + 1.5)), 6.5))
    ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.4))
    ax.scatter(col, ypos, s=max(0.5, 200 / max(n, 1) ** 0.5), c="k", zorder=3)
    ax.set_xticks(range(len(graph.blocks)))
    ax.set_xticklabels(
        [f"{b.name}  {'x'.join(map(str, b.shape))}" for b in graph.blocks],
        fontsize=LABEL_SIZE,
        rotation=90 if k > 6 else 0,
    )
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(graph.blocks) - 0.7)
    ax.set_ylim(-0.02, 1.02)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    title = f"{graph.meta.get('encoding', 'graph')}: {n} nodes, {graph.n_edges} edges"
    ax.set_title(title + (f" ({max_edges} drawn)" if sampled else ""), fontsize=LABEL_SIZE + 2)
    ax.set_xlabel("node blocks, input on the left (name, channels x height x width)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
