"""Mask artifacts: round trip, validation errors naming the file, apply_mask, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from snntopo.cli import main
from snntopo.errors import MaskError
from snntopo.models import build_model, prunable_parameters
from snntopo.pai import compute_mask
from snntopo.pai.io import apply_mask, load_mask, save_mask


def model(width: float = 0.25):
    return build_model("resnet20", 10, 3, 8, width, seed=0)


@pytest.fixture
def saved(tmp_path):
    m = model()
    masks, info = compute_mask("erk", m, 0.9, seed=0)
    path = tmp_path / "run" / "mask.safetensors"
    save_mask(path, masks, {**info, "arch": "resnet20", "dataset": "cifar10"})
    return path, masks, m


def test_round_trip(saved):
    path, masks, m = saved
    got, meta = load_mask(path, m)
    assert list(got) == [n for n, _ in prunable_parameters(m)]
    assert all(torch.equal(got[k], masks[k]) and got[k].dtype == torch.bool for k in masks)
    for key in ("method", "sparsity", "seed", "arch", "dataset", "densities", "provenance"):
        assert key in meta
    assert meta["method"] == "erk" and meta["fingerprint"] is None
    assert meta["provenance"]["params"]["arch"] == "resnet20"
    assert not list(path.parent.glob(".*tmp*"))  # no temporary left behind
    got2, _ = load_mask(path)  # without a model: no validation, still readable
    assert set(got2) == set(masks)


def test_truncated_and_garbage_files(saved, tmp_path):
    path, _, m = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MaskError, match="cut.safetensors"):
        load_mask(cut, m)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(MaskError, match="junk.safetensors"):
        load_mask(junk)
    with pytest.raises(MaskError, match="nothere.safetensors"):
        load_mask(tmp_path / "nothere.safetensors")


def test_mismatched_model(saved, tmp_path):
    path, masks, _ = saved
    with pytest.raises(MaskError, match=r"mask.safetensors.*conv1.weight.*\[4, 3, 3, 3\].*\[8, 3"):
        load_mask(path, model(width=0.5))
    with pytest.raises(MaskError, match=r"mask.safetensors: no mask for .*layer1.3.conv1.weight"):
        load_mask(path, build_model("resnet32", 10, 3, 8, 0.25, seed=0))
    extra = {**masks, "head.weight": torch.ones(2, 2, dtype=torch.bool)}
    p3 = tmp_path / "extra.safetensors"
    save_mask(p3, extra, {"method": "erk"})
    with pytest.raises(MaskError, match=r"extra.safetensors.*head.weight.*lacks"):
        load_mask(p3, model())
    missing = dict(masks)
    missing.pop("linear.weight")
    p2 = tmp_path / "missing.safetensors"
    save_mask(p2, missing, {"method": "erk"})
    with pytest.raises(MaskError, match=r"missing.safetensors.*linear.weight"):
        load_mask(p2, model())


def test_non_bool_and_no_meta_rejected(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "float.safetensors"
    save_file({"conv1.weight": torch.ones(2, 2)}, str(p), metadata={"snntopo": "{}"})
    with pytest.raises(MaskError, match="float.safetensors.*bool"):
        load_mask(p)
    q = tmp_path / "nometa.safetensors"
    save_file({"conv1.weight": torch.ones(2, 2, dtype=torch.bool)}, str(q))
    with pytest.raises(MaskError, match="nometa.safetensors"):
        load_mask(q)


def test_apply_mask(saved):
    _, masks, m = saved
    apply_mask(m, masks)
    for name, w in prunable_parameters(m):
        assert torch.all(w[~masks[name]] == 0)
        assert int((w != 0).sum()) == int(masks[name].sum())


def test_cli_data_free(tmp_path, capsys):
    out = tmp_path / "mask.safetensors"
    args = ["mask", "--arch", "resnet20", "--dataset", "cifar10", "--method", "synflow"]
    rc = main([*args, "--sparsity", "0.9", "--seed", "1", "--width", "0.25", "--out", str(out)])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(line["realised_sparsity"] - 0.9) < 1e-4
    masks, meta = load_mask(out, build_model("resnet20", 10, 3, 32, 0.25))
    assert meta["arch"] == "resnet20" and meta["seed"] == 1 and meta["method"] == "synflow"


def test_cli_data_method_on_demo_data(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "mask.safetensors"
    args = ["mask", "--arch", "resnet20", "--dataset", "digits", "--method", "snip"]
    rc = main([*args, "--sparsity", "0.8", "--seed", "0", "--width", "0.25", "--out", str(out)])
    assert rc == 0
    _, meta = load_mask(out, build_model("resnet20", 10, 3, 16, 0.25))
    assert meta["fingerprint"] and meta["data_samples"] == 128 and meta["input_size"] == 16
