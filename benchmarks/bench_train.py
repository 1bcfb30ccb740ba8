"""Training throughput (images/s) and peak memory per architecture on the current device.

Runs the real masked training loop (``snntopo.train.train_masked``: masking of gradients and
weights, AMP/channels_last choices of ``auto``) on random CIFAR-shaped data at full width. Each
architecture runs in its own process so the peak memory is its own (CPU: peak RSS; CUDA: peak
allocated by the caching allocator). The first epoch of ``--warmup`` batches is discarded
(allocator, cuDNN autotuning); the second epoch of ``--steps`` batches is timed.

    python benchmarks/bench_train.py                    # all architectures, auto device
    python benchmarks/bench_train.py --archs conv6 --steps 10 --device cpu
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from snntopo.data import TensorImageDataset
    from snntopo.models import build_model, prunable_parameters
    from snntopo.perf import peak_rss_mb
    from snntopo.train import TrainConfig, resolve_device, train_masked

    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    n = args.batch_size * max(args.steps, args.warmup)
    x = torch.randn(n, 3, args.size, args.size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    train_set = TensorImageDataset(x, y)
    test_set = TensorImageDataset(x[: args.batch_size], y[: args.batch_size])
    model = build_model(args.arch, 10, 3, args.size, args.width, seed=0)
    masks = {
        name: torch.rand(p.shape, generator=g) >= args.sparsity
        for name, p in prunable_parameters(model)
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    history = []
    for steps in (args.warmup, args.steps):  # warm-up run, then the timed run
        cfg = TrainConfig.from_dict(
            {
                "epochs": 1,
                "batch_size": args.batch_size,
                "limit_batches": steps,
                "milestones": [1],
                "device": args.device,
                "amp": args.amp,
            }
        )
        res = train_masked(model, masks, train_set, test_set, cfg, seed=0)
        history.append(res.history[-1])
    row = history[-1]
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()
    )
    return {
        "arch": args.arch,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "amp": res.amp or "off",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "params": res.params["total"],
        "images_per_s": row["images_per_s"],
        "ms_per_step": 1000 * row["seconds"] / args.steps,
        "peak_mb": peak,
        "peak_kind": "cuda_allocated" if device.type == "cuda" else "rss",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["conv6", "resnet20", "resnet32", "wrn28_2"])
    p.add_argument("--arch", help=argparse.SUPPRESS)  # child process
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--sparsity", type=float, default=0.9, help="random mask sparsity")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    if args.arch:
        print(json.dumps(run_one(args)))
        return 0

    rows = []
    common = [
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch-size={args.batch_size}",
        f"--size={args.size}",
        f"--width={args.width}",
        f"--sparsity={args.sparsity}",
        f"--device={args.device}",
        f"--amp={args.amp}",
    ]
    for arch in args.archs:
        out = subprocess.run(
            [sys.executable, __file__, f"--arch={arch}", *common],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{arch}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    first = rows[0]
    print(
        f"device {first['device_name']} ({first['device']}), amp {first['amp']}, "
        f"threads {first['threads']}, batch {args.batch_size}, {args.steps} timed steps, "
        f"input {args.size}x{args.size}, width {args.width}, mask sparsity {args.sparsity}"
    )
    print(f"{'arch':<10} {'params':>10} {'images/s':>10} {'ms/step':>9} {'peak MiB':>9}")
    for r in rows:
        print(
            f"{r['arch']:<10} {r['params']:>10,} {r['images_per_s']:>10.0f} "
            f"{r['ms_per_step']:>9.1f} {r['peak_mb']:>9.0f}"
        )
    print(f"(peak = {first['peak_kind']})")
    if args.json:
        from snntopo.io import write_json

        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
