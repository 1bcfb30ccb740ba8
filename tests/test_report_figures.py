"""The field's figures in report.html: what the accuracy-vs-sparsity, training-curve and
layer-density figures draw equals the mean and spread computed here, independently, from the
train.json files and the masks' metadata; the page's first screen carries the run's metadata and,
for a smoke run, a visible warning."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from safetensors.numpy import save_file

from snntopo.plots import training as T
from snntopo.plots.captions import FIELD_FIGURES
from snntopo.stages.report import code_revision, make_report

METHODS = ["snip", "erk"]
SPARSITIES = [0.5, 0.9]
SEEDS = [0, 1, 2]
LAYERS = ["conv1.weight", "layer1.0.conv1.weight", "fc.weight"]


def _write_runs(root: Path, dataset="cifar10", epochs=3, eval_every=1) -> list[Path]:
    """train.json files of a small grid with arbitrary but known numbers."""
    rng = np.random.default_rng(7)
    paths = []
    grid = [(m, s) for m in METHODS for s in SPARSITIES] + [("dense", 0.0)]
    for m, s in grid:
        for seed in SEEDS:
            hist = []
            for e in range(1, epochs + 1):
                evaluated = e == epochs or e % eval_every == 0
                hist.append({"epoch": e, "loss": float(rng.uniform(0.1, 2.5)),
                             "train_acc": float(rng.uniform()),
                             "test_acc": float(rng.uniform()) if evaluated else None,
                             "lr": 0.1, "images_per_s": 100.0, "seconds": 1.0})  # fmt: skip
            summary = {
                "dataset": dataset, "arch": "resnet20", "method": m, "sparsity": s,
                "seed": seed, "accuracy": hist[-1]["test_acc"], "history": hist,
                "device": "cpu", "torch_version": "9.9.9",
                "training": {"epochs": epochs, "lr": 0.1, "momentum": 0.9,
                             "weight_decay": 1e-4, "batch_size": 128, "milestones": [2],
                             "gamma": 0.1, "nesterov": False, "limit_batches": 0},
                "provenance": {"snntopo_version": "0.1.0", "python": "3.11.9"},
            }  # fmt: skip
            p = root / dataset / "resnet20" / m / f"s{s:g}" / f"seed{seed}" / "train.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(summary))
            paths.append(p)
    return paths


def _write_masks(root: Path) -> tuple[list[Path], dict]:
    """Mask files whose metadata records per-layer densities (the tensors do not matter here)."""
    rng = np.random.default_rng(3)
    paths, truth = [], {}
    for m in METHODS:
        for s in SPARSITIES:
            for seed in SEEDS:
                dens = {name: float(rng.uniform(0.01, 1.0)) for name in LAYERS}
                truth[(m, s, seed)] = dens
                meta = {"dataset": "cifar10", "arch": "resnet20", "method": m, "sparsity": s,
                        "seed": seed, "densities": dens}  # fmt: skip
                p = root / m / f"s{s:g}" / f"seed{seed}" / "mask.safetensors"
                p.parent.mkdir(parents=True, exist_ok=True)
                save_file({"x": np.ones(1, dtype=bool)}, str(p),
                          metadata={"snntopo": json.dumps(meta)})  # fmt: skip
                paths.append(p)
    return paths, truth


def _from_json(paths, method, sparsity):
    accs = []
    for p in paths:
        s = json.loads(Path(p).read_text())
        if s["method"] == method and float(s["sparsity"]) == sparsity:
            accs.append(s["accuracy"])
    return statistics.mean(accs), statistics.stdev(accs)


def test_accuracy_vs_sparsity_draws_mean_and_sd_over_seeds(tmp_path):
    paths = _write_runs(tmp_path)
    runs, _ = T.load_trainings(paths)
    fig = T.accuracy_sparsity_figure(T.accuracy_by_sparsity(runs), METHODS)
    ax = fig.axes[0]
    assert ax.get_title() == "cifar10 / resnet20"
    drawn = 0
    for cont in ax.containers:  # one errorbar container per method
        method = cont.get_label()
        line = cont.lines[0]
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
            s = round(1 - x, 10)
            mean, sd = _from_json(paths, method, s)
            assert y == pytest.approx(mean, abs=1e-12)
            drawn += 1
        # the error bars span mean +- sd
        (bars,) = [c for c in cont.lines[2] if isinstance(c, LineCollection)]
        for seg in bars.get_segments():
            s = round(1 - seg[0, 0], 10)
            mean, sd = _from_json(paths, method, s)
            assert sorted(seg[:, 1]) == pytest.approx([mean - sd, mean + sd], abs=1e-12)
    assert drawn == len(METHODS) * len(SPARSITIES)
    dense_mean, dense_sd = _from_json(paths, "dense", 0.0)
    (dense,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("dense")]
    assert list(dense.get_ydata()) == pytest.approx([dense_mean] * 2, abs=1e-12)
    (band,) = ax.patches  # the dense baseline's +-1 sd band
    assert [band.get_y(), band.get_y() + band.get_height()] == pytest.approx(
        [dense_mean - dense_sd, dense_mean + dense_sd], abs=1e-12
    )
    assert "n=3" in dense.get_label()
    # sparser to the right, ticks named by sparsity
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50%", "90%"]
    assert ax.get_xlim()[0] > ax.get_xlim()[1]


def test_training_curves_are_the_seed_means_of_the_histories(tmp_path):
    paths = _write_runs(tmp_path, epochs=4, eval_every=2)
    _, hist = T.load_trainings(paths)
    fig = T.training_curves_figure(T.mean_curves(hist), METHODS)
    data = T.figure_arrays(fig)
    loaded = [json.loads(Path(p).read_text()) for p in paths]
    for s in SPARSITIES:
        title = f"cifar10 / resnet20, sparsity {100 * s:g}%"
        loss_ax = [ax for ax in fig.axes if ax.get_title() == title][0]
        acc_ax = fig.axes[list(fig.axes).index(loss_ax) + len(SPARSITIES)]
        for m in [*METHODS, "dense"]:
            runs = [r for r in loaded if r["method"] == m and r["sparsity"] in (s, 0.0)]
            want_loss = [statistics.mean(r["history"][e]["loss"] for r in runs) for e in range(4)]
            got = {ln.get_label(): ln for ln in loss_ax.get_lines()}[m]
            assert list(got.get_xdata()) == [1, 2, 3, 4]
            assert list(got.get_ydata()) == pytest.approx(want_loss, abs=1e-12)
            # test accuracy only on the evaluated epochs (2 and 4)
            got = {ln.get_label(): ln for ln in acc_ax.get_lines()}[m]
            assert list(got.get_xdata()) == [2, 4]
            want = [statistics.mean(r["history"][e]["test_acc"] for r in runs) for e in (1, 3)]
            assert list(got.get_ydata()) == pytest.approx(want, abs=1e-12)
    assert data  # every panel has labelled lines


def test_layer_density_profile_is_the_seed_mean_of_the_masks(tmp_path):
    paths, truth = _write_masks(tmp_path)
    fig = T.layer_density_figure(T.layer_density_profile(T.load_mask_densities(paths)), METHODS)
    for s in SPARSITIES:
        (ax,) = [
            a
            for a in fig.axes
            if a.get_title().startswith(f"cifar10 / resnet20, sparsity {100 * s:g}%")
        ]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "layer1.0.conv1", "fc"]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for m in METHODS:
            want = [statistics.mean(truth[(m, s, seed)][n] for seed in SEEDS) for n in LAYERS]
            assert list(lines[m].get_ydata()) == pytest.approx(want, abs=1e-12)
            assert list(lines[m].get_xdata()) == [0, 1, 2]


def _networks_csv(path: Path, train_paths) -> Path:
    rows = []
    for p in train_paths:
        s = json.loads(Path(p).read_text())
        if s["method"] != "dense":
            rows.append({k: s[k] for k in ("dataset", "arch", "method", "sparsity", "seed",
                                           "accuracy")} | {"dense_accuracy": 0.9})  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("dataset", "epochs", "smoke"), [("digits", 3, True),
                                                          ("cifar10", 160, False)])  # fmt: skip
def test_report_first_screen_has_metadata_and_smoke_warning(tmp_path, dataset, epochs, smoke):
    paths = _write_runs(tmp_path / "r", dataset=dataset, epochs=epochs, eval_every=epochs)
    masks, _ = _write_masks(tmp_path / "m")
    summary = tmp_path / "analysis" / "summary.html"
    summary.parent.mkdir()
    summary.write_text("<html></html>")
    out = tmp_path / "report.html"
    figs = {n: str(tmp_path / "figures" / f"{n}.png") for n in FIELD_FIGURES}
    grid = {"datasets": [dataset], "architectures": ["resnet20"], "methods": METHODS,
            "sparsities": SPARSITIES, "seeds": SEEDS}  # fmt: skip
    make_report(str(summary), [], [], str(_networks_csv(tmp_path / "n.csv", paths)), str(out),
                grid, train_summaries=[str(p) for p in paths], masks=[str(p) for p in masks],
                out_figures=figs)  # fmt: skip
    page = out.read_text()
    for f in figs.values():
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # first screen: title, (warning), metadata table, before any figure
    head = page[: page.index("<img")]
    meta = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", head))
    assert meta["versions"] == "snntopo 0.1.0, torch 9.9.9, Python 3.11.9"
    assert meta["training recipe"].startswith(f"{epochs} epochs, SGD lr 0.1, momentum 0.9")
    assert meta["networks trained"] == str(len(paths))
    assert meta["trained on"] == "cpu"
    assert re.fullmatch(r"[0-9a-f]{12}( \+ uncommitted changes)?|unknown.*", meta["code revision"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", meta["report made"])
    assert ("Smoke run, not a study" in head) is smoke
    if smoke:
        assert "digits/resnet20: 3 epochs (the paper&#x27;s recipe: 160)" in head
        assert "digits is a toy data set (1,437 training images)" in head
    # the three figures are embedded, accuracy vs sparsity first
    alts = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="(\w+)"', page)
    assert alts[:1] == ["accuracy_sparsity"] and {"training_curves", "layer_density"} <= set(alts)


def test_code_revision_names_the_commit_or_says_unknown(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert code_revision(repo) == head[:12]
    (repo / "a.txt").write_text("b")
    assert code_revision(repo) == head[:12] + " + uncommitted changes"
    assert code_revision(tmp_path / "nowhere").startswith("unknown")
