"""``snntopo train``: train one masked network and write ``model.safetensors`` + ``train.json``.

The training recipe is the paper's for (dataset, arch) unless ``--config`` (a workflow config,
whose ``training`` section and overrides are applied) or single flags say otherwise. An interrupted
run resumes from ``<out>/checkpoint.pt``; the checkpoint is removed once the artifacts are written.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from .errors import ConfigError

FLAG_KEYS = ("epochs", "lr", "batch_size", "weight_decay", "amp", "num_workers", "limit_batches")


def configure(parser: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .models import arch_name

    parser.add_argument(
        "--arch",
        required=True,
        type=arch_name,
        help="bundled, torchvision:<name> or module:<path>:<fn>",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS.names())
    parser.add_argument("--mask", default=None, help="mask.safetensors (default: dense)")
    parser.add_argument("--seed", type=int, default=0, help="init, shuffling and augmentation")
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    parser.add_argument("--input-size", type=int, default=None, help="default: the data set's")
    parser.add_argument("--data-root", default="data", help="where the data sets live")
    parser.add_argument("--download", action="store_true", help="download missing data sets")
    parser.add_argument("--config", default=None, help="workflow config YAML (training section)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--amp", default=None, choices=["auto", "off", "bf16", "fp16"])
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--limit-batches", type=int, default=None, help="smoke tests only")
    parser.add_argument("--out", required=True, help="output directory")


def _training_dict(args: argparse.Namespace) -> dict[str, Any]:
    from .train import paper_recipe

    if args.config:
        from .config import load_config, training_settings

        train = training_settings(load_config(args.config), args.dataset, args.arch)
    else:
        train = paper_recipe(args.dataset, args.arch)
    for key in FLAG_KEYS:
        value = getattr(args, key)
        if value is not None:
            train[key] = value
    train["device"] = args.device
    return train


def run(args: argparse.Namespace) -> int:
    from .data import dataset_shape
    from .io import file_digest
    from .models import build_model
    from .pai.io import load_mask
    from .perf import measure
    from .stages import train_and_save
    from .train import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    num_classes, in_channels, size = dataset_shape(args.dataset, args.input_size)
    if args.width <= 0:
        raise ConfigError(f"--width must be positive, got {args.width}")
    cfg = TrainConfig.from_dict(_training_dict(args))
    out = Path(args.out)
    model = build_model(args.arch, num_classes, in_channels, size, args.width, seed=args.seed)
    masks, mask_meta = load_mask(args.mask, model) if args.mask else (None, {})
    if args.mask:
        mask_meta = {**mask_meta, "mask_sha256": file_digest(args.mask)}
    params = {
        "arch": args.arch,
        "dataset": args.dataset,
        "seed": args.seed,
        "width": args.width,
        "input_size": size,
        "data_root": args.data_root,
        "download": args.download,
        "mask": args.mask,
    }
    with measure() as m:
        result = train_and_save(
            model,
            masks,
            mask_meta,
            params,
            cfg,
            str(out / "model.safetensors"),
            str(out / "train.json"),
            str(out / "checkpoint.pt"),
            log=out / "train.log",
        )
    line = {
        "out": str(out),
        "accuracy": result.accuracy,
        "epochs": result.epochs,
        "resumed_from": result.resumed_from,
        "seconds": round(m.seconds, 3),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
    }
    print(json.dumps(line))
    return 0
