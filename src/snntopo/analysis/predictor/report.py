"""Writing predictions: ``predictions.csv``, ``ranks.csv``, ``predictions.json`` and the report
section (``predictions.md`` / ``predictions.html``), which says plainly which networks are
extrapolations and gives no interval or measured coverage for them."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ... import render
from ...io import provenance, write_csv, write_json, write_text
from ...names import KEYS
from .apply import details_json, predict_details
from .fileformat import load_predictor
from .validation import PREDICTORS


def write_predictions(
    predictor: str | os.PathLike[str], metrics: Iterable[str], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """predictions.csv, ranks.csv, predictions.json (with one record per feature outside the
    training range) and a report section (predictions.md / predictions.html). Everything is
    computed before the first file is written."""
    doc = load_predictor(predictor)
    pred, ranks, details = predict_details(doc, metrics)
    blocks = report_blocks(doc, pred, ranks, details)
    meta = {
        "predictor": str(predictor),
        "n": len(pred),
        "n_extrapolated": int((pred["extrapolation"] != "").sum()),
        "extrapolation": details_json(details),
        "provenance": provenance(predictor=str(predictor)),
    }
    out = Path(out_dir)
    paths = {
        "predictions": write_csv(pred, out / "predictions.csv"),
        "ranks": write_csv(ranks, out / "ranks.csv"),
    }
    write_text(out / "predictions.md", render.markdown(blocks, fmt=_fmt))
    write_text(out / "predictions.html", render.html(blocks, "snntopo predictions", fmt=_fmt))
    paths["section"] = out / "predictions.html"
    write_json(out / "predictions.json", meta)
    return paths


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def interval_text(row: Mapping[str, Any]) -> str:
    """The interval of one prediction as the report and the CLI print it: ``[lower, upper]`` with
    its measured coverage, or why there is none."""
    if row["extrapolation"]:
        return f"none: extrapolation ({row['extrapolation'].replace(';', ', ')})"
    if isinstance(row["lower"], float) and math.isnan(row["lower"]):
        return f"none: {row['interval_note']}"
    cov = row["measured_coverage"]
    cov_text = (
        "" if isinstance(cov, float) and math.isnan(cov) else f", measured coverage {cov:.3f}"
    )
    return f"[{row['lower']:.4f}, {row['upper']:.4f}] (nominal {row['interval_level']:g}{cov_text})"


def display_frame(pred: pd.DataFrame) -> pd.DataFrame:
    """Keys, prediction and interval text per network (what the report and the CLI show)."""
    out = pred[list(KEYS)].copy()
    out["predicted"] = pred["predicted"].round(4)
    out["interval"] = [interval_text(r) for _, r in pred.iterrows()]
    return out


def report_blocks(
    doc: Mapping[str, Any],
    pred: pd.DataFrame,
    ranks: pd.DataFrame,
    details: list[dict[str, Any]],
) -> list[render.Block]:
    """The report section as :mod:`snntopo.render` blocks (Markdown and HTML from the same)."""
    level = doc["interval_level"]
    n_ext = int((pred["extrapolation"] != "").sum())
    b: list[render.Block] = [
        ("h2", "Predicted accuracy of untrained masks"),
        (
            "p",
            f"Predictor fit on {doc['tables']} ({doc['tables_layout']} layout, "
            f"{doc['encoding']} metrics in mode `{doc['encoding_mode']}`); target "
            f"`{doc['target']}`; intervals at nominal level {level:g}, with the coverage measured "
            "leave-one-method-out, for networks whose features lie inside the predictor's "
            "training range. No network below was trained.",
        ),
    ]
    if doc["excluded_features"]:
        b.append(("p", f"Features left out of the model: {', '.join(doc['excluded_features'])}."))
    if n_ext:
        b += [
            (
                "p",
                f"**Extrapolation: {n_ext} of {len(pred)} networks have features outside the "
                "predictor's training range.** Their predictions are extrapolations: they get no "
                "interval and no measured coverage, since the coverage was measured on networks "
                "inside the range. The features outside it:",
            ),
            (
                "table",
                pd.DataFrame(details)[
                    [*KEYS, "feature", "value", "min", "max", "sd_outside", "model_z"]
                ],
            ),
        ]
    else:
        b.append(("p", "Every network's features lie inside the predictor's training range."))
    val = []
    for sc in doc["scopes"]:
        v = sc["validation"]
        row = {"dataset": sc["dataset"], "arch": sc["arch"]}
        for p in PREDICTORS:
            row[f"mae_{p}"] = (v.get(p) or {}).get("mae")
        row["coverage"] = (v.get("mge") or {}).get("coverage")
        val.append(row)
    b += [
        ("p", "Leave-one-method-out error of the predictor and of its baselines:"),
        ("table", pd.DataFrame(val)),
        ("p", "Predictions:"),
        ("table", display_frame(pred)),
        (
            "p",
            "Rank among all the methods the predictor knows (1 = best; a method it knows is "
            "ranked beside its new namesake), per sparsity:",
        ),
        ("table", ranks.drop(columns=["method"])),
    ]
    return b
