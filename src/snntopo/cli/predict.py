"""``snntopo predict``: predicted accuracy (or drop) of masks that were never trained."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictor", required=True, help="predictor directory or its JSON")
    parser.add_argument(
        "metrics", nargs="+", help="metric artifacts (metrics/{family}.json) or directories"
    )
    parser.add_argument("--out", default="predictions", help="output directory")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..analysis.predictor import write_predictions

    paths = write_predictions(args.predictor, args.metrics, args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.read_csv(paths["predictions"]).round(4).to_string(index=False))
        print(pd.read_csv(paths["ranks"]).round(4).to_string(index=False))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
