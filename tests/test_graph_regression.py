"""The graphs of the paper models and of the torchvision models measured before the walker's
issue-26 rules are unchanged: ``snntopo encode`` (seed 0, CIFAR-10 shapes) gives the node and edge
counts recorded in ``docs/benchmarks.md`` by the code of those earlier measurements (ResNet-20 and
Conv-6, ERK 0.6, exact-mode MGE; the torchvision models of the issue-13 table, ERK 0.9 at 32x32,
in all three encodings). The rolled BGE's edge count is also checked by hand: one edge per kept
weight, ``round(0.1 * N)`` of the ``N`` conv and linear weights counted off the torch modules.
"""

from __future__ import annotations

import pytest
from torch import nn

from snntopo.cli import main as cli_main
from snntopo.encode.graph import load_graph
from snntopo.models import build_model

pytestmark = pytest.mark.slow

#: docs/benchmarks.md, "ResNet-20, ERK 0.6, MGE" and "Conv-6, ERK 0.6, MGE": (nodes, edges)
PAPER = {"resnet20": (191_498, 24_932_119), "conv6": (232_970, 74_263_684)}

#: docs/benchmarks.md, "torchvision models (ERK 0.9, CIFAR-10 shapes, exact-mode MGE)" and the
#: issue-13 table: MGE (nodes, edges), rolled edges, rolled-channel edges
TORCHVISION = {
    "resnet18": ((50_186, 13_715_414), 1_117_203, 771_077),
    "mobilenet_v2": ((139_370, 1_523_354), 220_256, 168_388),
    "mobilenet_v3_small": ((35_826, 500_003), 151_207, 131_626),
    "densenet121": ((143_882, 14_270_606), 688_045, 661_050),
    "efficientnet_b0": ((149_926, 2_277_644), 396_899, 335_799),
}


def _encode(tmp_path, arch: str, sparsity: float, encoding: str):
    out = tmp_path / f"{arch.replace(':', '_')}_{encoding}.npz"
    assert cli_main(["encode", "--arch", arch, "--dataset", "cifar10", "--method", "erk",
                     "--sparsity", str(sparsity), "--encoding", encoding,
                     "--out", str(out)]) == 0  # fmt: skip
    graph = load_graph(out)
    out.unlink()
    return graph


@pytest.mark.parametrize("arch", sorted(PAPER))
def test_paper_model_mge_unchanged(tmp_path, arch):
    graph = _encode(tmp_path, arch, 0.6, "mge")
    assert (graph.n_nodes, graph.n_edges) == PAPER[arch]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_graphs_unchanged(tmp_path, name):
    (nodes, mge_edges), rolled, channel = TORCHVISION[name]
    model = build_model(f"torchvision:{name}", num_classes=10, input_size=32)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    assert rolled == round(0.1 * weights)  # the recorded count is one edge per kept weight
    mge = _encode(tmp_path, f"torchvision:{name}", 0.9, "mge")
    assert (mge.n_nodes, mge.n_edges) == (nodes, mge_edges)
    assert _encode(tmp_path, f"torchvision:{name}", 0.9, "rolled").n_edges == rolled
    assert _encode(tmp_path, f"torchvision:{name}", 0.9, "rolled-channel").n_edges == channel
