"""Local metrics in ``reference`` mode follow the paper code's definitions (hand-counted)."""

from __future__ import annotations

import numpy as np

from snntopo.encode.graph import Block, from_edges
from snntopo.metrics import compute_family


def boundary_graph(mode: str | None):
    """inputs i0..i2 (0-2), hidden h0..h3 (3-6), outputs o0..o2 (7-9).

    h0 (index 3 = n_in) is a dangling source, h3 (index 6 = N - 1 - n_out) a dead end: exactly the
    two nodes the paper code's index bounds leave out of r-in and r-out. i2 is isolated.
    """
    blocks = [Block("in", 0, 3, (3,)), Block("h", 3, 7, (4,)), Block("out", 7, 10, (3,))]
    edges = [(3, 7), (0, 4), (4, 8), (1, 6), (1, 5), (5, 9)]
    s, d = np.array(edges).T
    meta = {"encoding": "mge", **({"mode": mode} if mode else {})}
    return from_edges(s, d, np.full(len(edges), 0.5), blocks, meta=meta)


def test_reference_mode_uses_the_paper_definitions() -> None:
    net = compute_family("local", boundary_graph("reference"))["network"]
    # sinks: h3, o0, o1, o2 = 4, minus 3 outputs; sources: i0, i1, h0 = 3, minus 3 inputs
    assert net["sink_nodes"] == 1 and net["source_nodes"] == 0
    assert net["r_out"] == 0  # h3 (index 6) is not < 10 - 1 - 3
    assert net["r_in"] == 0  # h0 (index 3) is not > 3
    assert net["disc_nodes"] == 1
    assert net["sink_nodes_norm"] == 0.1


def test_exact_mode_keeps_the_clean_definitions() -> None:
    for mode in ("exact", None):
        res = compute_family("local", boundary_graph(mode))
        net = res["network"]
        assert (net["sink_nodes"], net["source_nodes"], net["r_out"], net["r_in"]) == (1, 1, 1, 1)
        assert net["disc_nodes"] == 1
    assert compute_family("local", boundary_graph("reference"))["mode"] == "reference"
    assert compute_family("local", boundary_graph(None))["mode"] == "exact"
