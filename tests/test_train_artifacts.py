"""The trained-model artifact (model.safetensors) and the ``snntopo train`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snntopo.artifacts import (
    load_trained_into,
    load_trained_masks,
    load_trained_meta,
    load_trained_weights,
    save_trained,
)
from snntopo.errors import CheckpointError
from snntopo.models import build_model, prunable_parameters


def masks_for(model, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model)}


def test_round_trip(tmp_path):
    model = build_model("resnet20", input_size=16, width=0.25, seed=0)
    masks = masks_for(model)
    path = tmp_path / "model.safetensors"
    meta = {"config": {"arch": "resnet20"}, "accuracy": 0.5, "history": [{"epoch": 1}]}
    save_trained(path, model, masks, meta)

    weights = load_trained_weights(path)
    sd = model.state_dict()
    assert set(weights) == set(sd)
    for name, m in masks.items():
        w = weights[name]
        assert w.dtype == np.float32
        assert np.all(w[~m.numpy()] == 0.0)  # masked on the way out
        np.testing.assert_array_equal(w[m.numpy()], sd[name].numpy()[m.numpy()])
    assert weights["bn1.num_batches_tracked"].dtype == np.int64

    stored = load_trained_masks(path)
    assert set(stored) == set(masks)
    assert all(stored[n].dtype == bool and np.array_equal(stored[n], masks[n]) for n in masks)

    got = load_trained_meta(path)
    assert got["accuracy"] == 0.5 and got["history"] == [{"epoch": 1}]
    assert got["provenance"]["params"] == {"arch": "resnet20"}

    fresh = build_model("resnet20", input_size=16, width=0.25, seed=1)
    load_trained_into(fresh, path)
    for name, m in masks.items():
        assert torch.count_nonzero(fresh.state_dict()[name][~m]) == 0
    with pytest.raises(CheckpointError, match="does not fit"):
        load_trained_into(build_model("resnet32", input_size=16, width=0.25), path)


def test_no_tmp_files_left_and_bad_files(tmp_path):
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    path = tmp_path / "m" / "model.safetensors"
    save_trained(path, model, None, {"accuracy": 0.1})
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_trained_weights(bad)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_trained_meta(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_trained_weights(tmp_path / "missing.safetensors")


def test_mask_shape_mismatch_refused(tmp_path):
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    with pytest.raises(CheckpointError, match="shape"):
        save_trained(
            tmp_path / "x.safetensors",
            model,
            {"features.0.weight": torch.ones(2, 2, dtype=torch.bool)},
            {},
        )


def test_train_command_end_to_end(tmp_path, capsys):
    from snntopo.cli import main
    from snntopo.pai.io import save_mask

    model = build_model("conv6", num_classes=10, input_size=16, width=0.125, seed=3)
    masks = masks_for(model, 0.3)
    mask_path = tmp_path / "mask.safetensors"
    save_mask(mask_path, masks, {"method": "test", "sparsity": 0.7, "seed": 3})
    out = tmp_path / "run"
    argv = ["train", "--arch", "conv6", "--dataset", "digits", "--mask", str(mask_path)]
    argv += ["--seed", "3", "--width", "0.125", "--epochs", "1", "--batch-size", "32"]
    argv += ["--limit-batches", "3", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= line["accuracy"] <= 1.0
    assert not (out / "checkpoint.pt").exists()
    assert "epoch 1/1" in (out / "train.log").read_text()
    summary = json.loads((out / "train.json").read_text())
    assert summary["accuracy"] == line["accuracy"]
    weights = load_trained_weights(out / "model.safetensors")
    for name, m in masks.items():
        assert np.all(weights[name][~m.numpy()] == 0.0)
    meta = load_trained_meta(out / "model.safetensors")
    assert meta["training"]["epochs"] == 1
    from snntopo.io import file_digest

    assert meta["mask_sha256"] == summary["mask_sha256"] == file_digest(mask_path)
    # the network keys come from the mask, as in the workflow's train.json
    assert (summary["method"], summary["sparsity"], summary["seed"]) == ("test", 0.7, 3)


def test_train_command_cuda_without_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from snntopo.cli import main

    argv = ["train", "--arch", "conv6", "--dataset", "digits", "--device", "cuda"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
