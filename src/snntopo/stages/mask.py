"""Stage ``mask``: one PaI mask and the masked initial weights."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..io import atomic_path, provenance
from ..names import DENSE
from .models import _build

log = logging.getLogger("snntopo.stages")


def make_mask(params: dict[str, Any], out_mask: str, out_init: str) -> None:
    """Compute one PaI mask (or the all-ones dense mask) and the masked initial weights."""
    import torch
    from safetensors.torch import save_file

    from ..data import pai_loader_factory
    from ..models import prunable_parameters
    from ..pai.io import save_mask
    from ..train import resolve_device

    model = _build(params)
    t0 = time.perf_counter()
    meta = {k: params[k] for k in ("arch", "dataset", "method", "sparsity", "seed", "width")}
    meta["input_size"] = params["input_size"]
    if params["method"] == DENSE:
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model)}
        info: dict[str, Any] = {"realised_sparsity": 0.0}
    else:
        from ..pai import METHODS, compute_mask

        needs_data = METHODS.meta(params["method"]).get("needs_data", False)
        masks, info = compute_mask(
            params["method"],
            model,
            params["sparsity"],
            seed=params["seed"],
            loader_factory=pai_loader_factory(
                params["dataset"],
                params["data_root"],
                params["seed"],
                download=params["download"],
                input_size=params["input_size"],
            )
            if needs_data
            else None,
            # the real input shape: SynFlow's all-ones input must match the data's size
            params={
                **(params.get("pai") or {}),
                "input_shape": [params["in_channels"], params["input_size"], params["input_size"]],
            },
            device=resolve_device(params["device"]),
        )
    # flat, like `snntopo mask` writes it; save_mask adds densities, realised sparsity and emptied
    # layers from the masks themselves (compute_mask already logged any emptied layer)
    meta = {**info, **meta, "seconds": time.perf_counter() - t0}
    meta["provenance"] = provenance(**params)
    save_mask(out_mask, masks, meta)
    log.info(
        "%s at sparsity %s: realised sparsity %.5f",
        params["method"],
        params["sparsity"],
        float(info["realised_sparsity"]),
    )
    init = {
        n: (p.detach().cpu() * masks[n].cpu()).contiguous().float()
        for n, p in prunable_parameters(model)
    }
    with atomic_path(out_init) as tmp:
        save_file(init, str(tmp), metadata={"snntopo": json.dumps({"kind": "masked-init", **meta})})
