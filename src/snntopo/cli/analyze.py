"""``snntopo analyze``: run the analysis stage on a tables directory (either layout)."""

from __future__ import annotations

import argparse
import sys

from ..analysis.models import MODELS
from . import options

#: worker processes at most: each holds its own copy of the tables (~0.3 GB on the complete
#: published set) and the 31 scope groups they share out are few, so more workers gain little
MAX_WORKERS = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tables", required=True, help="tables directory (canonical or paper layout)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=options.seed, default=0, help="seed of every random choice")
    parser.add_argument("--splits", type=options.positive_int, default=5, help="grouped CV folds")
    parser.add_argument(
        "--repeats", type=options.positive_int, default=2, help="CV repeats (reshuffled groups)"
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--target", choices=("auto", "drop", "accuracy"), default="auto")
    parser.add_argument("--drop", choices=("absolute", "relative"), default="absolute")
    parser.add_argument(
        "--perm-repeats", type=options.positive_int, default=5, help="permutation repeats"
    )
    parser.add_argument(
        "--ranking-scope", choices=("pooled", "arch", "sparsity"), default="arch",
        help="regression scope whose predictions rank the methods in the summary",
    )  # fmt: skip
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")


def run(args: argparse.Namespace) -> int:
    from ..analysis.run import run_analysis

    params = {
        "seed": args.seed,
        "n_splits": args.splits,
        "n_repeats": args.repeats,
        "models": tuple(args.models),
        "target": args.target,
        "drop": args.drop,
        "n_permutation_repeats": args.perm_repeats,
        "ranking_scope": args.ranking_scope,
        "figures": not args.no_figures,
        # worker processes: the command's --threads (default: the cores this process may run
        # on), at most MAX_WORKERS; each worker fits single-threaded
        "threads": min(args.threads, MAX_WORKERS),
    }
    paths = run_analysis(
        args.tables, args.out, params, progress=lambda m: print(f"analyze: {m}", flush=True)
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    sys.stdout.flush()
    return 0
