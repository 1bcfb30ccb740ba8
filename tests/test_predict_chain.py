"""The README's chain mask -> encode -> metrics -> predict, through the CLI, on the tiny digits
ResNet-20: `predict` reads what `snntopo metrics` writes (all families in one file, or one family
per file), marks networks outside the training range as extrapolations, and ranks a new `erk`
among all known methods, the known ERK included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_job import TINY_DIGITS_JOB

from snntopo.analysis.predictor import load_predictor
from snntopo.cli import main

KNOWN = ["erk", "er", "uniform", "synflow"]
SPARSITIES = [0.6, 0.9]
NET = ["--arch", "resnet20", "--dataset", "digits", "--method", "erk", "--seed", "0",
       "--width", str(TINY_DIGITS_JOB["width"]),
       "--input-size", str(TINY_DIGITS_JOB["input_size"])]  # fmt: skip


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Two fresh networks (erk at 0.6 and 0.9): mask, encode (MGE), metrics. The 0.6 network's
    metrics in one file (every family), the 0.9 network's in one file per family."""
    d = tmp_path_factory.mktemp("chain")
    data = ["--data-root", str(d / "data")]
    files: dict[float, list[Path]] = {}
    for sp in SPARSITIES:
        net = [*NET, "--sparsity", str(sp), *data]
        mask, graph = d / f"m{sp}.safetensors", d / f"g{sp}.npz"
        assert main(["mask", *net, "--out", str(mask)]) == 0
        assert main(["encode", *net, "--mask", str(mask), "--encoding", "mge",
                     "--out", str(graph)]) == 0  # fmt: skip
        if sp == 0.6:
            files[sp] = [d / "m0.6.json"]
            assert main(["metrics", str(graph), "--out", str(files[sp][0])]) == 0
        else:
            files[sp] = []
            for fam in ("local", "neighbourhood", "strength", "global", "expansion"):
                out = d / f"m0.9-{fam}.json"
                assert main(["metrics", str(graph), "--families", fam, "--out", str(out)]) == 0
                files[sp].append(out)
    return d, files


def measured(files: list[Path]) -> dict[str, float]:
    """The network-level MGE values in `snntopo metrics` files, as the tables carry them (the
    normalised value where there is one; node and edge counts left out)."""
    vals: dict[str, float] = {}
    for f in files:
        doc = json.loads(f.read_text())
        for res in [doc] if "family" in doc else doc.values():
            vals.update({k: float("nan") if v is None else v for k, v in res["network"].items()})
    return {k: v for k, v in vals.items()
            if f"{k}_norm" not in vals and k not in ("nodes", "edges")}  # fmt: skip


def tables(d: Path, net: dict[float, dict[str, float]], scale: float, seed: int) -> Path:
    """Canonical tables of 4 known methods x 2 sparsities x 3 seeds whose features are the fresh
    networks' values times ``scale`` times a factor in [0.7, 1.3] (so with scale 1 the fresh
    networks sit inside the range), accuracy = a curve + noise."""
    rng = np.random.default_rng(seed)
    rows, accs = [], []
    for m_i, m in enumerate(KNOWN):
        for sp in SPARSITIES:
            for s in range(3):
                f = rng.uniform(0.7, 1.3, len(net[sp]))
                f[0], f[1] = (0.7, 1.3) if s == 0 else (f[0], f[1])
                rows.append({"dataset": "digits", "arch": "resnet20", "method": m, "sparsity": sp,
                             "seed": s, **{k: v * scale * fk for (k, v), fk
                                           in zip(net[sp].items(), f, strict=True)}})  # fmt: skip
                accs.append(0.9 - 0.2 * (sp - 0.6) + 0.01 * m_i + rng.normal(0, 0.002))
    out = d / f"tables-{scale}"
    out.mkdir()
    feat = pd.DataFrame(rows)
    # inside the range: every feature's min/max of each sparsity bracket the fresh value
    for sp in SPARSITIES:
        part = feat[feat.sparsity == sp]
        for k, v in net[sp].items():
            col = part[k] / scale
            if np.isfinite(v) and col.notna().all():
                lo, hi = sorted([col.min(), col.max()])
                feat.loc[part.index[0], k] = min(lo, v) * scale
                feat.loc[part.index[1], k] = max(hi, v) * scale
    feat.to_csv(out / "mge.csv", index=False)
    keys = feat[["dataset", "arch", "method", "sparsity", "seed"]]
    keys.assign(accuracy=accs).to_csv(out / "networks.csv", index=False)
    return out


def fit_and_predict(d: Path, t: Path, files, name: str, capsys) -> tuple[Path, Path, str]:
    """``snntopo fit`` on tables ``t``, then ``snntopo predict`` on the fresh networks' metric
    files; returns the predictor and output folders and what predict printed."""
    pred_dir = d / f"pred-{name}"
    assert main(["fit", "--tables", str(t), "--mode", "exact", "--out", str(pred_dir)]) == 0
    out = d / f"out-{name}"
    capsys.readouterr()
    argv = ["predict", "--predictor", str(pred_dir), *map(str, files[0.6]), *map(str, files[0.9])]
    assert main([*argv, "--out", str(out)]) == 0
    return pred_dir, out, capsys.readouterr().out


def test_readme_chain_mask_encode_metrics_predict(chain, capsys) -> None:
    d, files = chain
    net = {sp: measured(files[sp]) for sp in SPARSITIES}
    assert net[0.6].keys() == net[0.9].keys() and "motif" in net[0.6]
    t = tables(d, net, scale=1.0, seed=0)
    pred_dir, out, printed = fit_and_predict(d, t, files, "inside", capsys)
    pred = pd.read_csv(out / "predictions.csv")
    # the network keys come from the graphs, recorded by `snntopo encode`
    assert list(zip(pred.method, pred.sparsity, pred.seed, strict=True)) == [
        ("erk", 0.6, 0), ("erk", 0.9, 0)]  # fmt: skip
    assert pred["extrapolation"].isna().all()  # inside the training range: intervals
    assert (pred["lower"] < pred["predicted"]).all() and (pred["predicted"] < pred["upper"]).all()
    doc = load_predictor(pred_dir)
    cov = doc["scopes"][0]["validation"]["mge"]["coverage"]
    assert (pred["measured_coverage"] == cov).all() and "measured coverage" in printed
    ranks = pd.read_csv(out / "ranks.csv")
    # a new erk among all 4 known methods, the known erk included
    assert (ranks["among"] == len(KNOWN) + 1).all() and (ranks["label"] == "erk (new)").all()
    for order in ranks["order_best_first"]:
        assert sorted(order.split(" > ")) == sorted([*KNOWN, "erk (new)"])


def test_fresh_networks_outside_the_training_range_are_extrapolations(chain, capsys) -> None:
    d, files = chain
    net = {sp: measured(files[sp]) for sp in SPARSITIES}
    t = tables(d, net, scale=10.0, seed=1)  # every feature 7-13x the fresh networks' values
    pred_dir, out, printed = fit_and_predict(d, t, files, "outside", capsys)
    pred = pd.read_csv(out / "predictions.csv")
    assert pred[["lower", "upper", "measured_coverage"]].isna().all().all()
    sc = load_predictor(pred_dir)["scopes"][0]
    train = pd.read_csv(t / "mge.csv")
    for _, row in pred.iterrows():
        fresh = net[row["sparsity"]]
        # the features below the training minimum, from the tables themselves
        below = sorted(k for k in sc["features"] if fresh[k] < train[k].min())
        assert below and sorted(row["extrapolation"].split(";")) == below
        sds = max((train[k].min() - fresh[k]) / train[k].std(ddof=0) for k in below)
        assert row["max_sd_outside"] == pytest.approx(sds, rel=1e-6)
    # printed and reported as extrapolation, with no coverage beside those rows
    assert "measured coverage" not in printed and "none: extrapolation" in printed
    html = (out / "predictions.html").read_text()
    assert "Extrapolation: 2 of 2 networks" in html and html.count("none: extrapolation") == 2
    assert "measured coverage 0" not in html and "measured coverage 1" not in html
    meta = json.loads((out / "predictions.json").read_text())
    assert meta["n_extrapolated"] == 2
    assert {e["feature"] for e in meta["extrapolation"]} == set(below) | set(
        k for k in sc["features"] if net[0.6][k] < train[k].min())  # fmt: skip
    ranks = pd.read_csv(out / "ranks.csv")
    assert ranks["extrapolation"].notna().all()


def test_metrics_files_are_checked_for_meaning(chain, tmp_path, capsys) -> None:
    d, files = chain
    pred_dir = d / "pred-inside"
    if not pred_dir.exists():
        pytest.skip("needs the predictor of the chain test")
    base = json.loads(files[0.6][0].read_text())
    cases = {
        "duplicate": (files[0.6][0].read_text(), "also come from"),
        "unknown family": (
            json.dumps({"local": {**base["local"], "family": "nope"}}),
            "unknown metric family 'nope'",
        ),  # fmt: skip
        "string metric": (
            json.dumps({"local": {**base["local"], "network": {"sink_nodes": "x"}}}),
            "metric 'sink_nodes' is 'x'",
        ),  # fmt: skip
        "infinite metric": (
            json.dumps({"local": {**base["local"], "network": {"sink_nodes": 1.0}}}).replace(
                "1.0", "Infinity"
            ),
            # refused by the shared JSON reader, before any metric is looked at
            "Infinity is not a JSON number",
        ),
        "no network keys": (
            json.dumps({"local": {**base["local"], "provenance": {}}}),
            "records no network",
        ),  # fmt: skip
        "not metrics": (json.dumps({"a": 1}), "not a metric file"),
    }
    for name, (text, msg) in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(text)
        argv = ["predict", "--predictor", str(pred_dir), str(files[0.6][0]), str(f)]
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2, name
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, (name, err)
    assert not (tmp_path / "o").exists()


def test_a_family_missing_for_one_network_is_an_error_and_a_null_is_imputed(
    chain, tmp_path, capsys
) -> None:
    d, files = chain
    pred_dir = d / "pred-inside"
    if not pred_dir.exists():
        pytest.skip("needs the predictor of the chain test")
    partial = [f for f in files[0.9] if "expansion" not in f.name]
    argv = ["predict", "--predictor", str(pred_dir), str(files[0.6][0]), *map(str, partial)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "digits/resnet20/erk/0.9/0: its metric files lack" in err and "spectral_gap" in err
    # a metric that is null (undefined) is imputed by the training median, and said so
    doc = json.loads(files[0.6][0].read_text())
    doc["neighbourhood"]["network"]["motif"] = None
    f = tmp_path / "null.json"
    f.write_text(json.dumps(doc))
    assert (
        main(["predict", "--predictor", str(pred_dir), str(f), "--out", str(tmp_path / "p")]) == 0
    )
    pred = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert pred["imputed"].tolist() == ["motif"]
