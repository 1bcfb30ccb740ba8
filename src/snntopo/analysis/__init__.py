"""Analysis stage: regression, importance, ranking and Ramanujan-vs-density on metric tables.

Public entry points: :func:`load_tables` (either layout), :func:`run_analysis` and
:class:`AnalysisParams`. The latter two are imported lazily so loading tables does not pull in
scikit-learn and matplotlib.
"""

from __future__ import annotations

from typing import Any

from ..io import write_csv
from .tables import Tables, load_canonical_tables, load_tables

__all__ = [
    "AnalysisParams",
    "Tables",
    "load_canonical_tables",
    "load_tables",
    "run_analysis",
    "write_csv",
]


def __getattr__(name: str) -> Any:
    if name in ("run_analysis", "AnalysisParams"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
