"""Time and peak memory of every metric family on one graph (a stored ``.npz`` or a synthetic one).

Why a fresh subprocess per family: ``ru_maxrss`` is a per-process high-water mark, so only a fresh
process gives each family its own peak-RSS figure (graph loading included, as in a real job).

Usage::

    python benchmarks/bench_metrics.py --synthetic                 # ResNet-20-sized conv-like MGE
    python benchmarks/bench_metrics.py --synthetic --save g.npz    # also keep the graph
    python benchmarks/bench_metrics.py --graph results/.../graphs/mge.npz --families local global
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (name, c_in, c_out, size_in, stride) of ResNet-20's convolutions on a 32x32x3 input; the block
# sizes match the paper's MGE (3*32*32 inputs, 7x 16*32*32, 6x 32*16*16, 6x 64*8*8, 10 outputs).
RESNET20_CONVS: list[tuple[str, int, int, int, int]] = [("conv1", 3, 16, 32, 1)]
for _stage, (_c, _h) in enumerate([(16, 32), (32, 16), (64, 8)], start=1):
    for _b in range(3):
        _first = _stage > 1 and _b == 0
        _cin = _c // 2 if _first else _c
        RESNET20_CONVS.append(
            (f"layer{_stage}.{_b}.conv1", _cin, _c, _h * 2 if _first else _h, 2 if _first else 1)
        )
        RESNET20_CONVS.append((f"layer{_stage}.{_b}.conv2", _c, _c, _h, 1))


def _conv_edges(
    rng: np.random.Generator,
    in_start: int,
    in_shape: tuple[int, int, int],
    out_start: int,
    out_shape: tuple[int, int, int],
    kernel: int,
    stride: int,
    pad: int,
    density: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges of an unrolled convolution with a random Bernoulli(density) weight mask (vectorised)."""
    ci, hi, wi = in_shape
    co, ho, wo = out_shape
    mask = rng.random((co, ci, kernel, kernel)) < density
    o, i, u, v = (a.astype(np.int64) for a in np.nonzero(mask))
    w = rng.standard_normal(o.shape[0]).astype(np.float32) * 0.1
    y, x = (
        a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    )
    iy = y[None, :] * stride + u[:, None] - pad
    ix = x[None, :] * stride + v[:, None] - pad
    valid = (iy >= 0) & (iy < hi) & (ix >= 0) & (ix < wi)
    tap, pos = np.nonzero(valid)
    src = in_start + i[tap] * hi * wi + iy[tap, pos] * wi + ix[tap, pos]
    dst = out_start + o[tap] * ho * wo + y[pos] * wo + x[pos]
    return src, dst, w[tap]


def synthetic_resnet20_mge(density: float = 0.65, seed: int = 0):
    """A conv-geometry MGE with ResNet-20's blocks (191,498 nodes), ~25M edges at density 0.65.

    Stands in for the real encoder's output: same block sizes, 3x3 'same' convolutions (stride-2
    where ResNet-20 downsamples), 1x1 stride-2 shortcut edges, and the linear layer behind the 8x8
    global average pool (each weight replicated 64x), with random masks of the given density.
    """
    from snntopo.encode.graph import Block, from_edges

    rng = np.random.default_rng(seed)
    blocks: list[Block] = []
    start = 0

    def add_block(name: str, shape: tuple[int, ...]) -> Block:
        nonlocal start
        b = Block(name, start, start + int(np.prod(shape)), shape)
        blocks.append(b)
        start = b.stop
        return b

    prev = add_block("input", (3, 32, 32))
    srcs, dsts, ws = [], [], []
    block_in = prev
    for name, _cin, cout, hin, stride in RESNET20_CONVS:
        hout = hin // stride
        out = add_block(name, (cout, hout, hout))
        s, d, w = _conv_edges(
            rng, prev.start, prev.shape, out.start, out.shape, 3, stride, 1, density
        )
        srcs.append(s), dsts.append(d), ws.append(w)
        if name.endswith("conv1"):
            block_in = prev
        if name.endswith("conv2") and block_in.shape != out.shape:
            s, d, w = _conv_edges(
                rng, block_in.start, block_in.shape, out.start, out.shape, 1, 2, 0, density
            )
            srcs.append(s), dsts.append(d), ws.append(w)
        prev = out
    outb = add_block("linear", (10,))
    lin = rng.random((10, 64)) < density
    o, c = np.nonzero(lin)
    pix = np.arange(64)
    src = prev.start + (c[:, None] * 64 + pix[None, :]).ravel()
    dst = outb.start + np.repeat(o, 64)
    (
        srcs.append(src),
        dsts.append(dst),
        ws.append(np.repeat(rng.random(o.shape[0]).astype(np.float32), 64)),
    )
    return from_edges(
        np.concatenate(srcs),
        np.concatenate(dsts),
        np.concatenate(ws),
        blocks,
        meta={
            "encoding": "mge",
            "synthetic": {"arch": "resnet20", "density": density, "seed": seed},
        },
    )


def _worker(path: str, family: str, params: dict) -> None:
    """Child process: load the graph, compute one family, print one JSON line."""
    from snntopo.encode.graph import load_graph
    from snntopo.metrics import compute_family
    from snntopo.perf import peak_rss_mb

    t0 = time.perf_counter()
    graph = load_graph(path)
    load_s = time.perf_counter() - t0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    art = compute_family(family, graph, params)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    print(
        json.dumps(
            {
                "family": family,
                "seconds": round(art["seconds"], 3),
                "cpu_seconds": round(cpu_s, 3),
                "load_seconds": round(load_s, 3),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "nodes": graph.n_nodes,
                "edges": graph.n_edges,
                "network": art["network"],
                "nan_reasons": art["nan_reasons"],
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    from snntopo.metrics import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="ResNet-20-sized conv-like MGE")
    src.add_argument("--graph", help="a stored graph .npz")
    ap.add_argument("--density", type=float, default=0.65, help="synthetic mask density")
    ap.add_argument("--save", help="keep the synthetic graph at this path")
    ap.add_argument("--families", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE metric parameter")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    params: dict = {"seed": args.seed, "threads": args.threads}
    for kv in args.param:
        k, v = kv.split("=", 1)
        params[k] = json.loads(v)
    if args.worker:
        _worker(args.graph, args.worker, params)
        return 0
    tmpdir = None
    path = args.graph
    if args.synthetic:
        from snntopo.encode.graph import save_graph

        t0 = time.perf_counter()
        g = synthetic_resnet20_mge(args.density, args.seed)
        print(
            f"synthetic graph: {g.n_nodes} nodes, {g.n_edges} edges ({time.perf_counter() - t0:.1f} s)"
        )
        if args.save:
            path = args.save
        else:
            tmpdir = tempfile.TemporaryDirectory()
            path = str(Path(tmpdir.name) / "synthetic.npz")
        save_graph(path, g)
        del g
    families = args.families or [f for f in FAMILIES.names() if not FAMILIES.meta(f).get("layered")]
    total = cpu_total = 0.0
    print(f"{'family':<14}{'seconds':>9}{'cpu s':>8}{'load s':>8}{'peak RSS MB':>13}")
    for fam in families:
        cmd = [sys.executable, __file__, "--graph", path, "--worker", fam]
        cmd += ["--seed", str(args.seed), "--threads", str(args.threads)]
        for kv in args.param:
            cmd += ["--param", kv]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            print(f"{fam:<14} FAILED\n{proc.stderr[-2000:]}")
            continue
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        total += rec["seconds"]
        cpu_total += rec["cpu_seconds"]
        print(
            f"{fam:<14}{rec['seconds']:>9.2f}{rec['cpu_seconds']:>8.2f}"
            f"{rec['load_seconds']:>8.2f}{rec['peak_rss_mb']:>13.0f}"
        )
        print("    " + json.dumps(rec["network"]))
        if rec["nan_reasons"]:
            print("    NaN: " + json.dumps(rec["nan_reasons"]))
    print(f"{'total':<14}{total:>9.2f}{cpu_total:>8.2f}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if tmpdir is not None:
        tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
