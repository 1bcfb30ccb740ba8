"""Wall time and peak resident memory of the current process, for CLI JSON lines and benchmarks."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@contextmanager
def measure() -> Iterator[Measurement]:
    """``with measure() as m: ...`` fills ``m.seconds`` and ``m.peak_rss_mb`` on exit."""
    m = Measurement()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        m.peak_rss_mb = peak_rss_mb()
