"""``snntopo train``: train one masked network and write ``model.safetensors``, ``train.json``
and ``history.csv``.

The same stage as the workflow's ``train`` rule (:func:`snntopo.stages.train.train_network`) on
the same typed job: the recipe is the paper's for (dataset, arch) unless ``--config`` (a workflow
config, whose ``training`` section and overrides apply) or single flags say otherwise. An
interrupted run resumes from ``<out>/checkpoint.pt``; the checkpoint is removed once the artifacts
are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from . import options

FLAG_KEYS = ("epochs", "lr", "batch_size", "weight_decay", "amp", "num_workers", "limit_batches")


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_network_arguments(parser, method_default="dense")
    parser.add_argument("--mask", default=None, help="mask.safetensors (default: dense)")
    parser.add_argument("--epochs", type=options.non_negative_int, default=None)
    parser.add_argument("--lr", type=options.positive_float, default=None)
    parser.add_argument("--batch-size", type=options.positive_int, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--amp", default=None, choices=["auto", "off", "bf16", "fp16"])
    parser.add_argument("--num-workers", type=options.non_negative_int, default=None)
    parser.add_argument(
        "--limit-batches", type=options.positive_int, default=None, help="smoke tests only"
    )
    parser.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from ..perf import measure
    from ..stages.train import train_network
    from ..train import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the mask file says which method and sparsity it is; --batch-size is training's here
    job = options.job_from_args(argparse.Namespace(**{**vars(args), "batch_size": None}))
    training = dict(job.training)
    for key in FLAG_KEYS:
        if getattr(args, key) is not None:
            training[key] = getattr(args, key)
    cfg = TrainConfig.from_dict({**training, "device": job.device}, where="command line")
    from ..config import recipe_against_data, warn_once
    from ..errors import ConfigError

    error, late = recipe_against_data(cfg, job.dataset, "training")
    if error:
        raise ConfigError(error)
    if late:
        warn_once(
            f"training.milestones: {list(late)} never take effect in {cfg.epochs} epoch(s); the "
            "learning rate is not decayed there"
        )
    job = dataclasses.replace(job, training=training)
    out = Path(args.out)
    options.check_out_not_input(out / "model.safetensors", [args.mask, args.config])
    options.check_out_writable(out / "model.safetensors", "--out")
    with measure() as m:
        result = train_network(
            job,
            args.mask,
            str(out / "model.safetensors"),
            str(out / "train.json"),
            str(out / "checkpoint.pt"),
            log=out / "train.log",
            out_history=str(out / "history.csv"),
            strict=False,  # a mask given here may be made by hand: check what it records
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
