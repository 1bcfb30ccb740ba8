"""``snntopo encode``: build one graph encoding of one network and write it as ``.npz``.

Weights come from (first match): ``--checkpoint`` (a trained masked ``model.safetensors``), or the
seeded initialisation masked by ``--mask`` (a mask ``.safetensors``), or by a mask computed here with
the PaI method (data-free methods need no data set). Prints one JSON line: nodes, edges, seconds
(graph construction only), peak_rss_mb (whole process), output path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError


def configure(parser: argparse.ArgumentParser) -> None:
    from . import ENCODINGS

    parser.add_argument("--arch", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", default="erk", help="PaI method (when no --mask/--checkpoint)")
    parser.add_argument("--sparsity", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", required=True, choices=ENCODINGS.names())
    parser.add_argument("--mode", default="exact", choices=list(ENCODINGS.meta("mge")["modes"]))
    parser.add_argument(
        "--identity-edges", action="store_true", help="MGE: weight-1 identity edges"
    )
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=None)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--mask", type=Path, help="mask .safetensors (bool tensors by param name)")
    src.add_argument("--checkpoint", type=Path, help="trained masked model.safetensors")
    parser.add_argument("--spec", type=Path, help="layers.json to use instead of tracing the model")
    parser.add_argument("--out", type=Path, required=True)


def _read_safetensors(path: Path, what: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not path.exists():
        raise MaskError(f"{path}: {what} file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise MaskError(f"{path}: unreadable {what} file ({exc})") from None


def masked_weights(args: argparse.Namespace, model: Any) -> tuple[dict[str, np.ndarray], dict]:
    """The masked float32 weights of the prunable parameters and where they came from."""
    from ..io import file_digest
    from ..models import prunable_parameters

    params = dict(prunable_parameters(model))
    if args.checkpoint is not None:
        state = _read_safetensors(args.checkpoint, "checkpoint")
        missing = [n for n in params if n not in state]
        if missing:
            raise MaskError(f"{args.checkpoint}: no tensors for {missing[:3]}")
        src = {"checkpoint": str(args.checkpoint), "digest": file_digest(args.checkpoint)}
        return {n: np.asarray(state[n], dtype=np.float32) for n in params}, src
    init = {n: p.detach().cpu().numpy().astype(np.float32) for n, p in params.items()}
    if args.mask is not None:
        masks = _read_safetensors(args.mask, "mask")
        src = {"mask": str(args.mask), "digest": file_digest(args.mask)}
    elif args.method == "dense" or args.sparsity == 0:
        masks = {n: np.ones(w.shape, dtype=bool) for n, w in init.items()}
        src = {"mask": "dense"}
    else:
        from ..pai import compute_mask

        tmasks, info = compute_mask(args.method, model, args.sparsity, seed=args.seed)
        masks = {n: m.cpu().numpy() for n, m in tmasks.items()}
        src = {"mask": f"computed:{args.method}", "realised_sparsity": info.get("sparsity")}
    out = {}
    for n, w in init.items():
        if n not in masks:
            raise MaskError(f"mask has no entry for parameter {n!r}")
        m = np.asarray(masks[n]).astype(bool)
        if m.shape != w.shape:
            raise MaskError(f"mask for {n!r} has shape {list(m.shape)}, weight {list(w.shape)}")
        out[n] = np.where(m, w, np.float32(0))
    return out, src


def run(args: argparse.Namespace) -> int:
    from ..data import dataset_shape
    from ..io import provenance, read_json
    from ..models import build_model
    from ..perf import measure, peak_rss_mb
    from . import build_graph, save_graph
    from .layers import layer_spec, validate_spec

    num_classes, in_channels, size = dataset_shape(args.dataset, args.input_size)
    model = build_model(
        args.arch,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=size,
        width=args.width,
        seed=args.seed,
    )
    if args.spec is not None:
        spec = read_json(args.spec, required=("blocks", "layers"))
        validate_spec(spec)
    else:
        spec = layer_spec(model, (in_channels, size, size), arch=args.arch, num_classes=num_classes)
    weights, source = masked_weights(args, model)
    del model
    options = {"identity_edges": True} if args.identity_edges else {}
    with measure() as m:
        graph = build_graph(args.encoding, spec, weights, mode=args.mode, **options)
    graph.meta.update(
        dataset=args.dataset,
        method=args.method,
        sparsity=args.sparsity,
        seed=args.seed,
        width=args.width,
        weights_source=source,
        build_seconds=round(m.seconds, 3),
    )
    graph.meta["provenance"] = provenance(
        arch=args.arch,
        dataset=args.dataset,
        method=args.method,
        sparsity=args.sparsity,
        seed=args.seed,
        encoding=args.encoding,
        mode=args.mode,
        width=args.width,
        input_size=size,
        **options,
    )
    save_graph(args.out, graph)
    line = {
        "encoding": args.encoding,
        "mode": args.mode,
        "nodes": graph.n_nodes,
        "edges": graph.n_edges,
        "seconds": round(m.seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "out": str(args.out),
    }
    print(json.dumps(line))
    return 0
