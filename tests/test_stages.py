"""The workflow's stage functions and the single-network CLI compute the same thing."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from snntopo.cli import main
from snntopo.stages import make_mask


def test_cli_mask_equals_workflow_mask(tmp_path):
    """SNIP reads data: both paths must draw the same seeded batches and keep the same weights."""
    params = {
        "arch": "resnet20",
        "dataset": "digits",
        "num_classes": 10,
        "in_channels": 3,
        "input_size": 8,
        "width": 0.25,
        "method": "snip",
        "sparsity": 0.9,
        "seed": 4,
        "device": "cpu",
        "data_root": str(tmp_path),
        "download": False,
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
