"""The paper-layout loader and an end-to-end run on a trimmed copy of the paper's CIFAR-10 tables."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.run import run_analysis
from snntopo.analysis.tables import load_tables
from snntopo.cli.analyze import configure
from snntopo.errors import TableError

DATA = Path(__file__).parent / "data" / "paper_cifar10"


@pytest.fixture(scope="module")
def tables():
    return load_tables(DATA)


def test_paper_layout_is_detected_and_restricted_to_pai(tables) -> None:
    assert tables.source == "paper"
    n = tables.networks
    assert set(n["arch"]) == {"conv6", "resnet20"}
    assert set(n["method"]) == {"uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"}
    assert set(n["sparsity"]) == {0.6, 0.8, 0.9, 0.95, 0.98}
    assert n["dataset"].unique().tolist() == ["cifar10"]
    # 2 archs x 7 methods x 5 sparsities x 3 seeds, every network has rolled rows
    assert len(n) == 210
    assert len(tables.features["rolled"]) == 210
    # the unrolled CONV-6 table lacks 4 PaI runs (see spec: snip/synflow/prospr at 0.6)
    assert len(tables.features["mge"]) == 206


def test_sanity_numbers_from_the_spec(tables) -> None:
    n = tables.networks.set_index(["arch", "method", "sparsity", "seed"])["accuracy"]
    # spec F sanity values (seed 0)
    assert n[("resnet20", "uniform", 0.98, 0)] == pytest.approx(0.611, abs=5e-4)
    assert n[("conv6", "synflow", 0.98, 0)] == pytest.approx(0.871, abs=5e-4)


def test_bge_aggregate_is_the_layer_mean(tables) -> None:
    raw = pd.read_csv(DATA / "graph_metrics/rolled/rolled-CIFAR-10-Resnet-20.csv.gz")
    one = raw[(raw.pruning_algorithm == "snip") & (raw.sparsity == 0.9) & (raw.seed == 1)]
    agg = tables.features["rolled"].set_index(["arch", "method", "sparsity", "seed"])
    row = agg.loc[("resnet20", "snip", 0.9, 1)]
    assert row["mean_avg_degree_all"] == pytest.approx(one["avg_degree_all"].mean())
    assert row["mean_assortativity"] == pytest.approx(one["assortativity"].mean())  # NaN skipped


def test_ramanujan_rows_get_the_method_by_position(tables) -> None:
    ram = tables.ramanujan_layers
    raw_r = pd.read_csv(DATA / "ramanujan/CONV-6/rolled-CIFAR-10-CONV-6.csv.gz")
    raw_b = pd.read_csv(DATA / "graph_metrics/rolled/rolled-CIFAR-10-CONV-6.csv.gz")
    conv = ram[ram.arch == "conv6"].reset_index(drop=True)
    assert len(conv) == len(raw_r)
    assert (conv["method"].to_numpy() == raw_b["pruning_algorithm"].to_numpy()).all()
    assert np.allclose(conv["layer_density"], raw_r["layer_sparsity"])
    assert np.allclose(
        conv["weighted_spectral_gap"], raw_b["spectral_gap_weighted_undirected"], equal_nan=True
    )


def test_misaligned_ramanujan_table_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    shutil.copytree(DATA, root)
    f = root / "ramanujan/Resnet-20/rolled-CIFAR-10-Resnet-20.csv.gz"
    df = pd.read_csv(f)
    df = pd.concat([df.iloc[1:], df.iloc[:1]], ignore_index=True)  # shift by one row
    with gzip.open(f, "wt") as fh:
        df.to_csv(fh, index=False)
    with pytest.raises(TableError, match=r"rolled-CIFAR-10-Resnet-20.*(line up|rows)"):
        load_tables(root, strict=True)


@pytest.mark.slow
def test_end_to_end_on_paper_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = run_analysis(DATA, out, {"n_splits": 3, "n_repeats": 1, "n_permutation_repeats": 2})
    for name in ("regression", "importance", "ranking", "ramanujan_density"):
        assert paths[name].exists()
        assert len(pd.read_csv(paths[name])) > 0
    reg = pd.read_csv(paths["regression"])
    assert (reg["target"] == "accuracy").all()  # the paper's tables have no dense baselines
    assert set(reg["feature_set"]) >= {"mge", "rolled", "rolled-channel", "ramanujan", "density"}
    assert set(reg["scope"]) == {"pooled", "arch", "sparsity"}
    # each config's 3 seeds are held out together: 206 networks, of which 2 configs have < 3
    assert (reg.loc[reg.scope == "pooled", "n_networks"] == 206).all()
    # per-layer Ramanujan metrics are strongly tied to layer density (paper 4.1, an independent
    # property of the data: checked here with numpy on the raw columns)
    raw = pd.read_csv(DATA / "ramanujan/Resnet-20/rolled-CIFAR-10-Resnet-20.csv.gz")
    ok = np.isfinite(raw["iterative_degree_bound"])
    expected = np.corrcoef(raw.loc[ok, "layer_sparsity"], raw.loc[ok, "iterative_degree_bound"])[
        0, 1
    ]
    corr = pd.read_csv(paths["ramanujan_density"]).set_index(["arch", "metric"])
    assert corr.loc[("resnet20", "iterative_degree_bound"), "pearson_r"] == pytest.approx(expected)
    rank = pd.read_csv(paths["ranking"])
    assert rank["kendall_tau"].dropna().between(-1, 1).all()
    assert set(rank["n_methods"]) <= {7}
    _check_floors(reg, rank)
    md = (out / "summary.md").read_text()
    assert md.index("## Verdict") < md.index("## Protocol") < md.index("1. Ranking")
    html = (out / "summary.html").read_text()
    for img in re.findall(r"<img src='([^']+)'", html):
        assert (out / img).exists() and not Path(img).is_absolute()
    for fig in ("regression_r2", "importance", "ranking_tau", "ramanujan_density"):
        assert (out / "figures" / f"{fig}.png").exists()
        assert (out / "figures" / f"{fig}.svg").exists()
    assert not list(out.rglob("*.tmp*"))


def _check_floors(reg: pd.DataFrame, rank: pd.DataFrame) -> None:
    """The sparsity floor and the ranking floors against truths computed here from the raw
    published columns (pandas/scipy), not by the analysis."""
    from scipy.stats import kendalltau

    nets = load_tables(DATA).networks
    mge = pd.read_csv(DATA / "graph_metrics/unrolled/unrolled-CIFAR-10.csv.gz")
    assert len(mge)  # the networks used are those with an MGE row; the bound below holds anyway
    for arch, d in nets.groupby("arch"):
        # no model of sparsity alone can beat, out of fold, the in-sample per-level mean curve
        within = d.groupby("sparsity")["accuracy"].transform("mean")
        total = ((d["accuracy"] - d["accuracy"].mean()) ** 2).sum()
        bound = 1 - ((d["accuracy"] - within) ** 2).sum() / total
        row = reg[(reg.scope == "arch") & (reg.group == arch)].iloc[0]
        assert row["floor_model"] in ("curve", "gbt")
        assert bound - 0.15 < row["floor_r2_oof"] <= bound + 0.01
        ridge = reg[(reg.scope == "arch") & (reg.group == arch) & (reg.feature_set == "sparsity")
                    & (reg.model == "ridge")]["r2_oof"].iloc[0]  # fmt: skip
        assert row["floor_r2_oof"] >= ridge - 0.01  # the linear-in-sparsity ridge underfits
    g = reg[reg.feature_set == "mge"]
    assert np.allclose(g["gain_r2_oof"], g["r2_oof"] - g["floor_r2_oof"])
    # sparsity alone cannot rank methods within a sparsity: no tau, no floor
    assert rank.loc[rank.feature_set == "sparsity", "kendall_tau"].isna().all()
    # naive:arch for conv6 at 0.9 is the order measured on resnet20 at 0.9 (the other arch)
    means = nets[nets.sparsity == 0.9].groupby(["arch", "method"])["accuracy"].mean().unstack(0)
    expected = kendalltau(means["conv6"], means["resnet20"]).statistic
    got = rank[(rank.feature_set == "naive:arch") & (rank.arch == "conv6")
               & np.isclose(rank.sparsity, 0.9)]["kendall_tau"]  # fmt: skip
    assert got.iloc[0] == pytest.approx(expected)


def test_cli_parses_the_documented_options() -> None:
    import argparse

    p = argparse.ArgumentParser()
    configure(p)
    a = p.parse_args(["--tables", "t", "--out", "o", "--seed", "3", "--splits", "4"])
    assert (a.seed, a.splits, a.repeats, a.target) == (3, 4, 2, "auto")
