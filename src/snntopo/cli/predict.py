"""``snntopo predict``: predicted accuracy (or drop) of masks that were never trained."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictor", required=True, help="predictor directory or its JSON")
    parser.add_argument(
        "metrics",
        nargs="+",
        help="metric files (the workflow's metrics/{family}.json or `snntopo metrics` output) or "
        "directories holding metrics/*.json",
    )
    parser.add_argument("--out", default="predictions", help="output directory")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..analysis.predictor import display_frame, write_predictions

    paths = write_predictions(args.predictor, args.metrics, args.out)
    text = {c: object for c in ("method", "extrapolation", "extrapolation_detail", "interval_note")}
    pred = pd.read_csv(paths["predictions"], dtype=text)
    for c in ("extrapolation", "interval_note"):
        pred[c] = pred[c].fillna("")
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_colwidth", 120):  # fmt: skip
        # an extrapolated row shows "none: extrapolation (features)", never an interval/coverage
        print(display_frame(pred).to_string(index=False))
        ranks = pd.read_csv(paths["ranks"], dtype={"extrapolation": object})
        print(ranks.fillna({"extrapolation": ""}).round(4).to_string(index=False))
    n_ext = int((pred["extrapolation"] != "").sum())
    if n_ext:
        print(f"extrapolation: {n_ext} of {len(pred)} networks have features outside the "
              "predictor's training range (no interval for them; details in predictions.csv)")  # fmt: skip
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
