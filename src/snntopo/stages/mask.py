"""Stage ``mask``: one PaI mask and the masked initial weights."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..io import atomic_path, provenance
from .network import NetworkJob

log = logging.getLogger("snntopo.stages")


def make_mask(
    params: NetworkJob | Mapping[str, Any],
    out_mask: str,
    out_init: str | None = None,
    gpus: int = 0,
) -> dict[str, Any]:
    """Compute one PaI mask (or the all-ones dense mask) and the masked initial weights
    (``out_init``; skipped when ``None``). Returns the mask's metadata. ``gpus``: what the job was
    granted (see :func:`snntopo.train.job_device`)."""
    import torch

    from ..data import pai_loader_factory
    from ..models import prunable_parameters
    from ..pai.io import save_mask
    from ..train import job_device

    job = NetworkJob.coerce(params)
    model = job.build_model()
    t0 = time.perf_counter()
    meta: dict[str, Any] = {
        "arch": job.arch,
        "dataset": job.dataset,
        "method": job.method,
        "sparsity": job.sparsity,
        "seed": job.seed,
        "width": job.width,
        "input_size": job.input_size,
    }
    if job.is_dense:
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model)}
        info: dict[str, Any] = {"realised_sparsity": 0.0}
    else:
        from ..pai import METHODS, compute_mask

        needs_data = METHODS.fact(job.method, "needs_data")
        masks, info = compute_mask(
            job.method,
            model,
            job.sparsity,
            seed=job.seed,
            loader_factory=pai_loader_factory(
                job.dataset,
                job.data_root,
                job.seed,
                download=job.download,
                input_size=job.input_size,
            )
            if needs_data
            else None,
            # the real input shape: SynFlow's all-ones input must match the data's size
            params={**job.pai, "input_shape": list(job.input_shape)},
            device=job_device(job.device, gpus),
        )
    # flat, like `snntopo mask` writes it; save_mask adds densities, realised sparsity and emptied
    # layers from the masks themselves (compute_mask already logged any emptied layer)
    meta = {**info, **meta, "seconds": time.perf_counter() - t0}
    meta["provenance"] = provenance(**job.params("mask"))
    from ..artifacts import mask_digest
    from ..io import file_digest

    meta["mask_digest"] = mask_digest({n: m.cpu() for n, m in masks.items()})
    save_mask(out_mask, masks, meta)
    # the init vouches for the mask it was made with (checked by the encode stage)
    meta["mask_sha256"] = file_digest(out_mask)
    log.info(
        "%s at sparsity %s: realised sparsity %.5f",
        job.method,
        job.sparsity,
        float(info["realised_sparsity"]),
    )
    if out_init is not None:
        write_masked_init(model, masks, meta, out_init)
    return meta


def write_masked_init(model: Any, masks: Mapping[str, Any], meta: dict[str, Any], out: str) -> None:
    """The masked initial weights (float32, by parameter name): what the encodings read."""
    from safetensors.torch import save_file

    from ..models import prunable_parameters

    init = {
        n: (p.detach().cpu() * masks[n].cpu()).contiguous().float()
        for n, p in prunable_parameters(model)
    }
    with atomic_path(out) as tmp:
        save_file(init, str(tmp), metadata={"snntopo": json.dumps({"kind": "masked-init", **meta})})


def mask_model_weights(params: NetworkJob | Mapping[str, Any], mask_path: str, out: str) -> None:
    """The job's seeded initial weights masked by an existing mask file (``snntopo encode
    --mask``): the same ``init.safetensors`` the ``mask`` stage writes beside its mask."""
    from ..pai.io import load_mask

    job = NetworkJob.coerce(params)
    model = job.build_model()
    from ..io import file_digest

    masks, meta = load_mask(mask_path, model)
    meta = {**meta, "mask_path": mask_path, "mask_sha256": file_digest(mask_path)}
    write_masked_init(model, masks, meta, out)
