"""``snntopo mask``: compute one PaI mask and write it as ``mask.safetensors``.

Data-free methods need only the architecture and the data set's shape facts (classes, channels);
data-dependent methods read shuffled, augmented training batches through ``snntopo.data`` with a
loader seeded from ``--seed`` (as the reference draws them from its shuffled training loader).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..perf import measure


def configure(parser: argparse.ArgumentParser) -> None:
    from ..models import arch_name
    from . import METHODS

    parser.add_argument(
        "--arch",
        required=True,
        type=arch_name,
        help="bundled, torchvision:<name> or module:<path>:<fn>",
    )
    parser.add_argument("--dataset", required=True, help="data set name (e.g. cifar10)")
    parser.add_argument("--method", required=True, choices=METHODS.names())
    parser.add_argument("--sparsity", required=True, type=float)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    parser.add_argument("--input-size", type=int, default=None, help="default: the data set's")
    parser.add_argument("--data-root", default="data", help="where the data sets live")
    parser.add_argument("--download", action="store_true", help="download missing data sets")
    parser.add_argument("--batch-size", type=int, default=None, help="override the method's")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1"
    )
    parser.add_argument("--out", required=True, help="output mask.safetensors")


def run(args: argparse.Namespace) -> int:
    from ..data import dataset_shape, pai_loader_factory
    from ..io import provenance
    from ..models import build_model
    from ..train import resolve_device
    from . import METHODS, compute_mask
    from .io import save_mask

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    num_classes, in_channels, size = dataset_shape(args.dataset, args.input_size)
    device = resolve_device(args.device)
    model = build_model(args.arch, num_classes, in_channels, size, args.width, seed=args.seed)
    loader_factory = None
    if METHODS.meta(args.method)["needs_data"]:
        loader_factory = pai_loader_factory(
            args.dataset, args.data_root, args.seed, download=args.download, input_size=size
        )

    params: dict[str, Any] = {"input_shape": [in_channels, size, size]}
    if args.batch_size is not None:
        params["batch_size"] = int(args.batch_size)
    with measure() as m:
        masks, info = compute_mask(
            args.method,
            model,
            args.sparsity,
            seed=args.seed,
            loader_factory=loader_factory,
            params=params,
            device=device,
        )
    meta = {
        **info,
        "arch": args.arch,
        "dataset": args.dataset,
        "width": args.width,
        "input_size": size,
        "provenance": provenance(
            arch=args.arch,
            dataset=args.dataset,
            method=args.method,
            sparsity=args.sparsity,
            seed=args.seed,
            width=args.width,
            input_size=size,
            params=params,
            fingerprint=info["fingerprint"],
        ),
    }
    save_mask(args.out, masks, meta)
    line = {
        "out": args.out,
        "method": args.method,
        "sparsity": args.sparsity,
        "realised_sparsity": info["realised_sparsity"],
        "emptied_layers": info["emptied_layers"],
        "seconds": round(m.seconds, 3),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
    }
    print(json.dumps(line))
    return 0
