"""``snntopo bench``: time and peak memory of encoding and of every metric family, per case.

For every (architecture, sparsity) the command

1. prepares the layer spec and the masked initial weights in a subprocess (the only step that
   imports torch),
2. builds the graph in a fresh torch-free subprocess (encode time and peak RSS),
3. computes each metric family on the stored graph in its own fresh subprocess.

Why one process per case: peak RSS (``VmHWM``) is a per-process high-water mark, so only a fresh
process gives each case its own figure; a family's peak includes loading the graph, as in a real
metric job. Results go to ``DIR/encode.csv`` and ``DIR/metrics.csv`` (one row per case, with the
host's CPU count and load average, because timings on a shared machine mean little without them)
and a table is printed.

``--quick`` runs ResNet-20 at width 0.5 and sparsity 0.6 only (seconds, for tests and smoke runs).
The worker entry points (``python -m snntopo.cli.bench prepare|encode|family ...``) are internal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..models import MODELS
from ..names import DENSE
from ..pai import METHODS
from ..perf import peak_rss_mb
from . import options

#: the paper's architectures (those with a spelling in the authors' tables)
DEFAULT_ARCHS = tuple(a for a in MODELS.names() if MODELS.fact(a, "paper"))
#: methods that need no data set (bench runs without any data on disk)
DATA_FREE = (*METHODS.where(needs_data=False), DENSE)


def host_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load1": round(load[0], 2),
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------------------- workers
def prepare_case(
    arch: str, method: str, sparsity: float, seed: int, width: float, workdir: Path
) -> tuple[Path, Path]:
    """Write ``spec.json`` and masked initial weights ``weights.npz`` (needs torch)."""
    import numpy as np

    from ..encode.layers import layer_spec
    from ..errors import ConfigError
    from ..models import build_model, prunable_parameters
    from ..pai import compute_mask

    if method not in DATA_FREE:
        raise ConfigError(f"bench supports data-free PaI methods only ({', '.join(DATA_FREE)})")
    model = build_model(arch, num_classes=10, width=width, seed=seed)
    spec = layer_spec(model, (3, 32, 32), arch=arch, num_classes=10)
    params = dict(prunable_parameters(model))
    mask_seconds = 0.0
    if method == "dense" or sparsity == 0:
        masks = {n: np.ones(tuple(p.shape), dtype=bool) for n, p in params.items()}
    else:
        t0 = time.perf_counter()
        tmasks, _ = compute_mask(method, model, sparsity, seed=seed)
        mask_seconds = time.perf_counter() - t0
        masks = {n: m.numpy() for n, m in tmasks.items()}
    weights = {
        n: np.where(masks[n], p.detach().numpy(), 0).astype(np.float32) for n, p in params.items()
    }
    spec_path, w_path = workdir / "spec.json", workdir / "weights.npz"
    spec_path.write_text(json.dumps(spec))
    np.savez(w_path, **weights)
    (workdir / "prepare.json").write_text(
        json.dumps({"mask_seconds": mask_seconds, "peak_rss_mb": peak_rss_mb()})
    )
    return spec_path, w_path


def encode_case(
    spec_path: Path, weights_path: Path, encoding: str, out: Path, mode: str = "exact"
) -> dict[str, Any]:
    """Build and save one graph (torch-free process); build time excludes reading the inputs."""
    import numpy as np

    from ..encode import build_graph, save_graph
    from ..io import read_json

    spec = read_json(spec_path)
    with np.load(weights_path) as z:
        weights = {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    g = build_graph(encoding, spec, weights, mode=mode)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    save_graph(out, g)
    return {"nodes": g.n_nodes, "edges": g.n_edges, "seconds": seconds, "peak_rss_mb": peak}


def family_case(graph_path: Path, family: str, params: dict[str, Any]) -> dict[str, Any]:
    """Load one graph and compute one family; seconds = the family only, peak RSS = the process."""
    from ..encode.graph import load_graph
    from ..metrics import compute_family

    t0 = time.perf_counter()
    graph = load_graph(graph_path)
    load_s = time.perf_counter() - t0
    art = compute_family(family, graph, params)
    return {
        "nodes": graph.n_nodes,
        "edges": graph.n_edges,
        "seconds": art["seconds"],
        "load_seconds": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "network": art["network"],
        "nan_reasons": art["nan_reasons"],
    }


def _child(argv: list[str]) -> dict[str, Any]:
    """Run a worker in a fresh interpreter; return its last stdout line as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "snntopo.cli.bench", *argv], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {argv[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker_main(argv: list[str]) -> int:
    kind, rest = argv[0], argv[1:]
    if kind == "prepare":
        arch, method, s, seed, width, d = rest
        spec, w = prepare_case(arch, method, float(s), int(seed), float(width), Path(d))
        stats = json.loads((Path(d) / "prepare.json").read_text())
        print(json.dumps({"spec": str(spec), "weights": str(w), **stats}))
    elif kind == "encode":
        spec, w, enc, out, mode = rest
        print(json.dumps(encode_case(Path(spec), Path(w), enc, Path(out), mode)))
    elif kind == "family":
        path, fam, params = rest
        print(json.dumps(family_case(Path(path), fam, json.loads(params))))
    else:
        raise SystemExit(f"unknown bench worker {kind!r}")
    return 0


# --------------------------------------------------------------------------------------- CLI
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.6, 0.98])
    parser.add_argument("--method", default="erk", help="data-free PaI method (default erk)")
    parser.add_argument("--encoding", default="mge")
    parser.add_argument("--mode", default="exact", help="MGE mode: exact or reference")
    parser.add_argument(
        "--graph",
        type=Path,
        default=None,
        help="benchmark the metric families on this stored graph instead of building graphs",
    )
    parser.add_argument(
        "--families", nargs="*", default=None, help="metric families (default: all that apply)"
    )
    parser.add_argument(
        "--width", type=options.positive_float, default=1.0, help="channel width multiplier"
    )
    parser.add_argument("--seed", type=options.seed, default=0)
    parser.add_argument(
        "--param", action="append", default=[], help="KEY=VALUE metric parameter (JSON value)"
    )
    parser.add_argument("--quick", action="store_true", help="ResNet-20, width 0.5, sparsity 0.6")
    parser.add_argument("--keep-graphs", action="store_true", help="keep graphs under DIR/graphs")
    parser.add_argument("--out", required=True, type=Path, help="output directory for the CSVs")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    from ..io import write_csv

    if rows:
        write_csv(pd.DataFrame(rows), path)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..metrics import applicable_families
    from .metrics import parse_params

    archs, sparsities, width = args.archs, args.sparsities, args.width
    if args.quick:
        archs, sparsities, width = ["resnet20"], [0.6], 0.5
    families = args.families
    if families is None:
        families = applicable_families(args.encoding)
    params = parse_params(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(HEADER)
    enc_rows: list[dict[str, Any]] = []
    met_rows: list[dict[str, Any]] = []
    if args.graph is not None:
        from ..encode.graph import load_graph

        if not args.graph.exists():
            raise ConfigError(f"{args.graph}: graph file not found")
        meta = load_graph(args.graph).meta
        fams = args.families or applicable_families(meta.get("encoding"))
        case = {"graph": str(args.graph), "encoding": meta.get("encoding")}
        _write_csv(out / "metrics.csv", _bench_families(args.graph, fams, params, case))
        print(f"wrote {out / 'metrics.csv'}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            for s in sparsities:
                case = {"arch": arch, "method": args.method, "sparsity": s, "width": width}
                d = Path(tmp) / f"{arch}-{s}"
                d.mkdir()
                prep = _child(
                    ["prepare", arch, args.method, str(s), str(args.seed), str(width), str(d)]
                )
                gdir = out / "graphs" if args.keep_graphs else d
                gdir.mkdir(exist_ok=True)
                gpath = gdir / f"{arch}-{args.method}-{s}-{args.encoding}.npz"
                r = _child(
                    ["encode", prep["spec"], prep["weights"], args.encoding, str(gpath), args.mode]
                )
                enc_rows.append({**case, "encoding": args.encoding, **_rounded(r), **host_info()})
                _print_row("encode", enc_rows[-1], args.encoding)
                met_rows += _bench_families(gpath, families, params, case)
    _write_csv(out / "encode.csv", enc_rows)
    _write_csv(out / "metrics.csv", met_rows)
    print(f"wrote {out / 'encode.csv'} and {out / 'metrics.csv'}")
    return 0


def _bench_families(
    graph: Path, families: list[str], params: dict[str, Any], case: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each family on ``graph`` in a fresh process (so its peak RSS is its own); one row each."""
    rows = []
    for fam in families:
        r = _child(["family", str(graph), fam, json.dumps(params)])
        row = {**case, "family": fam, **_rounded(r), **host_info()}
        row.pop("network"), row.pop("nan_reasons")
        rows.append(row)
        _print_row("metrics", row, fam)
    return rows


def _rounded(r: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}


HEADER = (
    f"{'stage':8}{'arch':10}{'sparsity':>9} {'encoding/family':16}{'nodes':>9}"
    f"{'edges':>12}{'seconds':>9}{'peak MB':>9}{'load1':>7}"
)


def _print_row(stage: str, r: dict[str, Any], what: str) -> None:
    arch = r.get("arch", "-")
    sparsity = f"{r['sparsity']:9.2f}" if "sparsity" in r else f"{'-':>9}"
    print(
        f"{stage:8}{arch:10}{sparsity} {what:16}{r['nodes']:9d}{r['edges']:12d}"
        f"{r['seconds']:9.2f}{r['peak_rss_mb']:9.0f}{r['load1']:7.1f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
