"""``snntopo mask``: compute one PaI mask and write it as ``mask.safetensors``.

The same stage function as the workflow's ``mask`` rule (:func:`snntopo.stages.mask.make_mask`),
fed by the same typed job (:class:`snntopo.stages.network.NetworkJob`): data-driven methods read
shuffled, augmented training batches from ``--data-root`` (``--download`` fetches a missing data
set), with a loader seeded from ``--seed``, exactly as in the workflow.
"""

from __future__ import annotations

import argparse
import json

from ..perf import measure
from . import options


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_network_arguments(parser, method_default=None)
    parser.add_argument(
        "--batch-size", type=options.positive_int, default=None, help="override the method's"
    )
    parser.add_argument("--out", required=True, help="output mask.safetensors")
    parser.add_argument(
        "--init", default=None, help="also write the masked initial weights (.safetensors)"
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from ..stages.mask import make_mask

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options.check_out_not_input(args.out, [args.config])
    options.check_out_writable(args.out)
    if args.init is not None:
        options.check_out_not_input(args.init, [args.config, args.out], "--init")
        options.check_out_writable(args.init, "--init")
    job = options.job_from_args(args)
    with measure() as m:
        meta = make_mask(job, args.out, args.init)
    line = {
        "out": args.out,
        "method": job.method,
        "sparsity": job.sparsity,
        "realised_sparsity": meta["realised_sparsity"],
        "emptied_layers": meta.get("emptied_layers", []),
        "seconds": round(m.seconds, 3),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
    }
    print(json.dumps(line))
    return 0
