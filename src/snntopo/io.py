"""Atomic, self-describing artifact I/O.

Why: a job killed mid-write must never leave a file that looks complete, and every artifact must say
which parameters and which code version made it. All writers here go through a temporary file in the
same directory followed by ``os.replace`` (atomic on POSIX), and JSON/metadata carry a ``provenance``
block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ArtifactError, OutputError

FORMAT_VERSION = 1


def provenance(**params: Any) -> dict[str, Any]:
    """The block every artifact carries: package version, format version, and the parameters."""
    return {
        "snntopo_version": __version__,
        "format_version": FORMAT_VERSION,
        "python": platform.python_version(),
        "params": _jsonable(params),
    }


#: marker in the name of every temporary file :func:`atomic_path` makes:
#: ``.<final name>.<TEMP_MARK><host>-<pid>.<random>.tmp<suffix>``; the host and process id let a
#: later run tell a leftover of a killed writer (swept) from a live writer's file (kept)
TEMP_MARK = "snntopo-"
_TEMP_RE = re.compile(
    r"^\..+\." + re.escape(TEMP_MARK) + r"(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)\.[^.]+\.tmp"
)
#: temporary files being written by this process: (pid, path), removed by the signal handler
_LIVE: set[tuple[int, Path]] = set()
_SWEPT: set[Path] = set()


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that writers on this host left in ``directory`` when they were
    killed where no handler runs (``kill -9``, out of memory): the ones whose process is gone.
    Temporary files of live processes, and of other hosts (a shared file system), are kept.
    Returns the removed paths. :func:`atomic_path` calls this once per directory and process."""
    removed: list[Path] = []
    host = _host()
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_RE.match(name)
        if not m or m["host"] != host or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        path = Path(directory) / name
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            path.unlink()
            removed.append(path)
    return removed


def _remove_live_temps(signum: int, frame: Any) -> None:
    """SIGTERM/SIGHUP handler: remove this process's temporary files, then die of the signal
    (exit status and the caller's view unchanged)."""
    import signal

    for pid, path in list(_LIVE):
        if pid == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def remove_temps_on_signal() -> None:
    """Install the handler that removes this process's temporary files on SIGTERM and SIGHUP
    (SIGINT raises ``KeyboardInterrupt``, which :func:`atomic_path` already handles). Called by
    the CLI and by every workflow job; a no-op outside the main thread or where a handler is set."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _remove_live_temps)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched; on SIGTERM or
    SIGHUP too (see :func:`remove_temps_on_signal`); after ``kill -9`` the next write into the same
    directory sweeps it (:func:`sweep_temps`). The temporary name keeps the final suffix (e.g.
    ``.npz``) so libraries that insist on an extension do not append one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.parent.resolve() not in _SWEPT:
        _SWEPT.add(final.parent.resolve())
        sweep_temps(final.parent)
    sfx = suffix if suffix is not None else "".join(final.suffixes)
    mark = f"{TEMP_MARK}{_host()}-{os.getpid()}."
    # the final name is only a hint for a reader of the directory: shortened so that the
    # temporary name fits the usual 255-byte limit whenever the final name does
    room = max(1, 240 - len(mark) - len(f".tmp{sfx}") - 8)
    prefix = f".{final.name.encode()[:room].decode(errors='ignore')}.{mark}"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=f".tmp{sfx}", dir=final.parent)
    tmp_path = Path(tmp)
    entry = (os.getpid(), tmp_path)
    _LIVE.add(entry)
    try:
        os.close(fd)
        yield tmp_path
        # mkstemp creates 0600, and a writer may replace the temporary file with its own (the
        # safetensors library writes a file of its own and renames it, again 0600): give the
        # finished file the permissions a plain open() would, after the writer is done
        os.chmod(tmp_path, _umask_mode())
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        _LIVE.discard(entry)


def _umask_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: top-level key of a JSON artifact's own digest (:func:`json_digest`)
JSON_DIGEST_KEY = "content_sha256"


def json_digest(obj: Mapping[str, Any]) -> str:
    """Short sha256 of a JSON object's canonical text (keys sorted), without its digest key."""
    rest = {k: v for k, v in obj.items() if k != JSON_DIGEST_KEY}
    text = json.dumps(rest, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json(path: str | os.PathLike[str], obj: Any, digest: bool = False) -> None:
    """Write JSON atomically; NaN/inf become ``null`` so the file is strict JSON. ``digest``: the
    object (a mapping) records its own :func:`json_digest` under ``content_sha256``, which
    :func:`read_json` checks, so a flipped digit in a value is an error, not another value."""
    obj = _jsonable(obj)
    if digest:
        obj = {**{k: v for k, v in obj.items() if k != JSON_DIGEST_KEY}}
        obj[JSON_DIGEST_KEY] = json_digest(obj)
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


#: the deepest nesting of arrays and objects any JSON snntopo reads may have (its own files nest
#: fewer than 10 levels); deeper text is refused before it is parsed, so a crafted file ends in one
#: line instead of a ``RecursionError``
MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, brackets inside strings not counted."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(text: str | bytes, where: str, error: type[Exception] = ArtifactError) -> Any:
    """Strict, bounded JSON: nesting deeper than :data:`MAX_JSON_DEPTH`, ``NaN``/``Infinity``,
    numbers beyond float range (``1e400``), a key twice in one object and invalid text all raise ``error`` with one line
    naming ``where``. Every reader of a JSON file or header goes through here."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise error(f"{where}: JSON nested {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(
            text,
            parse_float=_finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{where}: not valid JSON ({first})") from None


def read_json(path: str | os.PathLike[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a JSON artifact, raising ``ArtifactError`` naming the file on any defect (see
    :func:`loads_json`)."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p}: file not found")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{p}: unreadable ({exc.strerror or exc})") from None
    obj = loads_json(raw, str(p))
    if not isinstance(obj, dict):
        raise ArtifactError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    recorded = obj.get(JSON_DIGEST_KEY)
    if recorded is not None and recorded != json_digest(obj):
        raise ArtifactError(
            f"{p}: content_sha256 is {recorded!r:.40} but the content gives {json_digest(obj)} "
            "(a changed or damaged file)"
        )
    missing = [k for k in required if k not in obj]
    if missing:
        raise ArtifactError(f"{p}: missing required keys {missing}")
    return obj


def write_csv(df: Any, path: str | os.PathLike[str]) -> Path:
    """Write a pandas DataFrame atomically (without its index) and return the final path."""
    final = Path(path)
    with atomic_path(final) as tmp:
        df.to_csv(tmp, index=False)
    return final


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_digest(path: str | os.PathLike[str], n: int = 16) -> str:
    """Short sha256 of a file's bytes, used to tie an artifact to the inputs it was made from."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def read_npy_header(fh: Any) -> tuple[tuple[int, ...], bool, Any]:
    """(shape, fortran order, dtype) of the ``.npy`` stream at ``fh``'s position, which is left
    at the start of the array data (format 1.0 or 2.0/3.0 headers)."""
    from numpy.lib import format as npy

    version = npy.read_magic(fh)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    return read(fh)


def check_writable(path: str | os.PathLike[str], what: str = "output") -> None:
    """Fail before any work if ``path`` cannot be written: its directory cannot be created, or a
    file cannot be created in it (read-only directory, read-only file system). Leaves nothing
    behind but the directories the job would create anyway."""
    import errno
    import tempfile

    target = Path(path)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise OutputError(f"{what} {target}: cannot write to {parent} ({why})") from None
    if target.is_dir():
        raise OutputError(f"{what} {target}: is a directory, expected a file path")


def graph_edges_from_file(path: str) -> int | None:
    """Edge count of a stored graph read from the ``.npz`` header only (no array load)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z, z.open("indices.npy") as fh:
            shape, _, _ = read_npy_header(fh)
            return int(shape[0])
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return None


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and non-finite floats into strict-JSON values."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
