"""Stage ``tables``: join per-network artifacts into the canonical tables."""

from __future__ import annotations

import logging

log = logging.getLogger("snntopo.stages")


def build_tables(train_summaries: list[str], metric_files: list[str], out_dir: str) -> None:
    """Join per-network artifacts into the canonical tables (see docs/architecture.md)."""
    from ..tables import write_tables

    write_tables(train_summaries, metric_files, out_dir)
