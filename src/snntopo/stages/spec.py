"""Stage ``spec``: the layer spec of one (dataset, arch)."""

from __future__ import annotations

import logging
from typing import Any

from ..io import provenance, write_json
from .models import _build

log = logging.getLogger("snntopo.stages")


def make_spec(params: dict[str, Any], out: str) -> None:
    """Write the layer spec (``layers.json``) of one (dataset, arch): what every encoding reads."""
    from ..encode.layers import layer_spec

    model = _build({**params, "seed": 0})
    shape = (params["in_channels"], params["input_size"], params["input_size"])
    spec = layer_spec(model, shape, arch=params["arch"], num_classes=params["num_classes"])
    spec["provenance"] = provenance(**params)
    write_json(out, spec)
