"""Stage ``metrics_<family>``: one metric family on every applicable encoding."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..io import provenance, write_json

log = logging.getLogger("snntopo.stages")


def compute_metrics(family: str, graphs: dict[str, str], params: dict[str, Any], out: str) -> None:
    """One metric family on every applicable encoding of one network -> one small JSON."""
    from ..encode.graph import load_graph
    from ..metrics import compute_family

    result: dict[str, Any] = {"family": family, "encodings": {}}
    for encoding, path in graphs.items():
        t0 = time.perf_counter()
        graph = load_graph(path)
        res = compute_family(family, graph, params)
        res["seconds"] = time.perf_counter() - t0
        for metric, why in (res.get("nan_reasons") or {}).items():
            log.warning("%s/%s: %s is NaN: %s", encoding, family, metric, why)
        result["encodings"][encoding] = res
    result["network"] = params.get("network", {})
    result["provenance"] = provenance(**params)
    write_json(out, result)
