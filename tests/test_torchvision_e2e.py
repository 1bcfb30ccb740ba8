"""torchvision models through the CLI: ``snntopo mask`` (ERK), ``snntopo encode`` in every
encoding, ``snntopo metrics`` with every applicable family (slow: a few real models at 32x32).

Independent truths: the MGE's node count is the input plus every conv/linear output (read off
forward hooks on the torch model); the rolled BGE has one edge per kept weight and the
rolled-channel BGE one per (output channel, input channel) pair with any kept weight, both
counted from the mask tensors; every metric is finite or NaN with its reason.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from snntopo.cli import main as cli_main
from snntopo.encode.graph import load_graph
from snntopo.metrics import applicable_families
from snntopo.models import build_model

pytestmark = pytest.mark.slow

MODELS = {
    # SE gating (hardsigmoid), depthwise convs, identity residuals, hardswish
    "mobilenet_v3_small": [],
    # inverted residuals, depthwise convs; kwargs through the CLI (half width)
    "mobilenet_v2": ["--model-kwargs", "width_mult=0.5"],
}
ENCODINGS = ("mge", "rolled", "rolled-channel")


@pytest.fixture(scope="module", params=sorted(MODELS))
def masked(request, tmp_path_factory):
    name = request.param
    work = tmp_path_factory.mktemp(name)
    common = ["--arch", f"torchvision:{name}", "--dataset", "cifar10", *MODELS[name]]
    mask = work / "mask.safetensors"
    assert cli_main(["mask", *common, "--method", "erk", "--sparsity", "0.9",
                     "--out", str(mask)]) == 0  # fmt: skip
    return name, common, work, load_file(str(mask))


def _output_numels(name: str, kwargs: dict) -> int:
    model = build_model(f"torchvision:{name}", num_classes=10, input_size=32, kwargs=kwargs)
    total = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: total.append(out[0].numel()))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return 3 * 32 * 32 + sum(total)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encode_and_every_family(masked, encoding, capsys):
    name, common, work, masks = masked
    g = work / f"{encoding}.npz"
    assert cli_main(["encode", *common, "--method", "erk", "--sparsity", "0.9",
                     "--mask", str(work / "mask.safetensors"),
                     "--encoding", encoding, "--out", str(g)]) == 0  # fmt: skip
    graph = load_graph(g)
    kept = {k: v.numpy() for k, v in masks.items() if v.dim() in (2, 4)}
    if encoding == "mge":
        kwargs = {"width_mult": 0.5} if name == "mobilenet_v2" else {}
        assert graph.n_nodes == _output_numels(name, kwargs)
    elif encoding == "rolled":
        assert graph.n_edges == sum(int(m.sum()) for m in kept.values())
        assert len(graph.layers) == len(kept)
    else:
        pairs = sum(int(m.reshape(m.shape[0], m.shape[1], -1).any(-1).sum()) for m in kept.values())
        assert graph.n_edges == pairs
    families = applicable_families(encoding)
    assert ("ramanujan" in families) == (encoding != "mge")
    out = work / f"{encoding}.metrics.json"
    capsys.readouterr()
    assert cli_main(["metrics", str(g), "--out", str(out)]) == 0
    arts = json.loads(out.read_text())
    assert sorted(arts) == sorted(families)
    for fam, art in arts.items():
        reasons = art["nan_reasons"]
        for key, value in art["network"].items():
            ok = value is not None and math.isfinite(value)
            assert ok or key in reasons or key.removesuffix("_norm") in reasons, (fam, key)
    local = arts["local"]["network"]
    if encoding == "mge":
        assert local["nodes"] == graph.n_nodes and local["edges"] == graph.n_edges
    else:  # per-layer means over the BGE's layers
        assert local["mean_edges"] == pytest.approx(graph.n_edges / len(graph.layers))
    assert np.isfinite(arts["expansion"]["network"].get("spectral_gap", 0.0) or 0.0)


def test_googlenet_aux_heads_through_the_cli(tmp_path):
    """``snntopo mask`` on GoogLeNet with its auxiliary heads on (the default): the mask file lists
    the heads' six weight tensors as outside the inference network, and ``snntopo encode`` of
    that mask encodes exactly ``round(0.1 * 5,595,584)`` weights (the inference network's count
    in the issue), one rolled-BGE edge each: the encoded sparsity is the requested 0.9."""
    from snntopo.pai.io import load_mask

    common = ["--arch", "torchvision:googlenet", "--dataset", "cifar10",
              "--method", "erk", "--sparsity", "0.9"]  # fmt: skip
    mask = tmp_path / "mask.safetensors"
    assert cli_main(["mask", *common, "--out", str(mask)]) == 0
    masks, meta = load_mask(mask)
    heads = [n for n in masks if n.startswith(("aux1.", "aux2."))]
    assert meta["outside_inference"] == heads and len(heads) == 6
    assert all(bool(masks[n].all()) for n in heads)
    g = tmp_path / "g.npz"
    assert cli_main(["encode", *common, "--mask", str(mask), "--encoding", "rolled",
                     "--out", str(g)]) == 0  # fmt: skip
    assert load_graph(g).n_edges == round(0.1 * 5_595_584) == 559_558


@pytest.mark.parametrize(
    ("name", "attention"),
    [("swin_t", "ShiftedWindowAttention"), ("maxvit_t", "RelativePositionalMultiHeadAttention")],
)
def test_attention_models_stop_with_one_line(tmp_path, capsys, name, attention):
    """torchvision's attention models (input-dependent weights) stop ``snntopo encode`` with one
    line that says they have no static graph and names the attention module; nothing written."""
    out = tmp_path / "g.npz"
    rc = cli_main(["encode", "--arch", f"torchvision:{name}", "--dataset", "cifar10",
                   "--method", "erk", "--sparsity", "0.9", "--encoding", "rolled",
                   "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and err.startswith("snntopo encode: error: ")
    assert "no static graph" in err and attention in err and not out.exists()
