"""Training you can watch: ``history.csv`` beside ``train.json`` holds the same per-epoch rows
(read back with the csv module, compared with the JSON), also when a kept final state is
restored instead of training; TensorBoard scalars go under the network's folder when a writer is
importable, and a missing ``tensorboard`` package is a warning, not a failure."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest
from tiny_job import TINY_DIGITS_JOB

from snntopo.stages.mask import make_mask
from snntopo.stages.train import train_network

PARAMS = {**TINY_DIGITS_JOB, "method": "erk", "sparsity": 0.9, "seed": 0}
# two epochs, the test set evaluated only after the second: epoch 1 has no test accuracy
TRAINING = {
    "epochs": 2,
    "batch_size": 256,
    "milestones": [1],
    "lr": 0.05,
    "limit_batches": 2,
    "eval_every": 2,
}


def _paths(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "digits" / "resnet20" / "erk" / "s0.9" / "seed0"
    names = ("mask", "init", "model", "summary", "history", "checkpoint")
    files = ("mask.safetensors", "init.safetensors", "model.safetensors", "train.json")
    files += ("history.csv", ".train/checkpoint.pt")
    return {n: d / f for n, f in zip(names, files, strict=True)}


def _train(p: dict[str, Path], tmp_path: Path, **kw) -> None:
    params = {**PARAMS, "data_root": str(tmp_path), "training": dict(TRAINING)}
    params.pop("pai")
    train_network(
        params,
        str(p["mask"]),
        str(p["model"]),
        str(p["summary"]),
        str(p["checkpoint"]),
        out_history=str(p["history"]),
        **kw,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_csv_is_history(csv_rows: list[dict[str, str]], history: list[dict]) -> None:
    assert len(csv_rows) == len(history) == TRAINING["epochs"]
    for row, h in zip(csv_rows, history, strict=True):
        assert set(row) == set(h)
        for key, value in h.items():
            if value is None:
                assert row[key] == ""
            elif isinstance(value, int):
                assert int(row[key]) == value
            else:
                assert float(row[key]) == value  # exact: the CSV keeps every digit


class _FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter; records what it is given."""

    made: list[_FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        _FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    mod = types.ModuleType("torch.utils.tensorboard")
    mod.SummaryWriter = _FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", mod)
    _FakeWriter.made = []
    return _FakeWriter


def test_history_csv_equals_train_json_and_tensorboard_gets_each_epoch(
    tmp_path, fake_tensorboard, caplog
):
    p = _paths(tmp_path)
    make_mask({**PARAMS, "data_root": str(tmp_path)}, str(p["mask"]), str(p["init"]))
    _train(p, tmp_path, tensorboard=True)
    history = json.loads(p["summary"].read_text())["history"]
    assert history[0]["test_acc"] is None and history[1]["test_acc"] is not None
    rows = _read_csv(p["history"])
    _assert_csv_is_history(rows, history)
    # the column order is the documented one
    assert list(rows[0])[:5] == ["epoch", "loss", "train_acc", "test_acc", "lr"]

    # live: one writer under the network's folder, one scalar per recorded value and epoch
    (writer,) = fake_tensorboard.made
    assert Path(writer.log_dir) == p["summary"].parent / "tensorboard" and writer.closed
    loss = [(v, s) for t, v, s in writer.scalars if t == "train/loss"]
    assert loss == [(h["loss"], h["epoch"]) for h in history]
    test = [(v, s) for t, v, s in writer.scalars if t == "test/accuracy"]
    assert test == [(history[1]["test_acc"], 2)]  # epoch 1 had no test evaluation

    # a rerun with the same mask and recipe restores the training: same CSV, events replayed
    csv_text = p["history"].read_text()
    for k in ("model", "summary", "history"):
        p[k].unlink()
    fake_tensorboard.made = []
    with caplog.at_level("INFO", logger="snntopo.stages"):
        _train(p, tmp_path, tensorboard=True)
    assert "restored the finished training" in caplog.text
    assert p["history"].read_text() == csv_text
    (replayed,) = fake_tensorboard.made
    assert [x for x in replayed.scalars if x[0] == "train/loss"] == [
        ("train/loss", h["loss"], h["epoch"]) for h in history
    ]


def test_tensorboard_without_the_package_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    p = _paths(tmp_path)
    make_mask({**PARAMS, "data_root": str(tmp_path)}, str(p["mask"]), str(p["init"]))
    with caplog.at_level("WARNING", logger="snntopo.train"):
        _train(p, tmp_path, tensorboard=True)
    assert "torch.utils.tensorboard cannot be imported" in caplog.text
    assert not (p["summary"].parent / "tensorboard").exists()
    _assert_csv_is_history(_read_csv(p["history"]), json.loads(p["summary"].read_text())["history"])
