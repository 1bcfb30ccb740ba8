"""Planning helpers of the ``predict`` rule (light: no pandas, no torch at import)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

PREDICTOR_FILE = "predictor.json"


def predictor_input(config: dict[str, Any]) -> str:
    """The predictor file the ``predict`` rule reads, from ``predict.predictor`` in the config.

    Refuses (one line naming the key) a config without a predictor, and one whose encodings are
    built from trained weights (the target must not need any training job).
    """
    path = (config.get("predict") or {}).get("predictor")
    if not path:
        raise ConfigError(
            "the predict target needs predict.predictor in the config "
            "(a directory written by `snntopo fit`)"
        )
    if (config.get("encode") or {}).get("weights", "init") != "init":
        raise ConfigError(
            "the predict target needs encode.weights: init "
            "(the topology of masks that were never trained)"
        )
    return os.path.join(path, PREDICTOR_FILE) if os.path.isdir(path) else str(path)
