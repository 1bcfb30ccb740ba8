"""Analysis stage: regression, importance, ranking and Ramanujan-vs-density on metric tables.

Public entry points: :func:`load_tables` (either layout), :func:`run_analysis` and
:class:`AnalysisParams`.
"""

from __future__ import annotations

from .tables import Tables, load_canonical_tables, load_tables, write_csv

__all__ = ["Tables", "load_canonical_tables", "load_tables", "write_csv"]
