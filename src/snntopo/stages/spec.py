"""Stage ``spec``: the layer spec of one (dataset, arch)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..io import provenance, write_json
from .network import NetworkJob

log = logging.getLogger("snntopo.stages")


def make_spec(params: NetworkJob | Mapping[str, Any], out: str) -> None:
    """Write the layer spec (``layers.json``) of one (dataset, arch): what every encoding reads."""
    from ..encode.layers import layer_spec

    job = NetworkJob.coerce(params)
    model = job.build_model(seed=0)
    spec = layer_spec(model, job.input_shape, arch=job.arch, num_classes=job.num_classes)
    spec["provenance"] = provenance(**job.params("spec"))
    write_json(out, spec)
