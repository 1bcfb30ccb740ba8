"""`snakemake predict`: masks, encodings and metrics for the grid, then predictions; no training."""

from __future__ import annotations

import pytest
from test_workflow import TINY, planned, snakemake, write_config

pytestmark = pytest.mark.workflow


def test_predict_target_plans_no_training_job(tmp_path) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "predictor.json").write_text("{}")
    write_config(tmp_path, {**TINY, "predict": {"predictor": "pred"}})
    jobs = planned(tmp_path, "predict")
    assert jobs["predict"] == 1
    assert not [r for r in jobs if r.startswith("train")], jobs
    assert jobs["mask"] == 8 and jobs["encode"] == 8 * 3  # 2 methods x 2 sparsities x 2 seeds
    assert jobs["metrics_local"] == 8
    assert "tables" not in jobs and "analysis" not in jobs


def test_predict_target_without_a_predictor_says_which_key(tmp_path) -> None:
    write_config(tmp_path, TINY)
    res = snakemake(tmp_path, "-n", "predict")
    assert res.returncode != 0
    assert "predict.predictor" in res.stdout + res.stderr


@pytest.mark.slow
def test_predict_target_runs_on_the_workflows_own_metric_artifacts(tmp_path) -> None:
    """`snakemake predict` end to end on two untrained networks: a predictor that is not one is
    refused in one line after the metrics are made; with a fitted one, only `predict` reruns and
    predicts both networks from the workflow's metrics/{family}.json."""
    import json

    import numpy as np
    import pandas as pd

    from snntopo.cli import main

    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "predictor.json").write_text("{}")
    cfg = {**TINY, "methods": ["erk"], "seeds": [0], "encodings": ["mge", "rolled"],
           "dense_baseline": False, "predict": {"predictor": "pred"}}  # fmt: skip
    write_config(tmp_path, cfg)
    res = snakemake(tmp_path, "--cores", "2", "predict")
    assert res.returncode != 0
    log = (tmp_path / "results" / "logs" / "predict.log").read_text()
    assert "missing keys" in log and "Traceback" not in log
    assert not (tmp_path / "results" / "predictions" / "predictions.csv").exists()
    # the MGE values the workflow measured, as the tables carry them
    net = {}
    for sp in (0.6, 0.9):
        d = tmp_path / f"results/digits/resnet20/erk/s{sp}/seed0/metrics"
        vals = {}
        for f in sorted(d.glob("*.json")):
            doc = json.loads(f.read_text())
            if "mge" in doc["encodings"]:
                vals.update(doc["encodings"]["mge"]["network"])
        net[sp] = {k: v for k, v in vals.items()
                   if v is not None and f"{k}_norm" not in vals and k not in ("nodes", "edges")}  # fmt: skip
    # tables of three known methods around those values; the new erk sits inside their range
    rng = np.random.default_rng(0)
    rows, acc = [], []
    for i, m in enumerate(["er", "erk", "uniform"]):
        for sp in (0.6, 0.9):
            for seed in range(2):
                f = 1 + (0.3 if seed else -0.3) * (1 if i % 2 else -1) + rng.uniform(-0.05, 0.05)
                rows.append({"dataset": "digits", "arch": "resnet20", "method": m, "sparsity": sp,
                             "seed": seed, **{k: v * f for k, v in net[sp].items()}})  # fmt: skip
                acc.append(0.9 - 0.3 * (sp - 0.6) + 0.01 * i)
    t = tmp_path / "tables"
    t.mkdir()
    feat = pd.DataFrame(rows)
    feat.to_csv(t / "mge.csv", index=False)
    feat.iloc[:, :5].assign(accuracy=acc).to_csv(t / "networks.csv", index=False)
    assert (
        main(["fit", "--tables", str(t), "--mode", "exact", "--out", str(tmp_path / "pred")]) == 0
    )
    assert planned(tmp_path, "predict") == {"predict": 1}
    res = snakemake(tmp_path, "--cores", "2", "predict")
    assert res.returncode == 0, res.stderr[-3000:]
    pred = pd.read_csv(tmp_path / "results" / "predictions" / "predictions.csv")
    assert list(zip(pred.method, pred.sparsity, strict=True)) == [("erk", 0.6), ("erk", 0.9)]
    ranks = pd.read_csv(tmp_path / "results" / "predictions" / "ranks.csv")
    assert (ranks["among"] == 4).all() and (ranks["label"] == "erk (new)").all()
