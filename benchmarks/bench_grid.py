"""Estimated cost of the paper grid's mask, encode and MGE metric stages (training excluded).

    python benchmarks/bench_grid.py --out DIR [--measure resnet20:0.95 resnet20:0.98 ...]
        [--config config/config.yaml] [--node-cores 64] [--node-mem-gb 256] [--repeats 1]

1. Measures a few representative cells (architecture:sparsity, data-free ERK masks, CIFAR-10
   shape, full width), each stage in its own fresh process (``snntopo bench`` workers): the PaI
   mask, the MGE encoding, and every MGE metric family with the threads its workflow rule uses.
   Time is the stage's wall seconds plus the process's import and graph-load cost; memory is the
   process's peak RSS.
2. Fits each stage as ``fixed + per_edge * edges`` (least squares over the measured cells; one
   cell: proportional beyond the smallest process), and extrapolates to every (dataset,
   architecture, sparsity) cell of the config by the MGE's estimated edge count
   (:func:`snntopo.encode.estimate_edges` with uniform density: an upper estimate).
   The expensive cells (Conv-6 and WRN at low sparsity, Tiny-ImageNet's 64x64 inputs) are
   therefore *extrapolated*, not measured; the table says which cells were measured.
3. Prints and writes ``DIR/grid_cells.csv`` (per cell) and ``DIR/grid_summary.csv``: CPU-hours
   per stage over the whole grid (cells x methods x seeds), the largest job's memory, and how many
   jobs of each stage fit one node of ``--node-cores`` / ``--node-mem-gb``.

Mask times are ERK's (data-free, CPU); the data-driven methods (SNIP, GraSP, SynFlow, ProsPr)
run on a GPU in the workflow and are costed at the same figure here, which understates them.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES_FAMILIES = ("local", "neighbourhood", "strength", "global", "expansion")


def layer_spec_of(dataset: str, arch: str, input_side: int, width: float) -> dict[str, Any]:
    """The layer spec of one (data set, architecture) cell, built here (imports torch)."""
    from snntopo.data import dataset_shape
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    classes, channels, side = dataset_shape(dataset, input_side)
    model = build_model(arch, classes, channels, side, width, seed=0)
    return layer_spec(model, (channels, side, side))


def _worker(argv: list[str]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snntopo.cli.bench", *argv], capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench worker {argv[0]} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def measure_cell(arch: str, sparsity: float, tmp: Path, threads: dict[str, int]) -> dict[str, Any]:
    """Mask, encode and every family of one cell, each in a fresh process (wall incl. imports)."""
    d = tmp / f"{arch}-{sparsity}"
    d.mkdir()
    prep, prep_wall = _worker(["prepare", arch, "erk", str(sparsity), "0", "1.0", str(d)])
    g = d / "mge.npz"
    enc, enc_wall = _worker(["encode", prep["spec"], prep["weights"], "mge", str(g), "exact"])
    row: dict[str, Any] = {
        "arch": arch,
        "sparsity": sparsity,
        "edges": enc["edges"],
        "mask_s": prep_wall,
        "mask_mb": prep["peak_rss_mb"],
        "encode_s": enc_wall,
        "encode_mb": enc["peak_rss_mb"],
    }
    for fam in STAGES_FAMILIES:
        params = json.dumps({"seed": 0, "threads": threads[fam]})
        r, wall = _worker(["family", str(g), fam, params])
        row[f"{fam}_s"] = wall
        row[f"{fam}_mb"] = r["peak_rss_mb"]
    g.unlink()
    print(
        f"measured {arch:9} s={sparsity:<5} edges={row['edges']:>11,} "
        + " ".join(f"{k[:-2]}={row[k]:.1f}s" for k in row if k.endswith("_s")),
        flush=True,
    )
    return row


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(fixed, per_edge) of y = fixed + per_edge * x, clipped to non-negative terms."""
    if len(xs) == 1 or len(set(xs)) == 1:
        return 0.0, ys[0] / max(xs[0], 1.0)
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = max(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx, 0.0)
    return max(my - slope * mx, 0.0), slope


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument(
        "--measure",
        nargs="+",
        default=["resnet20:0.95", "resnet20:0.98"],
        metavar="ARCH:SPARSITY",
        help="cells to measure (default: two cheap ResNet-20 cells, about a minute)",
    )
    ap.add_argument("--node-cores", type=int, default=64)
    ap.add_argument("--node-mem-gb", type=float, default=256.0)
    args = ap.parse_args(argv)

    import pandas as pd
    import yaml

    from snntopo.data import dataset_shape
    from snntopo.encode import estimate_edges
    from snntopo.io import write_csv
    from snntopo.workflow import family_threads

    cfg = yaml.safe_load(args.config.read_text())
    threads = {f: family_threads(f) for f in STAGES_FAMILIES}
    with tempfile.TemporaryDirectory() as tmp:
        measured = []
        for cell in args.measure:
            arch, _, s = cell.partition(":")
            measured.append(measure_cell(arch, float(s), Path(tmp), threads))
    stages = ["mask", "encode", *STAGES_FAMILIES]
    models = {}
    for st in stages:
        edges = [float(r["edges"]) for r in measured]
        models[st] = (
            fit(edges, [float(r[f"{st}_s"]) for r in measured]),
            fit(edges, [float(r[f"{st}_mb"]) for r in measured]),
        )
    sizes = (cfg.get("model", {}) or {}).get("input_size", {}) or {}
    width = float((cfg.get("model", {}) or {}).get("width", 1.0))
    n_jobs = len(cfg["methods"]) * len(cfg["seeds"])
    rows = []
    done = {(r["arch"], float(r["sparsity"])) for r in measured}
    for ds in cfg["datasets"]:
        _, _, side = dataset_shape(ds)
        side = int(sizes.get(ds, side))
        for arch in cfg["architectures"]:
            spec = layer_spec_of(ds, arch, side, width)
            for s in cfg["sparsities"]:
                nnz = {
                    lay["param"]: (1 - float(s)) * math.prod(lay["weight_shape"])
                    for lay in spec["layers"]
                }
                e = estimate_edges(spec, nnz, "mge")
                row: dict[str, Any] = {"dataset": ds, "arch": arch, "sparsity": s, "edges": e}
                row["measured"] = ds == "cifar10" and (arch, float(s)) in done
                for st in stages:
                    (tf, tp), (mf, mp) = models[st]
                    row[f"{st}_s"] = tf + tp * e
                    row[f"{st}_mb"] = mf + mp * e
                rows.append(row)
    cells = pd.DataFrame(rows)
    summary = []
    for st in stages:
        t = threads.get(st, 1)
        cpu_h = float(cells[f"{st}_s"].sum()) * n_jobs * t / 3600
        peak = float(cells[f"{st}_mb"].max())
        fit_n = min(args.node_cores // t, int(args.node_mem_gb * 1024 // max(peak, 1.0)))
        summary.append(
            {
                "stage": st,
                "threads": t,
                "jobs": len(cells) * n_jobs,
                "cpu_hours": round(cpu_h, 2),
                "largest_job_mb": round(peak),
                "jobs_per_node": fit_n,
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(cells.round(2), args.out / "grid_cells.csv")
    summ = pd.DataFrame(summary)
    write_csv(summ, args.out / "grid_summary.csv")
    print(summ.to_string(index=False))
    # graph files are uncompressed: 4 B index + 4 B weight per edge (indptr: 8 B per node, small)
    disk_gb = float(cells["edges"].sum()) * n_jobs * 8 / 1e9
    print(f"MGE graph files on disk (uncompressed, 8 B/edge): {disk_gb:,.0f} GB in all")
    print(
        f"node: {args.node_cores} cores, {args.node_mem_gb:g} GB; measured cells: "
        f"{', '.join(args.measure)} (cifar10); every other cell extrapolated by edges"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
