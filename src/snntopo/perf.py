"""Wall time and peak resident memory of the current process, for CLI JSON lines and benchmarks."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Reads ``VmHWM`` from ``/proc/self/status`` where it exists: ``ru_maxrss`` survives fork+exec,
    so a process started by a big parent (Snakemake, a benchmark driver) would report the
    parent's peak. Falls back to ``ru_maxrss`` (KiB on Linux, bytes on macOS) elsewhere.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
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
