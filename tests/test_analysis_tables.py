"""Canonical-layout loading, validation errors, and the no-write-on-error guarantee."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.run import run_analysis
from snntopo.analysis.tables import load_tables
from snntopo.errors import TableError

METHODS = ["uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"]


def write_canonical(d: Path, seed: int = 0) -> pd.DataFrame:
    """A small canonical table set where the MGE feature ``signal`` equals the accuracy drop."""
    rng = np.random.default_rng(seed)
    keys = pd.MultiIndex.from_product(
        [["cifar10"], ["conv6", "resnet20"], METHODS, [0.6, 0.9, 0.98], [0, 1, 2]],
        names=["dataset", "arch", "method", "sparsity", "seed"],
    ).to_frame(index=False)
    n = len(keys)
    acc = rng.uniform(0.5, 0.9, n)
    nets = keys.assign(accuracy=acc, dense_accuracy=0.93)
    nets.to_csv(d / "networks.csv", index=False)
    keys.assign(signal=0.93 - acc, other=rng.normal(size=n)).to_csv(d / "mge.csv", index=False)
    keys.assign(a=rng.normal(size=n), b=np.nan).to_csv(d / "rolled.csv", index=False)
    keys.assign(a=rng.normal(size=n)).to_csv(d / "rolled-channel.csv.gz", index=False)
    layers = keys.loc[keys.index.repeat(3)].reset_index(drop=True)
    layers["encoding"] = "rolled"
    layers["layer_id"] = np.tile([0, 1, 2], n)
    layers["layer_name"] = "l" + layers["layer_id"].astype(str)
    layers["layer_density"] = rng.uniform(0.01, 0.5, len(layers))
    for m in ("degree_bound", "iterative_spectral_gap", "iterative_degree_bound",
              "weighted_spectral_gap"):  # fmt: skip
        layers[m] = layers["layer_density"] * 2 + rng.normal(scale=0.01, size=len(layers))
    layers.to_csv(d / "ramanujan_layers.csv", index=False)
    return nets


def test_canonical_layout_loads(tmp_path: Path) -> None:
    nets = write_canonical(tmp_path)
    t = load_tables(tmp_path)
    assert t.source == "canonical"
    assert len(t.networks) == len(nets)
    assert set(t.features) == {"mge", "rolled", "rolled-channel"}
    assert t.ramanujan_layers is not None and len(t.ramanujan_layers) == 3 * len(nets)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    write_canonical(tmp_path)
    df = pd.read_csv(tmp_path / "networks.csv").drop(columns="accuracy")
    df.to_csv(tmp_path / "networks.csv", index=False)
    with pytest.raises(TableError, match=r"networks\.csv.*accuracy"):
        load_tables(tmp_path)


def test_nan_accuracy_names_file_and_column_and_writes_nothing(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    write_canonical(tables)
    df = pd.read_csv(tables / "networks.csv")
    df.loc[3, "accuracy"] = np.nan
    df.to_csv(tables / "networks.csv", index=False)
    out = tmp_path / "out"
    with pytest.raises(TableError, match=r"networks\.csv.*\['accuracy'\]"):
        run_analysis(tables, out, {"n_splits": 2, "n_repeats": 1, "figures": False})
    assert not out.exists() or not any(out.iterdir())


def test_nan_key_in_feature_table(tmp_path: Path) -> None:
    write_canonical(tmp_path)
    df = pd.read_csv(tmp_path / "mge.csv")
    df.loc[0, "seed"] = np.nan
    df.to_csv(tmp_path / "mge.csv", index=False)
    with pytest.raises(TableError, match=r"mge\.csv.*seed"):
        load_tables(tmp_path)


def test_missing_ramanujan_column(tmp_path: Path) -> None:
    write_canonical(tmp_path)
    df = pd.read_csv(tmp_path / "ramanujan_layers.csv").drop(columns="degree_bound")
    df.to_csv(tmp_path / "ramanujan_layers.csv", index=False)
    with pytest.raises(TableError, match=r"ramanujan_layers\.csv.*degree_bound"):
        load_tables(tmp_path)


def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="networks"):
        load_tables(tmp_path)


def test_run_on_canonical_tables_uses_drop_and_finds_the_signal(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    write_canonical(tables)
    out = tmp_path / "out"
    paths = run_analysis(
        tables, out, {"n_splits": 3, "n_repeats": 1, "models": ["ridge"], "figures": False}
    )
    reg = pd.read_csv(paths["regression"])
    assert (reg["target"] == "absolute_drop").all()
    pooled = reg[(reg.scope == "pooled") & (reg.model == "ridge")].set_index("feature_set")
    assert pooled.loc["mge", "r2_oof"] > 0.95  # mge.signal == drop
    assert pooled.loc["rolled", "r2_oof"] < 0.3
    # the all-NaN column b of rolled.csv is dropped, not imputed
    assert pooled.loc["rolled", "n_features"] == 1
    corr = pd.read_csv(paths["ramanujan_density"])
    assert (corr.loc[corr.arch == "all", "pearson_r"] > 0.99).all()
    assert (out / "summary.html").exists()
