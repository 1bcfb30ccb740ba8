"""Stage ``analysis``: regression, importance, ranking, Ramanujan vs density."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("snntopo.stages")


def run_analysis(tables_dir: str, out_dir: str, params: dict[str, Any]) -> None:
    from ..analysis import run_analysis as _run

    _run(tables_dir, out_dir, params)
