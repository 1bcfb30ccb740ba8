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
