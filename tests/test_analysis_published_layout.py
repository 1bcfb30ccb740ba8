"""The paper-layout loader on the irregularities of the authors' complete published set, built
synthetically from the trimmed CIFAR-10 copy: a method column named ``pruning``, a BGE file with
only the paper code's short metric names, extra models and DST methods, duplicate rows, the
``ramanunjan_results/`` folder, a second data set, and an unusable file."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.run import run_analysis
from snntopo.analysis.tables import load_tables
from snntopo.errors import TableError

DATA = Path(__file__).parent / "data" / "paper_cifar10"
SHORT = {"nei_one_hop": "1-hop_nei", "strenght_all": "avg_node_strength",
         "coreness_all": "k-core", "spectral_gap_weighted_undirected": "spectral_gap"}  # fmt: skip


def write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        df.to_csv(fh, index=False)


def published_like(root: Path) -> Path:
    shutil.copytree(DATA, root)
    (root / "ramanujan").rename(root / "ramanunjan_results")
    f = root / "graph_metrics/rolled/rolled-CIFAR-10-CONV-6.csv.gz"
    df = pd.read_csv(f)
    keep = ["accuracy", "pruning_algorithm", "sparsity", "model", "dataset", "seed", "layer_id",
            "layer_name", "layer_sparsity", *SHORT]  # fmt: skip
    write(df[keep].rename(columns={**SHORT, "pruning_algorithm": "pruning"}), f)
    u = root / "graph_metrics/unrolled/unrolled-CIFAR-10.csv.gz"
    df = pd.read_csv(u)
    extra = pd.concat(
        [df.iloc[:5].assign(model="MobileNetV2"), df.iloc[:5].assign(pruning="rigl"), df.iloc[:7]]
    )
    write(pd.concat([df, extra], ignore_index=True), u)
    # a second data set: every table copied with its accuracy scaled the same way
    for p in sorted(root.rglob("*CIFAR-10*.csv.gz")):
        d = pd.read_csv(p).assign(dataset="CIFAR-100")
        d["accuracy"] = (d["accuracy"] * 0.7).round(6)
        write(d, p.with_name(p.name.replace("CIFAR-10", "CIFAR-100")))
    write(pd.DataFrame({"model": ["CONV-6"], "accuracy": [0.5]}),
          root / "graph_metrics/rolled/rolled-CIFAR-10-Broken.csv.gz")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return published_like(tmp_path_factory.mktemp("pub") / "graph_data")


def test_every_file_is_read_and_what_was_normalised_is_recorded(root: Path) -> None:
    t = load_tables(root)
    assert t.networks.groupby("dataset").size().to_dict() == {"cifar10": 210, "cifar100": 210}
    norm = pd.DataFrame(t.normalised)
    conv = norm[norm.file == "graph_metrics/rolled/rolled-CIFAR-10-CONV-6.csv.gz"]
    assert "pruning" in set(conv.column)
    assert {"1-hop_nei", "avg_node_strength", "k-core", "spectral_gap"} <= set(conv.column)
    lack = conv[conv.column.str.endswith("metric columns")]
    assert len(lack) == 1 and "assortativity" in lack.action.iloc[0]
    assert any(norm.action.str.contains("exact duplicate rows"))
    assert any(norm.column == "(folder)")
    assert t.skipped == [
        {"file": "graph_metrics/rolled/rolled-CIFAR-10-Broken.csv.gz",
         "reason": "no method column (pruning_algorithm or pruning)"}
    ]  # fmt: skip
    assert "mge" in t.features and len(t.features["mge"]) == 2 * 206
    assert set(t.networks.method) == {"uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"}


def test_short_names_land_in_the_long_columns(root: Path) -> None:
    t = load_tables(root)
    raw = pd.read_csv(DATA / "graph_metrics/rolled/rolled-CIFAR-10-CONV-6.csv.gz")
    one = raw[(raw.pruning_algorithm == "erk") & (raw.sparsity == 0.9) & (raw.seed == 2)]
    f = t.features["rolled"].set_index(["dataset", "arch", "method", "sparsity", "seed"])
    row = f.loc[("cifar10", "conv6", "erk", 0.9, 2)]
    assert row["mean_nei_one_hop"] == pytest.approx(one["nei_one_hop"].mean())
    assert np.isnan(row["mean_assortativity"])  # absent from that file: NaN, not invented
    ram = t.ramanujan_layers
    conv = ram[(ram.arch == "conv6") & (ram.dataset == "cifar10")]
    assert np.allclose(
        conv["weighted_spectral_gap"].to_numpy(),
        raw["spectral_gap_weighted_undirected"].to_numpy(),
        equal_nan=True,
    )


def test_strict_mode_stops_at_the_unusable_file(root: Path) -> None:
    with pytest.raises(TableError, match="Broken.*no method column"):
        load_tables(root, strict=True)


@pytest.mark.slow
def test_analysis_runs_per_dataset_and_pooled(root: Path, tmp_path: Path) -> None:
    params = {"n_splits": 2, "n_repeats": 1, "n_permutation_repeats": 1, "models": ["ridge"],
              "figures": False}  # fmt: skip
    paths = run_analysis(root, tmp_path / "out", params)
    reg = pd.read_csv(paths["regression"])
    assert set(reg.scope) == {"pooled", "dataset", "arch", "sparsity"}
    assert set(reg.loc[reg.scope == "dataset", "group"]) == {"cifar10", "cifar100"}
    assert "cifar100/conv6" in set(reg.loc[reg.scope == "arch", "group"])
    lomo = pd.read_csv(paths["lomo"])
    assert {(d, a) for d, a in zip(lomo.dataset, lomo.arch, strict=True)} == {
        (d, a) for d in ("cifar10", "cifar100") for a in ("conv6", "resnet20")}  # fmt: skip
    assert set(lomo.predictor) == {"mge", "sparsity", "layer_density"}
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "rolled-CIFAR-10-Broken.csv.gz" in md and "no method column" in md
    assert md.index("1. Ranking") < md.index("3. Are Ramanujan")
    assert "sparsity floor" in md
    # the CIFAR-100 copy keeps every method's order (accuracy x 0.7): the naive order from the
    # other data set is exact in every cell, in ranking.csv and in the transfer table
    rank = pd.read_csv(paths["ranking"])
    nv = rank[rank.feature_set == "naive:dataset"]
    assert len(nv) == 2 * 2 * 5 and np.allclose(nv["kendall_tau"].dropna(), 1.0)
    tr = pd.read_csv(paths["transfer"])
    assert set(zip(tr.fit_dataset, tr.pred_dataset, strict=True)) == {
        ("cifar10", "cifar100"), ("cifar100", "cifar10")}  # fmt: skip
    naive = tr[tr.feature_set == "naive"]
    assert np.allclose(naive["kendall_tau"].dropna(), 1.0)
    assert not tr["beats_naive"].any()  # nothing beats a perfect order
    assert md.index("## Verdict") < md.index("## Protocol")
    assert "Transfer: fit on one data set" in md
