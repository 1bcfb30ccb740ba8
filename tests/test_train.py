"""Masked training: pruned weights stay exactly zero, runs are deterministic, resume is exact,
errors are clear."""

from __future__ import annotations

import logging

import pytest
import torch

import snntopo.train as train_mod
import snntopo.train.loop as loop_mod
from snntopo.data import TensorImageDataset
from snntopo.errors import CheckpointError, ConfigError, DeviceError, MaskError
from snntopo.models import MODELS, build_model, prunable_parameters
from snntopo.train import (
    TrainConfig,
    evaluate,
    paper_recipe,
    prepare_masks,
    resolve_device,
    train_masked,
)


def fake_data(n: int, size: int = 16, classes: int = 10, seed: int = 0) -> TensorImageDataset:
    """CIFAR-shaped random images whose label is a function of the mean of channel 0 (learnable)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.bucketize(x[:, 0].mean(dim=(1, 2)), torch.linspace(-0.2, 0.2, classes - 1))
    return TensorImageDataset(x, y, pad=2)


def random_masks(model: torch.nn.Module, density: float = 0.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model)}


SMALL = {
    "epochs": 1,
    "batch_size": 8,
    "limit_batches": 3,
    "milestones": [1],
    "weight_decay": 5e-4,
    "device": "cpu",
}


def pruned_values(model, masks):
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach()[~m].flatten() for n, m in masks.items()])


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("arch", MODELS.names())
def test_masked_weights_stay_exactly_zero(arch):
    model = build_model(arch, num_classes=10, input_size=16, width=0.25, seed=0)
    masks = random_masks(model)
    before = state(model)
    res = train_masked(model, masks, fake_data(48), fake_data(16, seed=1), SMALL, seed=0)
    vals = pruned_values(model, masks)
    assert vals.numel() > 0 and torch.count_nonzero(vals) == 0
    # Unpruned weights did train, biases/BN too (they are not frozen).
    params = dict(model.named_parameters())
    for name, m in masks.items():
        assert not torch.equal(params[name].detach()[m], before[name][m]), name
    if arch == "conv6":  # conv biases are trained, not frozen at zero like the reference's
        assert torch.count_nonzero(params["features.0.bias"]) > 0
    assert res.params["prunable_nonzero"] <= sum(int(m.sum()) for m in masks.values())
    assert 0.0 <= res.accuracy <= 1.0
    assert len(res.history) == 1


def test_gradients_are_masked_not_only_weights():
    """Momentum buffers of pruned weights stay zero: the gradient is masked before the step."""
    model = build_model("resnet20", input_size=16, width=0.25, seed=0)
    masks = random_masks(model, 0.3)
    cfg = dict(SMALL, weight_decay=0.0)
    seen = {}
    orig_step = torch.optim.SGD.step

    def spy_step(self, *a, **k):
        params = dict(model.named_parameters())
        for name, m in masks.items():
            g = params[name].grad
            seen[name] = g is not None and torch.count_nonzero(g[~m]) == 0
        return orig_step(self, *a, **k)

    torch.optim.SGD.step = spy_step
    try:
        train_masked(model, masks, fake_data(32), fake_data(8), cfg, seed=0)
    finally:
        torch.optim.SGD.step = orig_step
    assert seen and all(seen.values())


def test_mask_gradient_and_apply_helpers():
    p = torch.nn.Parameter(torch.ones(2, 3))
    m = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    p.grad = torch.full((2, 3), 2.0)
    train_mod.mask_gradients([(p, m)])
    assert torch.equal(p.grad, 2 * m)
    train_mod.apply_masks([(p, m)])
    assert torch.equal(p.detach(), m)


def test_deterministic_given_seed():
    def run(seed):
        model = build_model("conv6", input_size=16, width=0.125, seed=0)
        masks = random_masks(model)
        res = train_masked(model, masks, fake_data(40), fake_data(16), SMALL, seed=seed)
        return state(model), res.accuracy

    a, acc_a = run(3)
    b, acc_b = run(3)
    assert_same_state(a, b)
    assert acc_a == acc_b
    c, _ = run(4)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    cfg = dict(SMALL, epochs=2, limit_batches=4, milestones=[1])
    train_set, test_set = fake_data(48), fake_data(16, seed=1)

    def fresh():
        model = build_model("resnet20", input_size=16, width=0.25, seed=1)
        return model, random_masks(model, 0.4, seed=2)

    model, masks = fresh()
    full = train_masked(model, masks, train_set, test_set, cfg, seed=5)
    want = state(model)

    # Interrupted run: "killed" right after the epoch-1 checkpoint was written.
    ckpt = tmp_path / "ckpt.pt"
    orig = loop_mod._save_checkpoint

    def save_then_die(path, st):
        orig(path, st)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_mod, "_save_checkpoint", save_then_die)
    model, masks = fresh()
    with pytest.raises(KeyboardInterrupt):
        train_masked(model, masks, train_set, test_set, cfg, seed=5, checkpoint_path=ckpt)
    monkeypatch.setattr(loop_mod, "_save_checkpoint", orig)
    assert ckpt.exists()

    # Some unrelated RNG use in between must not matter.
    torch.rand(1000)
    lines: list[str] = []
    model, masks = fresh()
    res = train_masked(
        model, masks, train_set, test_set, cfg, seed=5, checkpoint_path=ckpt, log=lines.append
    )
    assert any("resuming from epoch 1" in s for s in lines)
    assert res.resumed_from == 1
    assert_same_state(state(model), want)
    assert res.accuracy == full.accuracy
    assert [h["loss"] for h in res.history] == [h["loss"] for h in full.history]

    # A finished checkpoint: nothing left to train, same answer.
    model, masks = fresh()
    again = train_masked(model, masks, train_set, test_set, cfg, seed=5, checkpoint_path=ckpt)
    assert again.accuracy == full.accuracy
    assert_same_state(state(model), want)


def test_corrupt_checkpoint_raises_naming_file(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"\x00garbage")
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        train_masked(model, None, fake_data(16), fake_data(8), SMALL, checkpoint_path=ckpt)


def test_checkpoint_of_other_run_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    train_masked(model, None, fake_data(16), fake_data(8), SMALL, seed=0, checkpoint_path=ckpt)
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    with pytest.raises(CheckpointError, match="different config"):
        train_masked(model, None, fake_data(16), fake_data(8), SMALL, seed=1, checkpoint_path=ckpt)


def test_log_file_has_epoch_lines(tmp_path, caplog):
    log = tmp_path / "logs" / "train.log"
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    with caplog.at_level(logging.INFO, logger="snntopo.train"):
        res = train_masked(model, None, fake_data(16), fake_data(8), dict(SMALL, epochs=2), log=log)
    text = log.read_text()
    for word in ("epoch 1/2", "epoch 2/2", "loss", "train_acc", "test_acc", "img/s", "lr"):
        assert word in text
    assert "epoch 2/2" in caplog.text
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert res.history[0]["lr"] == pytest.approx(0.1)
    assert res.history[1]["lr"] == pytest.approx(0.01)  # milestone [1], gamma 0.1


def test_zero_epochs_evaluates_initial_weights():
    model = build_model("conv6", input_size=16, width=0.125, seed=0)
    res = train_masked(model, None, fake_data(8), fake_data(16), dict(SMALL, epochs=0))
    assert res.history == [] and 0.0 <= res.accuracy <= 1.0


def test_evaluate_counts_top1():
    class Const(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 10)
            out[:, 3] = 1.0
            return out

    ds = fake_data(50)
    loader = torch.utils.data.DataLoader(ds, batch_size=7)
    want = float((ds.targets == 3).float().mean())
    assert evaluate(Const(), loader, "cpu") == pytest.approx(want)


def test_config_validation():
    cfg = TrainConfig.from_dict({"epochs": 3, "milestones": [1, 2], "amp": "off"})
    assert cfg.milestones == (1, 2) and cfg.lr == 0.1 and cfg.batch_size == 128
    assert TrainConfig.from_dict(None) == TrainConfig()
    assert TrainConfig.from_dict({"channels_last": "off"}).channels_last is False
    assert TrainConfig.from_dict({"channels_last": "on"}).channels_last is True
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="train.epochs"):
        TrainConfig.from_dict({"epochs": "3"})
    with pytest.raises(ConfigError, match="milestones"):
        TrainConfig.from_dict({"milestones": [120, 80]})
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig.from_dict({"amp": "fp8"})
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig.from_dict({"lr": -1})
    assert paper_recipe("tinyimagenet", "conv6")["milestones"] == [20, 60, 80]
    assert paper_recipe("cifar10", "wrn28_2")["weight_decay"] == 5e-4


def test_mask_validation():
    model = build_model("resnet20", input_size=16, width=0.25)
    with pytest.raises(MaskError, match="nope"):
        prepare_masks(model, {"nope": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(MaskError, match="conv1.weight"):
        prepare_masks(model, {"conv1.weight": torch.ones(2, 2, dtype=torch.bool)})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_device_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError):
        resolve_device("not-a-device")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_amp_channels_last_keeps_masks():
    model = build_model("wrn28_2", input_size=16, width=0.25, seed=0)
    masks = random_masks(model)
    res = train_masked(
        model, masks, fake_data(64), fake_data(16), dict(SMALL, device="cuda"), seed=0
    )
    assert res.device.startswith("cuda")
    assert torch.count_nonzero(pruned_values(model, masks)) == 0


def test_trains_on_cifar_files_through_torchvision_loader(tmp_path):
    """End to end through the real on-disk layout (tiny fake CIFAR-10 batches)."""
    from test_data import fixture_sums, write_fake_cifar

    from snntopo.data import load_dataset

    sums = fixture_sums(write_fake_cifar(tmp_path, n_train=20, n_test=6))
    train_set = load_dataset("cifar10", tmp_path, train=True, checksums=sums)
    test_set = load_dataset("cifar10", tmp_path, train=False, checksums=sums)
    model = build_model("resnet20", width=0.25, seed=0)
    masks = random_masks(model)
    res = train_masked(model, masks, train_set, test_set, dict(SMALL, epochs=1), seed=0)
    assert torch.count_nonzero(pruned_values(model, masks)) == 0
    assert res.history[0]["images_per_s"] > 0


@pytest.mark.slow
def test_learns_digits():
    """A sparse ResNet-20 (width 1/4) learns the digits demo well above chance in 3 epochs."""
    from snntopo.data import load_dataset

    model = build_model("resnet20", input_size=16, width=0.25, seed=0)
    masks = random_masks(model, 0.5)
    cfg = {"epochs": 3, "batch_size": 64, "lr": 0.05, "milestones": [2], "device": "cpu"}
    res = train_masked(
        model, masks, load_dataset("digits", train=True), load_dataset("digits", train=False), cfg
    )
    assert res.accuracy > 0.5
    assert torch.count_nonzero(pruned_values(model, masks)) == 0


def test_train_mode_named_tuple_output_trains_on_the_logits():
    """A model whose train-mode output is a named tuple (GoogLeNet's logits and auxiliary logits):
    training reads the logits; the masked weights stay zero and the inference network learns."""
    from collections import namedtuple

    from torch import nn

    Out = namedtuple("Out", ["logits", "aux_logits"])

    class AuxNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)
            self.aux = nn.Linear(4, 10)

        def forward(self, x):
            h = torch.relu(self.conv(x)).mean((2, 3))
            return Out(self.fc(h), self.aux(h)) if self.training else self.fc(h)

    torch.manual_seed(0)
    model = AuxNet()
    masks = random_masks(model)
    before = state(model)
    res = train_masked(model, masks, fake_data(48), fake_data(16, seed=1), SMALL, seed=0)
    assert torch.count_nonzero(pruned_values(model, masks)) == 0
    assert not torch.equal(model.fc.weight.detach(), before["fc.weight"])
    keep = masks["aux.weight"]
    assert torch.equal(model.aux.weight.detach()[keep], before["aux.weight"][keep])  # no loss
    assert 0.0 <= res.accuracy <= 1.0
