"""How often a predictor fit on the published tables covers the published accuracy of fresh masks.

    python benchmarks/predict_fresh_masks.py --predictor PREDICTOR --tables PUBLISHED_GRAPH_DATA \\
        --dataset cifar10 METRICS.json [METRICS.json ...] [--out table.md]

``METRICS.json`` are ``snntopo metrics`` outputs of fresh reference-mode masks (one network each,
made with ``snntopo encode --mode reference --encoding mge``; ER with ``--pai-param
include_kernel=true``, the authors' ER rule). For every network the script prints the predicted
accuracy, its 90 % interval (or the extrapolation note that replaces it), the published seed mean
of the same (architecture, method, sparsity) on ``--dataset``, and whether that mean lies inside
the interval; then the coverage over the networks that have an interval, per architecture. The
published accuracies are the truth here: nothing in this script fits or tunes anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def evaluate(predictor: str, tables: str, dataset: str, metrics: list[str]) -> pd.DataFrame:
    """One row per network: prediction, interval or extrapolation, published mean, inside."""
    from snntopo.analysis.predictor import predict
    from snntopo.analysis.tables import load_tables

    pred, _ranks = predict(predictor, metrics)
    nets = load_tables(tables).networks
    nets = nets.reset_index() if "dataset" not in nets.columns else nets
    pub = nets[nets["dataset"] == dataset].groupby(["arch", "method", "sparsity"])["accuracy"]
    mean, lo, hi = pub.mean(), pub.min(), pub.max()
    keys = list(zip(pred["arch"], pred["method"], pred["sparsity"], strict=True))
    pred["published_mean"] = [mean.get(k, np.nan) for k in keys]
    pred["published_min"] = [lo.get(k, np.nan) for k in keys]
    pred["published_max"] = [hi.get(k, np.nan) for k in keys]
    ext = pred["extrapolation"].fillna("").astype(str)
    pred["extrapolation"] = ext
    has_iv = (ext == "") & pred["lower"].notna()
    pred["inside"] = np.where(
        has_iv,
        (pred["published_mean"] >= pred["lower"]) & (pred["published_mean"] <= pred["upper"]),
        np.nan,
    )
    return pred.sort_values(["arch", "method", "sparsity"]).reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    rows = [
        "| arch | method | sparsity | published mean (3 seeds) | predicted | 90 % interval | inside |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples(index=False):
        if r.extrapolation:
            iv, inside = f"none: extrapolation ({r.extrapolation})", "-"
        elif pd.isna(r.lower):
            iv, inside = "none", "-"
        else:
            iv, inside = f"[{r.lower:.3f}, {r.upper:.3f}]", "yes" if r.inside else "**no**"
        rows.append(
            f"| {r.arch} | {r.method} | {r.sparsity:g} | {r.published_mean:.3f} | "
            f"{r.predicted:.3f} | {iv} | {inside} |"
        )
    lines = ["\n".join(rows), ""]
    for arch, d in [("all", df), *df.groupby("arch")]:
        with_iv = d["inside"].notna()
        n_in = int(d.loc[with_iv, "inside"].astype(bool).sum())
        n_ext = int((d["extrapolation"] != "").sum())
        # an interval beside an out-of-range feature would be a guard failure
        bad = int(((d["extrapolation"] != "") & d["lower"].notna()).sum())
        lines.append(
            f"- {arch}: {len(d)} networks, {n_ext} extrapolated (no interval), "
            f"{n_in} of {int(with_iv.sum())} published means inside the interval; "
            f"intervals beside an out-of-range feature: {bad}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--predictor", required=True)
    p.add_argument("--tables", required=True, help="the published graph_data/ folder")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--out", help="write the Markdown table here")
    p.add_argument("--csv", help="write every column here")
    p.add_argument("metrics", nargs="+")
    a = p.parse_args(argv)
    df = evaluate(a.predictor, a.tables, a.dataset, a.metrics)
    text = markdown(df)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.csv:
        df.to_csv(a.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
