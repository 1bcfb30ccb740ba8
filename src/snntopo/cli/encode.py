"""``snntopo encode``: build one graph encoding of one network and write it as ``.npz``.

The same stages as the workflow, in the same order, on the same typed job
(:class:`snntopo.stages.network.NetworkJob`): the layer spec (``--spec`` or traced here), the
masked weights — from ``--checkpoint`` (a trained ``model.safetensors``), or the seeded
initialisation masked by ``--mask``, or by a mask the ``mask`` stage computes here with
``--method`` (data-driven methods read ``--data-root``, ``--download`` fetches it) — and the
``encode`` stage. Prints one JSON line: nodes, edges, seconds (graph construction; for an
uncompressed MGE, written as it is built, construction and writing),
peak_rss_mb (whole process), output path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from . import options


def configure(parser: argparse.ArgumentParser) -> None:
    from ..encode import ENCODINGS

    options.add_network_arguments(parser, method_default="erk")
    parser.add_argument("--encoding", required=True, choices=ENCODINGS.names())
    modes = sorted({m for e in ENCODINGS.names() for m in ENCODINGS.fact(e, "modes")})
    parser.add_argument("--mode", default="exact", choices=modes)
    parser.add_argument(
        "--identity-edges", action="store_true", help="MGE: weight-1 identity edges"
    )
    parser.add_argument(
        "--batch-size", type=options.positive_int, default=None, help="PaI batch size override"
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--mask", type=Path, help="mask .safetensors (bool tensors by param name)")
    src.add_argument("--checkpoint", type=Path, help="trained masked model.safetensors")
    parser.add_argument("--spec", type=Path, help="layers.json to use instead of tracing the model")
    parser.add_argument(
        "--compress", action="store_true", help="deflate the .npz (~7x smaller, slower I/O)"
    )
    parser.add_argument("--out", type=Path, required=True)
    options.add_memory_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..perf import peak_rss_mb
    from ..stages.encode import encode_network
    from ..stages.mask import make_mask, mask_model_weights
    from ..stages.spec import make_spec

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options.check_out_not_input(args.out, [args.mask, args.checkpoint, args.spec, args.config])
    options.check_out_writable(args.out)
    job = options.job_from_args(args)
    with tempfile.TemporaryDirectory(prefix="snntopo-encode-") as tmp:
        spec = str(args.spec) if args.spec is not None else f"{tmp}/layers.json"
        if args.spec is None:
            make_spec(job, spec)
        if args.checkpoint is not None:
            weights, source = str(args.checkpoint), {"checkpoint": str(args.checkpoint)}
        elif args.mask is not None:
            weights, source = f"{tmp}/init.safetensors", {"mask": str(args.mask)}
            mask_model_weights(job, str(args.mask), weights)
        else:
            weights = f"{tmp}/init.safetensors"
            meta = make_mask(job, f"{tmp}/mask.safetensors", weights)
            source = {
                "mask": f"computed:{job.method}",
                "realised_sparsity": meta["realised_sparsity"],
            }
        mask_file = str(args.mask) if args.mask is not None else f"{tmp}/mask.safetensors"
        if args.spec is not None and args.checkpoint is None:
            _check_spec_against_mask(spec, mask_file, str(args.mask or f"the {job.method} mask"))
        params = {
            "mode": args.mode,
            "identity_edges": bool(args.identity_edges),
            "compress": bool(args.compress),
            "network": {
                "dataset": job.dataset,
                "arch": job.arch,
                "method": job.method,
                "sparsity": job.sparsity,
                "seed": job.seed,
            },
            "weights_source": source,
        }
        # files given here may be made by hand: check what they record
        counts = encode_network(
            args.encoding,
            spec,
            weights,
            params,
            str(args.out),
            strict=False,
            memory=options.memory_guard(args),
        )
    line = {
        "encoding": args.encoding,
        "mode": args.mode,
        "nodes": counts["nodes"],
        "edges": counts["edges"],
        "seconds": round(counts["seconds"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "out": str(args.out),
    }
    print(json.dumps(line))
    return 0


def _check_spec_against_mask(spec_path: str, mask_path: str, label: str) -> None:
    """A ``--spec`` file against the mask the weights come from: one layer per masked weight,
    with the mask's shape (a spec cut short or of another network is refused naming the mask)."""
    from ..artifacts import read_safetensors_meta
    from ..encode.spec import check_spec, check_spec_weights
    from ..io import read_json
    from ..stages.encode import load_weights

    spec = read_json(spec_path, required=("layers", "blocks", "input_shape"))
    check_spec(spec, spec_path)
    masks = load_weights(mask_path)
    shapes = {k: tuple(v.shape) for k, v in masks.items()}
    outside = read_safetensors_meta(mask_path).get("outside_inference") or ()
    check_spec_weights(
        spec, spec_path, masks, label, prunable=shapes, prunable_source=label, outside=outside
    )
