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
from .io import check_writable, graph_edges_from_file
from .threads import cap_threads

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_outputs_writable(kwargs: dict[str, Any]) -> None:
    """:func:`check_writable` for every ``out*`` keyword argument of a stage call (a path, or a
    list of paths)."""
    for key, value in kwargs.items():
        if not key.startswith("out"):
            continue
        paths = value if isinstance(value, list | tuple) else [value]
        for p in paths:
            if isinstance(p, str | os.PathLike):
                # an ``out_dir`` names a directory: probe a file inside it
                check_writable(Path(p) / ".probe" if key.endswith("dir") else p, key)


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


def limit_memory(mem_mb: int | float | None, margin_mb: int = 1024) -> None:
    """Cap this process's address space at the rule's ``mem_mb`` plus a margin for the
    interpreter and libraries (~300 MB of mappings before any graph is loaded).

    Why: on a workstation nothing enforces ``resources: mem_mb``; with the cap, a job that
    outgrows its estimate fails fast with ``MemoryError`` (reported by :func:`run_job` with the
    graph size and the memory asked for) and Snakemake's retry asks for twice as much, instead of
    the kernel's OOM killer taking down a neighbour.
    """
    import resource

    if not mem_mb:
        return
    limit = int((float(mem_mb) + margin_mb) * 1024 * 1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def memory_guard(mem_mb: int | float | None, config: dict[str, Any]) -> Any:
    """The pre-flight memory check of a graph job (:mod:`snntopo.memcheck`): the rule's
    ``mem_mb`` is one of its limits, the config's ``mem_mb_per_million_edges`` its estimate."""
    from .memcheck import MemoryGuard

    resources = config.get("resources") or {}
    per_million = resources.get("mem_mb_per_million_edges")
    return MemoryGuard(
        limit_mb=float(mem_mb) if mem_mb else None,
        per_million_edges=float(per_million) if per_million else None,
        force=bool(resources.get("force_memory", False)),
        hint="resources: {force_memory: true}",
    )


def run_job(
    func: Callable[..., Any],
    log_path: str | None,
    /,
    job_context: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Call ``func(**kwargs)`` under job logging; exit 1 with one line on a :class:`SnntopoError`.

    ``job_context`` (e.g. ``mem_mb``, ``attempt``) only feeds the out-of-memory message.
    """
    from .io import remove_temps_on_signal

    remove_temps_on_signal()
    setup_logging(log_path)
    log = logging.getLogger("snntopo.job")
    log.info("start %s", func.__name__)
    try:
        check_outputs_writable(kwargs)  # before the work, not after it
        func(**kwargs)
    except SnntopoError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)
    except MemoryError:
        log.error("%s", _oom_message(func.__name__, kwargs, job_context or {}))
        sys.exit(1)
    except OSError as exc:
        msg = _os_error_message(exc)
        if msg is None:
            log.exception("unexpected error in %s (please report this as a bug)", func.__name__)
        else:
            log.error("%s: %s", func.__name__, msg)
        sys.exit(1)
    except Exception:
        # a bug, not a user mistake: keep the traceback, in the log file too
        log.exception("unexpected error in %s (please report this as a bug)", func.__name__)
        sys.exit(1)
    log.info("done %s", func.__name__)


def _os_error_message(exc: OSError) -> str | None:
    """One line for the OS errors a user (or a full disk) causes; ``None`` for anything else."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{where}no space left on device (disk full or quota exceeded); free space and rerun "
            "(artifacts are written atomically: nothing half-written was left behind)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}permission denied or read-only file system ({exc.strerror})"
    if exc.errno == errno.EFBIG:
        return (
            f"{where}file too large for the file system or the process's file size limit "
            "(ulimit -f); nothing half-written was left behind"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return f"{where}file name too long for the file system"
    return None


def os_error_line(exc: OSError) -> str:
    """One line for any OS error of a command: the causes above in words, else the path and the
    system's own message (``File exists``, ``Is a directory``, ...)."""
    msg = _os_error_message(exc)
    if msg is not None:
        return msg
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def limit_threads(threads: int) -> None:
    """Make BLAS/OpenMP and torch follow the rule's ``threads:`` (must run before heavy imports)."""
    cap_threads(threads)


def _oom_message(name: str, kwargs: dict[str, Any], ctx: dict[str, Any]) -> str:
    """Say which graph did not fit and how much memory was asked for (and will be next)."""
    sizes = []
    paths = [v for v in kwargs.values() if isinstance(v, str)]
    for v in kwargs.values():
        if isinstance(v, dict):
            paths += [p for p in v.values() if isinstance(p, str)]
    for p in paths:
        if p.endswith(".npz") and os.path.exists(p):
            sizes.append(f"{p}: {graph_edges_from_file(p)} edges")
    graph = "; ".join(sizes) or "graph size unknown"
    mem = ctx.get("mem_mb")
    attempt = f" (attempt {ctx['attempt']})" if "attempt" in ctx else ""
    asked = f"asked for {mem} MB{attempt}" if mem else "no memory request known"
    retry = f"; a retry asks for {2 * int(mem)} MB" if mem else ""
    return f"out of memory in {name}: {graph}; this job {asked}{retry}"
