"""Time and peak memory of every PaI method's mask per architecture (full width, 32x32, 10 classes,
random data) on the current device (CUDA if available, else CPU).

Each (arch, method) runs in its own subprocess so the peak resident memory (CPU) is that case's
alone (``ru_maxrss`` only grows); on CUDA the peak allocated GPU memory is reported as well.

    python benchmarks/bench_pai.py [--archs conv6 resnet20] [--methods snip synflow]
                                   [--sparsity 0.9] [--prospr-batch 512] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ARCHS = ("conv6", "resnet20", "resnet32", "wrn28_2")
METHODS = ("uniform", "er", "erk", "snip", "grasp", "synflow", "prospr")


def one(arch: str, method: str, sparsity: float, device: str, prospr_batch: int) -> dict:
    import torch

    from snntopo.models import build_model
    from snntopo.pai import compute_mask
    from snntopo.perf import peak_rss_mb

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model(arch, 10, 3, 32, 1.0, seed=0).to(device)

    def loader_factory(batch_size: int):
        g = torch.Generator().manual_seed(0)
        for _ in range(1000):
            yield (
                torch.randn(batch_size, 3, 32, 32, generator=g),
                torch.randint(0, 10, (batch_size,), generator=g),
            )

    params = {"batch_size": prospr_batch} if method == "prospr" else {}
    rss0 = peak_rss_mb()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    _, info = compute_mask(
        method, model, sparsity, seed=0, loader_factory=loader_factory, params=params
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out = {
        "arch": arch,
        "method": method,
        "device": device,
        "threads": torch.get_num_threads(),
        "sparsity": sparsity,
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_mb": round(rss0, 1),
        "realised_sparsity": round(info["realised_sparsity"], 6),
        "emptied_layers": info["emptied_layers"],
        "params": params,
    }
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--prospr-batch", type=int, default=512)
    ap.add_argument("--device", default=None)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    ap.add_argument("--out", default=None, help="write all results as JSON")
    ap.add_argument("--one", nargs=2, metavar=("ARCH", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        res = one(*args.one, args.sparsity, args.device, args.prospr_batch)
        print("RESULT " + json.dumps(res))
        return 0
    results = []
    for arch in args.archs:
        for method in args.methods:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                arch,
                method,
                "--sparsity",
                str(args.sparsity),
            ]
            cmd += ["--device", args.device, "--prospr-batch", str(args.prospr_batch)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                res = (
                    json.loads(lines[-1][7:])
                    if lines
                    else {"arch": arch, "method": method, "error": proc.stderr.strip()[-400:]}
                )
            except subprocess.TimeoutExpired:
                res = {"arch": arch, "method": method, "error": f"timeout {args.timeout}s"}
            results.append(res)
            print(json.dumps(res), flush=True)
    print(f"\n{'arch':10} {'method':8} {'seconds':>9} {'peak MB':>9}")
    for r in results:
        mem = r.get("peak_cuda_mb", r.get("peak_rss_mb", float("nan")))
        print(f"{r['arch']:10} {r['method']:8} {r.get('seconds', float('nan')):9.2f} {mem:9.1f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
