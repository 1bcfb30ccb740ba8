"""Stage ``train``: train one masked network and write its artifacts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..io import file_digest, provenance, write_json
from ..names import DENSE
from .models import _build

log = logging.getLogger("snntopo.stages")


def train_and_save(
    model: Any,
    masks: dict[str, Any] | None,
    mask_meta: dict[str, Any],
    params: dict[str, Any],
    cfg: Any,
    out_model: str,
    out_summary: str,
    checkpoint: str,
    log: Any = None,
) -> Any:
    """Train ``model`` under ``masks`` and write ``model.safetensors`` and ``train.json``.

    Shared by the ``train`` rule and ``snntopo train`` so both write the same artifacts: the
    network keys (method and sparsity from the mask, ``dense``/0 without one), accuracy, history,
    device, parameter counts and the realised sparsity of the mask. Resumes from ``checkpoint``
    if a previous attempt left one, and removes it once the artifacts are written.
    """
    from ..artifacts import save_trained
    from ..data import load_dataset
    from ..train import train_masked

    common = dict(
        root=params["data_root"], download=params["download"], input_size=params["input_size"]
    )
    train_set = load_dataset(params["dataset"], train=True, **common)
    test_set = load_dataset(params["dataset"], train=False, **common)
    result = train_masked(
        model,
        masks,
        train_set,
        test_set,
        cfg,
        seed=params["seed"],
        checkpoint_path=checkpoint,
        log=log,
    )
    summary = {
        "dataset": params["dataset"],
        "arch": params["arch"],
        "method": mask_meta.get("method", DENSE),
        "sparsity": float(mask_meta.get("sparsity", 0.0)),
        "seed": int(params["seed"]),
        "accuracy": result.accuracy,
        "history": result.history,
        "realised_sparsity": mask_meta.get("realised_sparsity", 0.0),
        "mask_sha256": mask_meta.get("mask_sha256"),
        "device": result.device,
        "amp": result.amp,
        "parameters": result.params,
        "training": cfg.to_dict(),
        "provenance": provenance(**params),
    }
    save_trained(out_model, model, masks, {**summary, "params": params})
    write_json(out_summary, summary)
    Path(checkpoint).unlink(missing_ok=True)
    return result


def train_network(
    params: dict[str, Any], mask_path: str, out_model: str, out_summary: str, checkpoint: str
) -> None:
    """Train one masked network of the grid (the ``train`` rule)."""
    from ..pai.io import load_mask
    from ..train import TrainConfig

    model = _build(params)
    masks, mask_meta = load_mask(mask_path, model)
    cfg = TrainConfig.from_dict({**params["training"], "device": params["device"]})
    mask_meta = {**mask_meta, "mask_sha256": file_digest(mask_path)}
    train_and_save(model, masks, mask_meta, params, cfg, out_model, out_summary, checkpoint)
