"""Building the grid point's model (shared by spec, mask and train)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("snntopo.stages")


def _build(params: dict[str, Any]):
    from ..models import build_model

    return build_model(
        params["arch"],
        num_classes=params["num_classes"],
        in_channels=params["in_channels"],
        input_size=params["input_size"],
        width=params["width"],
        seed=params["seed"],
        kwargs=params.get("model_kwargs"),
    )
