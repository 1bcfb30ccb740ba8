"""Stage ``train``: train one masked network and write its artifacts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import file_digest, provenance, write_json
from ..names import DENSE
from .network import NetworkJob

log = logging.getLogger("snntopo.stages")


def train_network(
    params: NetworkJob | Mapping[str, Any],
    mask_path: str | None,
    out_model: str,
    out_summary: str,
    checkpoint: str,
    log: Any = None,
) -> Any:
    """Train one network under the mask at ``mask_path`` (dense without one) and write
    ``model.safetensors`` and ``train.json``; returns the ``TrainResult``.

    The ``train`` rule and ``snntopo train`` both call this, so both write the same artifacts: the
    network keys (method and sparsity from the mask, ``dense``/0 without one), accuracy, history,
    device, parameter counts and the realised sparsity of the mask. Resumes from ``checkpoint`` if
    a previous attempt left one, and removes it once the artifacts are written.
    """
    from ..artifacts import save_trained
    from ..data import load_dataset
    from ..pai.io import load_mask
    from ..train import TrainConfig, train_masked

    job = NetworkJob.coerce(params)
    model = job.build_model()
    masks, mask_meta = load_mask(mask_path, model) if mask_path else (None, {})
    if mask_path:
        mask_meta = {**mask_meta, "mask_sha256": file_digest(mask_path)}
    cfg = TrainConfig.from_dict({**job.training, "device": job.device})
    common = dict(root=job.data_root, download=job.download, input_size=job.input_size)
    train_set = load_dataset(job.dataset, train=True, **common)
    test_set = load_dataset(job.dataset, train=False, **common)
    result = train_masked(
        model,
        masks,
        train_set,
        test_set,
        cfg,
        seed=job.seed,
        checkpoint_path=checkpoint,
        log=log,
    )
    stage_params = job.params("train")
    summary = {
        "dataset": job.dataset,
        "arch": job.arch,
        "method": mask_meta.get("method", DENSE),
        "sparsity": float(mask_meta.get("sparsity", 0.0)),
        "seed": job.seed,
        "accuracy": result.accuracy,
        "history": result.history,
        "realised_sparsity": mask_meta.get("realised_sparsity", 0.0),
        "mask_sha256": mask_meta.get("mask_sha256"),
        "device": result.device,
        "amp": result.amp,
        "parameters": result.params,
        "training": cfg.to_dict(),
        "provenance": provenance(**stage_params),
    }
    save_trained(out_model, model, masks, {**summary, "params": stage_params})
    write_json(out_summary, summary)
    Path(checkpoint).unlink(missing_ok=True)
    return result
