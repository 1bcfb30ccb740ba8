"""Graph-encoding benchmark: build time and peak RSS per architecture at ERK sparsity 0.6 / 0.98.

Each case is built in a fresh Python subprocess that imports only numpy/scipy/snntopo.encode (no
torch), so its peak RSS (VmHWM) is the encoder's own footprint plus the interpreter. Another
subprocess (with torch) prepares the layer spec and the ERK-masked initial weights (``snntopo.pai``
when available, else a local ERK); the parent never imports torch.

Usage: ``python benchmarks/bench_encode.py [--archs conv6 resnet20 ...] [--sparsities 0.6 0.98]
[--encodings mge] [--mode exact]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time, resource
import numpy as np
from snntopo.encode import build_graph
spec = json.load(open(sys.argv[1]))
with np.load(sys.argv[2]) as z:
    weights = {k: z[k] for k in z.files}
def hwm():  # VmHWM: peak RSS of this process image (ru_maxrss can inherit the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rss0 = hwm()
t = time.perf_counter()
g = build_graph(sys.argv[3], spec, weights, mode=sys.argv[4])
dt = time.perf_counter() - t
peak = hwm()
print(json.dumps({"nodes": g.n_nodes, "edges": g.n_edges, "seconds": dt,
                  "rss_before_mb": rss0, "peak_rss_mb": peak}))
"""


def erk_masks(model, sparsity: float, seed: int) -> dict[str, np.ndarray]:
    """ERK masks: the real PaI implementation if present, else a local Erdos-Renyi-Kernel one."""
    try:
        from snntopo.pai import compute_mask

        masks, _ = compute_mask("erk", model, sparsity, seed=seed)
        return {n: m.numpy() for n, m in masks.items()}
    except ImportError:
        pass
    from snntopo.models import prunable_parameters

    params = [(n, p.shape) for n, p in prunable_parameters(model)]
    raw = np.array([sum(s) / np.prod(s) for _, s in params])
    numel = np.array([np.prod(s) for _, s in params], dtype=float)
    keep = (1 - sparsity) * numel.sum()
    dense = np.zeros(len(params), bool)
    while True:  # scale ERK densities, capping layers at 1
        eps = (keep - numel[dense].sum()) / (raw[~dense] * numel[~dense]).sum()
        over = (~dense) & (eps * raw > 1)
        if not over.any():
            break
        dense |= over
    rng = np.random.default_rng(seed)
    out = {}
    for (n, s), r, d in zip(params, raw, dense, strict=True):
        dens = 1.0 if d else eps * r
        out[n] = rng.random(s) < dens
    return out


def prepare(arch: str, sparsity: float, seed: int, workdir: Path) -> tuple[Path, Path]:
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model, prunable_parameters

    model = build_model(arch, num_classes=10, seed=seed)
    spec = layer_spec(model, (3, 32, 32), arch=arch, num_classes=10)
    masks = erk_masks(model, sparsity, seed)
    weights = {
        n: np.where(masks[n], p.detach().numpy(), 0).astype(np.float32)
        for n, p in prunable_parameters(model)
    }
    spec_path = workdir / f"{arch}.json"
    spec_path.write_text(json.dumps(spec))
    w_path = workdir / f"{arch}-{sparsity}.npz"
    np.savez(w_path, **weights)
    return spec_path, w_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["conv6", "resnet20", "resnet32", "wrn28_2"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=[0.6, 0.98])
    ap.add_argument("--encodings", nargs="+", default=["mge"])
    ap.add_argument("--mode", default="exact")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prepare", nargs=3, metavar=("ARCH", "SPARSITY", "DIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.prepare:
        arch, s, d = args.prepare
        prepare(arch, float(s), args.seed, Path(d))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            for s in args.sparsities:
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--prepare",
                        arch,
                        str(s),
                        tmp,
                        "--seed",
                        str(args.seed),
                    ],
                    check=True,
                )
                spec_path, w_path = Path(tmp) / f"{arch}.json", Path(tmp) / f"{arch}-{s}.npz"
                for enc in args.encodings:
                    res = subprocess.run(
                        [sys.executable, "-c", CHILD, str(spec_path), str(w_path), enc, args.mode],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if res.returncode:
                        print(res.stderr, file=sys.stderr)
                        continue
                    r = json.loads(res.stdout.strip().splitlines()[-1])
                    rows.append({"arch": arch, "sparsity": s, "encoding": enc, **r})
                    print(json.dumps(rows[-1]), flush=True)
    hdr = f"{'arch':10} {'sparsity':>8} {'encoding':>14} {'nodes':>9} {'edges':>12} "
    hdr += f"{'seconds':>8} {'peak MB':>8} {'base MB':>8}"
    print(hdr)
    for r in rows:
        print(
            f"{r['arch']:10} {r['sparsity']:8.2f} {r['encoding']:>14} {r['nodes']:9d} "
            f"{r['edges']:12d} {r['seconds']:8.2f} {r['peak_rss_mb']:8.0f} {r['rss_before_mb']:8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
