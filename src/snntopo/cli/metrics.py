"""``snntopo metrics``: compute metric families of one stored graph and write the artifact.

With one family the output file is exactly that family's metric artifact
(``metrics/{encoding}/{family}.json``); with several it maps family name -> artifact. Prints one
JSON line: the network-level values per family, NaN reasons, seconds (metrics only, graph loading
excluded) and the process's peak RSS; a line per family starting and finishing goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import options


def _family(name: str) -> str:
    """A metric family's name. Why not ``choices=``: ``--families`` takes every word after it, so
    ``snntopo metrics --families local g.npz`` reads the graph as a family; say so."""
    from ..metrics import FAMILIES

    if name in FAMILIES.names():
        return name
    import difflib

    close = difflib.get_close_matches(name, FAMILIES.names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if name.endswith(".npz") or Path(name).exists():
        hint = "; a graph file goes before --families (snntopo metrics GRAPH --families ...)"
    raise argparse.ArgumentTypeError(
        f"{name!r} is not a metric family (one of {', '.join(FAMILIES.names())}){hint}"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    from ..metrics import FAMILIES

    parser.add_argument("graph", type=Path, help="graph .npz (snntopo.encode.graph format)")
    parser.add_argument(
        "--families",
        nargs="+",
        default=None,
        type=_family,
        metavar="FAMILY",
        help=f"families to compute (default: all that apply); one of {', '.join(FAMILIES.names())}",
    )
    parser.add_argument(
        "--seed", type=options.seed, default=0, help="motif sample and eigensolver start"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a metric parameter (value parsed as JSON), e.g. motif_sample_fraction=0.01",
    )
    parser.add_argument("--out", type=Path, required=True, help="output JSON file")
    options.add_memory_arguments(parser)


def parse_params(args: argparse.Namespace) -> dict[str, Any]:
    from ..metrics.base import DEFAULT_PARAMS

    params: dict[str, Any] = {"seed": args.seed, "threads": args.threads}
    for kv in args.param:
        key, sep, raw = kv.partition("=")
        if not sep or key not in DEFAULT_PARAMS:
            raise ConfigError(
                f"--param {kv!r}: expected KEY=VALUE with KEY in {', '.join(DEFAULT_PARAMS)}"
            )
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    options.check_params(
        {k: v for k, v in params.items() if k not in ("seed", "threads")},
        options.metric_params_schema(),
    )
    return params


def say(message: str) -> None:
    print(f"snntopo metrics: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..encode.graph import load_graph_deferred
    from ..io import write_json
    from ..metrics import applicable_families
    from ..perf import peak_rss_mb
    from ..stages.metrics import family_on_graph

    params = parse_params(args)
    options.check_out_not_input(args.out, [args.graph])
    options.check_out_writable(args.out)
    # before the graph is loaded: a graph too big for this machine is refused with one line
    from ..memcheck import check_memory, metrics_edges
    from ..metrics.implicit import job_edges

    guard = options.memory_guard(args)
    if args.families:  # each named family at its own rate, on the path it will take
        for fam in dict.fromkeys(args.families):
            edges = job_edges([str(args.graph)], fam, dict(params))
            check_memory(f"metrics ({fam}) on {args.graph}", edges, guard, [fam])
    else:  # none named: all of them, at the highest rate, on the whole graph
        check_memory(f"metrics on {args.graph}", metrics_edges([str(args.graph)]), guard, None)
    # the content digest is checked on a thread while the families run, and waited for before
    # anything is written or any family error is reported (a damaged file is named as such)
    graph, verified = load_graph_deferred(args.graph)
    encoding = graph.meta.get("encoding")
    if args.families:
        # a family named twice is computed once: twice made the file of two families (another
        # layout, without the one-family file's digest)
        families = list(dict.fromkeys(args.families))
    else:
        families = applicable_families(encoding, layered=bool(graph.layers))
    t0 = time.perf_counter()
    # BLAS/OpenMP pools follow --threads, as the workflow's rules do (jobs.limit_threads): numpy is
    # already imported here, so the pools are resized at run time. OpenBLAS's default (one thread
    # per core) spin-waits on a busy machine: a 1280 x 1280 eigvalsh took 23 s with 2 threads on
    # the 2-core box against 0.5 s with 1, which made the BGE families take many minutes.
    # threadpoolctl resizes only the libraries already loaded: scipy bundles its own OpenBLAS,
    # loaded by scipy.linalg, so load it first.
    import scipy.linalg  # noqa: F401
    import scipy.sparse.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    artifacts = {}
    try:
        with threadpool_limits(limits=max(1, int(args.threads))):
            for i, fam in enumerate(families, 1):
                # progress on stderr (a large MGE's family can take minutes); stdout one line
                say(
                    f"{fam} ({i}/{len(families)}) on {graph.n_nodes:,} nodes, {graph.n_edges:,} edges"
                )
                t = time.perf_counter()
                # the same per-graph function as the workflow's metrics_<family> rules
                artifacts[fam] = family_on_graph(fam, str(args.graph), params, graph)
                say(f"{fam} done in {time.perf_counter() - t:.1f} s")
    except BaseException:
        verified()  # a damaged file is the error to report, not what it made a family do
        raise
    verified()
    seconds = time.perf_counter() - t0
    write_json(
        args.out,
        artifacts[families[0]] if len(families) == 1 else artifacts,
        digest=len(families) == 1,  # a family's artifact records its digest, as the workflow's
    )
    line = {
        "graph": str(args.graph),
        "encoding": encoding,
        "families": {f: a["network"] for f, a in artifacts.items()},
        "nan_reasons": {f: a["nan_reasons"] for f, a in artifacts.items() if a["nan_reasons"]},
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "out": str(args.out),
    }
    from ..io import _jsonable

    print(json.dumps(_jsonable(line), allow_nan=False))
    return 0
