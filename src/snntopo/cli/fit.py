"""``snntopo fit``: fit an accuracy predictor on metric tables (either layout)."""

from __future__ import annotations

import argparse

from ..analysis.predictor import DEFAULT_LEVEL, METRIC_DEFINITIONS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", required=True, help="tables directory (canonical or paper)")
    parser.add_argument("--out", required=True, help="predictor directory (predictor.json)")
    parser.add_argument(
        "--mode", choices=sorted(METRIC_DEFINITIONS), default=None,
        help="encoding mode of the tables' metrics (paper tables: reference; required otherwise)",
    )  # fmt: skip
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="nominal interval level")
    parser.add_argument(
        "--exclude-features", nargs="*", default=None, metavar="FEATURE",
        help="MGE columns the model must not use (metric keys or the paper's column names); "
        "default: the built-in list of columns not reproducible on the tables' scale",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..analysis.predictor import fit_predictor

    paths = fit_predictor(
        args.tables, args.out, mode=args.mode, level=args.level,
        exclude_features=args.exclude_features, progress=lambda m: print(f"fit: {m}", flush=True),
    )  # fmt: skip
    summary = pd.read_csv(paths["lomo_verdicts"])
    if len(summary):
        print("leave-one-method-out (MAE, rank error) vs the sparsity and layer-density baselines:")
        print(summary.round(4).to_string(index=False))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
