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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the final suffix (e.g. ``.npz``) so libraries that insist on an
    extension do not append one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else "".join(final.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{sfx}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
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
