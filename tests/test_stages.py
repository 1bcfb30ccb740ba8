"""The workflow's stage functions and the single-network CLI compute the same thing."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_job import TINY_DIGITS_JOB

from snntopo.cli import main
from snntopo.stages import make_mask


def test_cli_mask_equals_workflow_mask(tmp_path):
    """SNIP reads data: both paths must draw the same seeded batches and keep the same weights."""
    params = {
        **TINY_DIGITS_JOB,
        "method": "snip",
        "sparsity": 0.9,
        "seed": 4,
        "data_root": str(tmp_path),
        "pai": {"batch_size": 32},
    }
    dag_mask = tmp_path / "dag" / "mask.safetensors"
    make_mask(params, str(dag_mask), str(tmp_path / "dag" / "init.safetensors"))
    cli_mask = tmp_path / "cli.safetensors"
    rc = main(
        [
            "mask",
            "--arch=resnet20",
            "--dataset=digits",
            "--method=snip",
            "--sparsity=0.9",
            "--seed=4",
            "--width=0.25",
            "--input-size=8",
            "--batch-size=32",
            "--device=cpu",
            f"--data-root={tmp_path}",
            f"--out={cli_mask}",
        ]
    )
    assert rc == 0
    a, b = load_file(str(dag_mask)), load_file(str(cli_mask))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_encode_from_trained_model_artifact(tmp_path):
    """``encode.weights: trained`` reads model.safetensors (which also holds BN state and the
    masks): the graph has one rolled edge per surviving weight of the trained network."""
    import numpy as np

    from snntopo.artifacts import save_trained
    from snntopo.encode.graph import load_graph
    from snntopo.encode.layers import layer_spec
    from snntopo.io import write_json
    from snntopo.models import build_model, prunable_parameters
    from snntopo.stages import encode_network

    model = build_model("resnet20", width=0.25, input_size=8, seed=1)
    gen = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(p.shape, generator=gen) < 0.3 for n, p in prunable_parameters(model)}
    with torch.no_grad():
        for n, p in prunable_parameters(model):
            p.mul_(masks[n])
    spec = tmp_path / "layers.json"
    write_json(spec, layer_spec(model, (3, 8, 8)))
    weights = tmp_path / "model.safetensors"
    save_trained(weights, model, masks, {"accuracy": 0.5})
    out = tmp_path / "rolled.npz"
    encode_network("rolled", str(spec), str(weights), {}, str(out))
    graph = load_graph(out)
    assert graph.n_edges == sum(int(m.sum()) for m in masks.values())
    assert np.isclose(
        graph.weights.max(),
        max(np.abs(p.detach().numpy()).max() for _, p in prunable_parameters(model)),
    )


def test_every_rule_script_calls_an_existing_stage():
    """The thin adapters in workflow/scripts only import stage functions that exist (a cheap
    guard; the end-to-end workflow test runs them for real)."""
    import ast
    import importlib
    from pathlib import Path

    scripts = sorted((Path(__file__).resolve().parents[1] / "workflow" / "scripts").glob("*.py"))
    assert len(scripts) >= 9
    seen = 0
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("snntopo.stages", "snntopo.jobs")
            ):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (script.name, alias.name)
                    seen += 1
    assert seen >= 9


@pytest.mark.parametrize("method", ["uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"])
def test_every_pai_method_encodes_from_the_cli_on_the_demo_data(tmp_path, method, capsys):
    """``snntopo encode`` runs the mask stage with the data the method needs (the bundled digits
    for the data-driven ones): the graph has the budget's edges in its rolled BGE."""
    import json

    from snntopo.cli import main
    from snntopo.encode.graph import load_graph

    out = tmp_path / "g.npz"
    argv = ["encode", "--arch", "resnet20", "--dataset", "digits", "--method", method]
    argv += ["--sparsity", "0.9", "--width", "0.25", "--input-size", "8", "--device", "cpu"]
    argv += ["--encoding", "rolled", "--out", str(out)]
    if method in ("snip", "prospr"):
        argv += ["--pai-param", "batch_size=32"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    graph = load_graph(out)
    assert graph.meta["network"]["method"] == method
    total = sum(int(lay["numel"]) for lay in graph.layers)
    # one rolled edge per kept weight: 10% of the prunable weights (to rounding)
    assert abs(line["edges"] - 0.1 * total) <= 0.01 * total
