"""The join of per-network artifacts into the canonical tables, and the report's accuracy table."""

from __future__ import annotations

import pandas as pd
import pytest

from snntopo.io import write_json
from snntopo.stages import accuracy_table
from snntopo.tables import write_tables


def _summary(tmp_path, method, sparsity, seed, acc):
    p = tmp_path / f"{method}-{sparsity}-{seed}.json"
    keys = dict(dataset="digits", arch="resnet20", method=method, sparsity=sparsity, seed=seed)
    write_json(p, {**keys, "accuracy": acc})
    return str(p)


def _metric(tmp_path, family, method, sparsity, seed, values, layers=()):
    p = tmp_path / f"m-{family}-{method}-{sparsity}-{seed}.json"
    keys = dict(dataset="digits", arch="resnet20", method=method, sparsity=sparsity, seed=seed)
    encs = {"mge": {"network": values, "layers": []}}
    if layers:
        encs["rolled"] = {"network": {"mean_x": 1.0}, "layers": list(layers)}
    write_json(p, {"family": family, "encodings": encs, "network": keys})
    return str(p)


@pytest.fixture
def tables(tmp_path):
    summaries = [
        _summary(tmp_path, "erk", 0.9, 0, 0.80),
        _summary(tmp_path, "erk", 0.9, 1, 0.70),
        _summary(tmp_path, "snip", 0.9, 0, 0.60),
        _summary(tmp_path, "erk", 0.9, 2, 0.75),
        _summary(tmp_path, "dense", 0.0, 0, 0.95),
        _summary(tmp_path, "dense", 0.0, 2, 0.91),  # no dense run for seed 1
    ]
    layer = {
        "layer_id": 0,
        "layer_name": "conv1",
        "density": 0.3,
        "degree_bound": 0.1,
        "iterative_spectral_gap": None,
        "iterative_degree_bound": 0.2,
        "weighted_spectral_gap": 1.5,
    }
    metrics = [
        _metric(tmp_path, "local", "erk", 0.9, 0, {"edges": 10.0}),
        _metric(tmp_path, "strength", "erk", 0.9, 0, {"avg_node_strength": 2.0}),
        _metric(tmp_path, "local", "erk", 0.9, 1, {"edges": 12.0}),
        _metric(tmp_path, "local", "snip", 0.9, 0, {"edges": 9.0}),
        _metric(tmp_path, "ramanujan", "snip", 0.9, 0, {}, layers=[layer]),
    ]
    out = tmp_path / "tables"
    write_tables(summaries, metrics, str(out))
    return out


def test_networks_table_pairs_each_network_with_its_dense_baseline(tables):
    nets = pd.read_csv(tables / "networks.csv").sort_values(["method", "seed"])
    assert list(nets.method) == ["erk", "erk", "erk", "snip"]  # dense rows are baselines
    # seeds 0 and 2 have their own dense run; seed 1 falls back to the mean over seeds (0.93)
    assert list(nets.dense_accuracy) == pytest.approx([0.95, 0.93, 0.91, 0.95])
    assert list(nets.accuracy) == [0.80, 0.70, 0.75, 0.60]


def test_families_join_into_one_row_per_network(tables):
    mge = pd.read_csv(tables / "mge.csv").sort_values(["method", "seed"])
    assert len(mge) == 3
    row = mge[(mge.method == "erk") & (mge.seed == 0)].iloc[0]
    assert row.edges == 10.0 and row.avg_node_strength == 2.0
    assert mge[(mge.method == "erk") & (mge.seed == 1)].avg_node_strength.isna().all()


def test_ramanujan_layer_rows(tables):
    lay = pd.read_csv(tables / "ramanujan_layers.csv")
    assert len(lay) == 1
    row = lay.iloc[0]
    assert row.encoding == "rolled" and row.layer_density == 0.3 and row.degree_bound == 0.1
    assert pd.isna(row.iterative_spectral_gap)


def test_every_encoding_table_exists_even_if_empty(tables):
    assert pd.read_csv(tables / "rolled-channel.csv").empty


def test_accuracy_table_is_mean_and_std_over_seeds(tables):
    acc = accuracy_table(str(tables / "networks.csv"))
    erk = acc[acc.method == "erk"].iloc[0]
    expected_std = pd.Series([0.80, 0.70, 0.75]).std()
    assert erk["s=0.9"] == f"{0.75:.3f} ± {expected_std:.3f}"
    assert erk["dense"] == f"{(0.95 + 0.93 + 0.91) / 3:.3f}"


def test_analysis_uses_the_papers_normalised_columns():
    from snntopo.analysis.tables import select_features

    df = pd.DataFrame(
        {"nodes": [5], "edges": [9], "sink_nodes": [2], "sink_nodes_norm": [0.4], "motif": [7.0]}
    )
    assert list(select_features(df, "mge").columns) == ["sink_nodes_norm", "motif"]
    # BGE aggregates keep their size columns, as the paper's per-layer tables do, but not the
    # Ramanujan layer means (those are the separate Ramanujan feature set)
    bge = df.assign(mean_degree_bound=[0.1], mean_density=[0.3])
    assert list(select_features(bge, "rolled").columns) == [
        "nodes",
        "edges",
        "sink_nodes_norm",
        "motif",
        "mean_density",
    ]


def test_external_arch_slug_and_full_name_join_as_one_network(tmp_path):
    """train.json names the architecture in full, metric artifacts written before the full name
    was recorded carry the path slug: the join treats them as one network, named in full."""
    keys = dict(dataset="digits", method="erk", sparsity=0.9, seed=0)
    write_json(tmp_path / "t.json", {**keys, "arch": "module:pkg.mod:make", "accuracy": 0.5})
    for arch, fam, val in (("module__pkg.mod__make", "local", 3.0), ("module:pkg.mod:make", "strength", 4.0)):  # fmt: skip
        write_json(
            tmp_path / f"{fam}.json",
            {"family": fam, "encodings": {"mge": {"network": {fam: val}, "layers": []}},
             "network": {**keys, "arch": arch}},
        )  # fmt: skip
    out = tmp_path / "tables"
    write_tables(
        [str(tmp_path / "t.json")],
        [str(tmp_path / "local.json"), str(tmp_path / "strength.json")],
        str(out),
    )
    nets, mge = pd.read_csv(out / "networks.csv"), pd.read_csv(out / "mge.csv")
    assert nets["arch"].tolist() == mge["arch"].tolist() == ["module:pkg.mod:make"]
    assert mge[["local", "strength"]].values.tolist() == [[3.0, 4.0]]
