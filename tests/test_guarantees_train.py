"""Guarantees, lost work: a corrupt mask never costs a finished training (the final state is kept
beside the checkpoint, keyed by the mask's bits, and retraining the same mask is instant), one
network's training never runs twice at once (a lock on its checkpoint, tested with two
processes), earlier attempts' log lines survive a rerun, and full disks, NaN weights and
unwritable outputs end in one line."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_job import TINY_DIGITS_JOB

from snntopo.errors import MaskError
from snntopo.jobs import run_job
from snntopo.stages.mask import make_mask
from snntopo.stages.train import TrainingBusy, train_network, training_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")
PARAMS = {**TINY_DIGITS_JOB, "method": "erk", "sparsity": 0.9, "seed": 0}
TRAINING = {"epochs": 1, "batch_size": 256, "milestones": [1], "lr": 0.05, "limit_batches": 2}


def _net(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "digits" / "resnet20" / "erk" / "s0.9" / "seed0"
    return {
        "mask": str(d / "mask.safetensors"),
        "init": str(d / "init.safetensors"),
        "model": str(d / "model.safetensors"),
        "summary": str(d / "train.json"),
        "checkpoint": str(d / "checkpoint.pt"),
    }


def _make_mask(p: dict[str, str], tmp_path: Path) -> None:
    make_mask({**PARAMS, "data_root": str(tmp_path)}, p["mask"], p["init"])


def _train(p: dict[str, str], tmp_path: Path, **training) -> None:
    params = {
        **PARAMS,
        "data_root": str(tmp_path),
        "training": {**TRAINING, **training},
    }
    params.pop("pai")
    train_network(params, p["mask"], p["model"], p["summary"], p["checkpoint"])


def test_corrupt_mask_never_costs_the_finished_training(tmp_path, caplog):
    p = _net(tmp_path)
    _make_mask(p, tmp_path)
    _train(p, tmp_path)
    trained = Path(p["model"]).read_bytes()
    summary = json.loads(Path(p["summary"]).read_text())
    keyed = list(Path(p["checkpoint"]).parent.glob("trained-*.safetensors"))
    assert len(keyed) == 1 and keyed[0].read_bytes() == trained

    # the rerun of a job: Snakemake deletes its outputs, then the job finds a corrupt mask
    Path(p["model"]).unlink()
    Path(p["summary"]).unlink()
    good_mask = Path(p["mask"]).read_bytes()
    Path(p["mask"]).write_bytes(good_mask[: len(good_mask) // 2])
    with pytest.raises(MaskError, match="unreadable mask file"):
        _train(p, tmp_path)
    assert keyed[0].read_bytes() == trained  # the finished training survived

    # the mask is recomputed (same bits, new file bytes: its metadata holds a timing)
    _make_mask(p, tmp_path)
    t0 = time.perf_counter()
    with caplog.at_level("INFO", logger="snntopo.stages"):
        _train(p, tmp_path)
    assert time.perf_counter() - t0 < 10
    assert "restored the finished training" in caplog.text
    assert Path(p["model"]).read_bytes() == trained
    assert json.loads(Path(p["summary"]).read_text()) == summary


@pytest.mark.slow
def test_another_recipe_retrains_and_supersedes_the_kept_state(tmp_path):
    p = _net(tmp_path)
    _make_mask(p, tmp_path)
    _train(p, tmp_path)
    first = list(Path(p["checkpoint"]).parent.glob("trained-*.safetensors"))
    _train(p, tmp_path, lr=0.01)
    second = list(Path(p["checkpoint"]).parent.glob("trained-*.safetensors"))
    assert len(second) == 1 and second != first
    assert json.loads(Path(p["summary"]).read_text())["training"]["lr"] == 0.01


def test_one_training_at_a_time_two_processes(tmp_path):
    p = _net(tmp_path)
    _make_mask(p, tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            f"sys.path.insert(0, {SRC!r})\n"
            "from snntopo.stages.train import training_lock\n"
            f"with training_lock({p['checkpoint']!r}):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingBusy, match=f"already being trained \\(pid {holder.pid} since"):
            _train(p, tmp_path)
        assert not Path(p["model"]).exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with the process (as after kill -9): training proceeds
    with training_lock(p["checkpoint"]):
        pass


@pytest.mark.slow
def test_earlier_attempts_log_lines_survive_the_rerun(tmp_path):
    p = _net(tmp_path)
    _make_mask(p, tmp_path)
    job_log = tmp_path / "logs" / "train.log"
    params = {**PARAMS, "data_root": str(tmp_path), "training": dict(TRAINING)}
    params.pop("pai")
    kwargs = dict(
        mask_path=p["mask"],
        out_model=p["model"],
        out_summary=p["summary"],
        checkpoint=p["checkpoint"],
    )
    run_job(train_network, str(job_log), params=params, **kwargs)
    first = job_log.read_text()
    assert "epoch 1/1 loss" in first
    job_log.unlink()  # Snakemake removes a rerun job's log
    params2 = {**params, "training": {**TRAINING, "lr": 0.02}}  # a new recipe: trains again
    run_job(train_network, str(job_log), params=params2, **kwargs)
    second = job_log.read_text()
    assert "earlier attempts of this training" in second
    epoch_lines = [ln for ln in second.splitlines() if "epoch 1/1 loss" in ln]
    assert len(epoch_lines) >= 2  # the first attempt's line (replayed) and this one's


def test_nan_weights_after_training_write_nothing(tmp_path, monkeypatch):
    from snntopo.errors import NonFiniteError
    from snntopo.train import loop

    p = _net(tmp_path)
    _make_mask(p, tmp_path)
    real = loop.train_masked

    def diverging(model, *a, **k):
        res = real(model, *a, **k)
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("inf")
        return res

    monkeypatch.setattr("snntopo.train.train_masked", diverging)
    with pytest.raises(NonFiniteError, match=r"training diverged: '.*' holds 1 NaN/Inf"):
        _train(p, tmp_path)
    assert not Path(p["model"]).exists() and not Path(p["summary"]).exists()
    assert Path(p["checkpoint"]).exists()  # the epochs done are kept


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import numpy as np

    from snntopo.encode.graph import Block, from_edges, save_graph
    from snntopo.stages.metrics import compute_metrics

    blocks = [Block("input", 0, 3, (3,)), Block("out", 3, 5, (2,))]
    g = from_edges(np.array([0, 1, 2]), np.array([3, 3, 4]), np.array([0.5, 1.0, 2.0]), blocks)
    save_graph(tmp_path / "g.npz", g)
    real_write = Path.write_text

    def full(self, *a, **k):
        if self.name.startswith(".local.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    log = tmp_path / "job.log"
    out = tmp_path / "m" / "local.json"
    with pytest.raises(SystemExit) as err:
        run_job(
            compute_metrics,
            str(log),
            family="local",
            graphs={"mge": str(tmp_path / "g.npz")},
            params={},
            out=str(out),
        )
    assert err.value.code == 1
    text = log.read_text()
    assert "no space left on device" in text and "Traceback" not in text
    assert "please report this as a bug" not in text
    assert list(out.parent.iterdir()) == []  # no temporary file left


def test_unwritable_output_stops_before_the_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ran = []
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit):
        run_job(lambda out: ran.append(out), str(log), out=str(blocker / "sub" / "o.json"))
    assert ran == []  # the work never started
    assert "cannot write to" in log.read_text() and "Traceback" not in log.read_text()
