"""Running one pipeline job: logging to the rule's log file and turning user-facing errors into one
clear line instead of a traceback.

Why: a Snakemake job that fails on a user mistake (missing data set, corrupt mask) must say *which
file and what is wrong* in its log and on the terminal; only genuine bugs deserve a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import SnntopoError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Log to ``log_path`` (appending, so a resumed job keeps the first attempt's lines) and
    stderr."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))
    for h in handlers:
        h.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(h)
    root.setLevel(level)
    logging.captureWarnings(True)


def run_job(func: Callable[..., Any], log_path: str | None, /, **kwargs: Any) -> None:
    """Call ``func(**kwargs)`` under job logging; exit 1 with one line on a :class:`SnntopoError`."""
    setup_logging(log_path)
    log = logging.getLogger("snntopo.job")
    log.info("start %s", func.__name__)
    try:
        func(**kwargs)
    except SnntopoError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)
    except MemoryError:
        log.error(
            "out of memory in %s (%s); the rule's retry asks for more memory",
            func.__name__,
            ", ".join(f"{k}={v}" for k, v in kwargs.items() if isinstance(v, str | int | float)),
        )
        sys.exit(1)
    except Exception:
        # a bug, not a user mistake: keep the traceback, in the log file too
        log.exception("unexpected error in %s (please report this as a bug)", func.__name__)
        sys.exit(1)
    log.info("done %s", func.__name__)


def limit_threads(threads: int) -> None:
    """Make BLAS/OpenMP and torch follow the rule's ``threads:`` (must run before heavy imports)."""
    n = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
