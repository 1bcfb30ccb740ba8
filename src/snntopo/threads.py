"""One cap on the BLAS/OpenMP thread pools of a process, set before the libraries load.

Why: numpy's OpenBLAS, scipy's own OpenBLAS, MKL and torch's OpenMP each start one thread per
core by default, and each reads its setting once, when it loads. A command that runs its own
worker threads on top of them (or a Snakemake job sharing the machine with others) then has
cores x cores threads spin-waiting on each other. Every entry point therefore fixes one number of
threads — a rule's ``threads:``, the CLI's ``--threads`` (default: the cores this process may run
on) — in the environment before the heavy imports, and resizes the pools already loaded with
threadpoolctl where it is installed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: the environment variables the BLAS/OpenMP libraries read when they load
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cap_threads(threads: int) -> int:
    """Set every BLAS/OpenMP thread variable to ``threads`` (at least 1) for this process and
    its children; libraries that load afterwards start that many threads. Returns the cap."""
    n = max(1, int(threads))
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    return n


@contextlib.contextmanager
def thread_limits(threads: int) -> Iterator[None]:
    """Also resize the pools of the libraries already loaded (threadpoolctl, where installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=max(1, int(threads))):
        yield


@contextlib.contextmanager
def thread_variables(threads: int) -> Iterator[None]:
    """Set the thread variables to ``threads`` inside the block (for the libraries that load and
    the child processes that start there), then put back the caller's. Used by the CLI around a
    command run in the caller's process (the tests), and around worker pools. Why the pools: a
    worker pool (joblib's loky) started while the CLI's cap
    (say 2) is in the environment gives each worker that many OpenMP threads, whatever limit the
    pool itself asks for; on two cores, two such workers fitting small gradient-boosted trees ran
    13 minutes instead of one minute (``snntopo analyze`` on the complete published tables)."""
    saved = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    cap_threads(threads)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
