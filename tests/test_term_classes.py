"""Translation classes of an MGE's rows from its conv terms (metrics/term_classes.py): the
classes cover every row once, a class's representative and farthest member have 2-hop rows of
one size, and the 2-hop total over the classes equals networkx's count of every row -- on a
hand-counted conv chain, the paper models (pooling, shortcuts, identity edges, reference mode)
and pooled, grouped, dilated, strided, SE-gated and asymmetrically padded convs. Classes that do
not hold are caught by the sampled check and the family falls back with the same value."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from snntopo.encode import build_graph
from snntopo.encode.layers import layer_spec
from snntopo.metrics import compute_family
from snntopo.metrics import neighbourhood as nbmod
from snntopo.metrics import term_classes as tcmod
from tests.test_encode_mge import _masked_positive
from tests.test_stencil_terms import CASES as STENCIL_CASES
from tests.test_two_hop import MGE_CASES, _masked, nx_two_hop_total


def _check(graph) -> tcmod.TermClasses:
    """Every property the classes promise, against networkx's per-row count."""
    found = tcmod.term_classes(graph)
    assert found is not None
    assert int(found.sizes.sum()) == graph.n_nodes
    assert np.unique(found.reps).shape[0] == found.reps.shape[0]  # one representative a class
    b = nbmod.ClosedRows.of(graph)
    rep_counts = nbmod.two_hop_rows(b, found.reps)
    assert np.array_equal(rep_counts, nbmod.two_hop_rows(b, found.others))
    assert int(rep_counts @ found.sizes) == nx_two_hop_total(graph)
    assert nbmod.two_hop_total(b, classes=(found.reps, found.sizes), threads=2) == int(
        rep_counts @ found.sizes
    )
    return found


def test_a_conv_chain_by_hand():
    # three 1x3 convs (zero padding, full kernels) on one 1x10 row: 2 hops from block 0 reach
    # 5 positions of block 2 in the interior, fewer near a border -> columns 0, 1, [2..7], 8, 9;
    # block 1 reaches block 2 and block 3 -> the same 5 classes; block 2 reaches only block 3 ->
    # 0, [1..8], 9; block 3 has no edges out: 10 classes of one
    net = nn.Sequential(*[nn.Conv2d(1, 1, (1, 3), padding=(0, 1), bias=False) for _ in range(3)])
    graph = build_graph("mge", layer_spec(net, (1, 1, 10)), _masked_positive(net, 1.0))
    found = _check(graph)
    by_block = [
        sorted(found.sizes[(found.reps >= b.start) & (found.reps < b.stop)].tolist())
        for b in graph.blocks
    ]
    assert by_block == [[1, 1, 1, 1, 6], [1, 1, 1, 1, 6], [1, 1, 8], [1] * 10]
    assert found.grouped == 30


@pytest.mark.parametrize("case", MGE_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_paper_models(case):
    from snntopo.models import build_model

    arch, kw, shape, enc = case
    model = build_model(arch, seed=0, **kw)
    graph = build_graph("mge", layer_spec(model, shape), _masked(model, 0.3), **enc)
    if enc.get("mode") == "reference":  # the paper's layout keeps no conv terms
        assert tcmod.term_classes(graph) is None
        return
    found = _check(graph)
    if not enc:  # exact mode without identity edges: the convs' blocks are grouped
        assert found.reps.shape[0] < 0.5 * graph.n_nodes


@pytest.mark.parametrize("name", sorted(STENCIL_CASES))
def test_pooled_grouped_dilated_and_gated_convs(name):
    net, shape = STENCIL_CASES[name]
    graph = build_graph("mge", layer_spec(net, shape), _masked_positive(net, 0.6, seed=3))
    found = _check(graph)
    assert found.grouped > 0


def test_resnet18_stem_and_downsampling():
    import torchvision

    net = torchvision.models.resnet18(num_classes=4)
    graph = build_graph("mge", layer_spec(net, (3, 32, 32)), _masked_positive(net, 0.05))
    found = tcmod.term_classes(graph)
    assert found is not None and found.grouped > 0
    b = nbmod.ClosedRows.of(graph)
    counts = nbmod.two_hop_rows(b, found.reps)
    assert np.array_equal(counts, nbmod.two_hop_rows(b, found.others))
    assert int(counts @ found.sizes) == nbmod.two_hop_total(b)  # every row counted


def test_the_family_uses_them_and_records_it():
    from snntopo.models import build_model

    model = build_model("resnet20", width=0.25, seed=0)
    graph = build_graph("mge", layer_spec(model, (3, 16, 16)), _masked(model, 0.3))
    out = compute_family("neighbourhood", graph, {"motif_min_sample": 2})
    assert out["network"]["two_hop_nei"] == nx_two_hop_total(graph) / graph.n_nodes
    computed = out["provenance"]["computed"]
    assert computed["two_hop_classes"] == "conv terms"
    assert computed["two_hop_rows_counted"] < graph.n_nodes


def test_wrong_classes_are_caught_and_the_value_holds(monkeypatch, caplog):
    # every row of a block in one key: representatives and far members disagree
    from snntopo.models import build_model

    model = build_model("conv6", seed=0, input_size=16, width=0.125)
    graph = build_graph("mge", layer_spec(model, (3, 16, 16)), _masked(model, 0.3))
    monkeypatch.setattr(
        tcmod,
        "_axis_keys",
        lambda s, axis, out, shapes: np.zeros(shapes[s][1 + axis], dtype=np.int64),
    )
    with caplog.at_level(logging.WARNING, logger="snntopo.metrics"):
        out = compute_family("neighbourhood", graph, {"motif_min_sample": 2})
    assert "disagree with the edges" in caplog.text
    assert out["provenance"]["computed"]["two_hop_classes"] != "conv terms"
    assert out["network"]["two_hop_nei"] == nx_two_hop_total(graph) / graph.n_nodes


def test_terms_that_claim_more_edges_than_the_block_has_give_none():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Conv2d(2, 1, 3, bias=False))
    graph = build_graph("mge", layer_spec(net, (1, 6, 6)), _masked_positive(net, 0.5))
    name = graph.meta["conv_terms"][0]["kernel"]
    graph.kernels[name] = np.ones_like(graph.kernels[name])  # more nonzero taps than edges
    assert tcmod.term_classes(graph) is None


def test_a_graph_without_terms_has_none():
    from tests.test_two_hop import random_layered_dag

    assert tcmod.term_classes(random_layered_dag(3)) is None
    assert torch  # the stencil cases above are torch modules
