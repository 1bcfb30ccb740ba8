"""The in-memory form of the analysis tables and the checks every loader applies to a table.

Why a module of its own: both loaders (:mod:`snntopo.analysis.tables` for our layout,
:mod:`snntopo.analysis.paper_tables` for the published one) build a :class:`Tables` with these
checks; keeping them here lets the layout autodetection import both loaders without either
importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import TableError
from ..names import KEYS, RAMANUJAN_LAYER_COLUMNS

RAMANUJAN_COLUMNS = RAMANUJAN_LAYER_COLUMNS


@dataclass
class Tables:
    """All inputs of the analysis, keyed by ``KEYS`` (dataset, arch, method, sparsity, seed).

    ``networks`` has one row per trained network with ``accuracy`` (fraction) and
    ``dense_accuracy`` (fraction or NaN). ``features[encoding]`` has one row per network and one
    column per network-level feature. ``ramanujan_layers`` has one row per (network, encoding,
    layer). ``notes`` records every row or column the loader dropped, so the summary can say so.
    """

    networks: pd.DataFrame
    features: dict[str, pd.DataFrame]
    ramanujan_layers: pd.DataFrame | None
    source: str
    notes: list[str] = field(default_factory=list)
    # what the loader changed to read a file ({"file", "column", "action"}) and what it could not
    # read at all ({"file", "reason"}); both are listed in the summary
    normalised: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def find_table(directory: Path, stem: str) -> Path | None:
    """``stem.csv`` or ``stem.csv.gz`` in ``directory`` (the first that exists)."""
    for suffix in (".csv", ".csv.gz"):
        p = directory / f"{stem}{suffix}"
        if p.exists():
            return p
    return None


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally gzip), turning parse failures into a TableError naming the file."""
    import zlib

    try:
        df = pd.read_csv(path)
    except (OSError, EOFError, zlib.error, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(f"{path}: cannot read table ({first})") from None
    _check_header(path)
    return df


def _check_header(path: Path) -> None:
    """A column named twice (pandas reads the second as ``name.1``, a new column) or a blank
    column name (``Unnamed: 3``) is an error, not another feature."""
    import csv
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as fh:
            names = next(csv.reader(fh), [])
    except (OSError, EOFError, csv.Error) as exc:
        raise TableError(f"{path}: cannot read table ({exc})") from None
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name.strip():
            raise TableError(f"{path}: column {i + 1} of the header has no name")
        if name in seen:
            raise TableError(f"{path}: column {name!r} is named twice in the header")
        seen.add(name)


def check_table(
    df: pd.DataFrame,
    name: str,
    required: tuple[str, ...] | list[str],
    no_nan: tuple[str, ...] | list[str],
    unique: tuple[str, ...] | list[str] | None = None,
) -> None:
    """Raise TableError if columns are missing, have NaNs where forbidden, or keys repeat."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TableError(f"{name}: missing required columns {missing}")
    nan_cols = [c for c in no_nan if df[c].isna().any()]
    if nan_cols:
        counts = {c: int(df[c].isna().sum()) for c in nan_cols}
        raise TableError(
            f"{name}: NaN/empty values in columns {nan_cols} (rows per column: {counts})"
        )
    if unique:
        dup = df.duplicated(list(unique))
        if dup.any():
            raise TableError(
                f"{name}: {int(dup.sum())} duplicated rows for key columns {list(unique)}"
            )


def check_numeric(df: pd.DataFrame, name: str, columns: list[str]) -> None:
    """Raise TableError naming the file, the column and a value for a non-numeric or infinite
    cell (empty cells are NaN and allowed: a metric that is undefined for a network)."""
    import numpy as np

    for c in columns:
        if c not in df.columns:
            continue
        if pd.api.types.is_bool_dtype(df[c]):
            raise TableError(f"{name}: column {c!r} holds true/false values, not numbers")
        if pd.api.types.is_numeric_dtype(df[c]):
            inf = np.isinf(df[c].to_numpy(dtype=float))
            if inf.any():
                row = int(np.argmax(inf))
                raise TableError(
                    f"{name}: column {c!r} holds {float(df[c].iloc[row])} ({int(inf.sum())} row(s), "
                    f"first at row {row + 2} of the file); metrics must be finite or empty"
                )
            continue
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = df[c].notna() & vals.isna()
        if bad.any():
            first = df[c][bad].iloc[0]
            raise TableError(
                f"{name}: column {c!r} holds non-numeric value {first!r} "
                f"({int(bad.sum())} row(s), first at row {int(bad.idxmax()) + 2} of the file)"
            )


#: the largest seed (``snntopo.config.MAX_SEED``, repeated here: the analysis stage's code digest
#: does not cover the config module, and a job may import only modules of its digest)
MAX_SEED = 2**32 - 1


def normalise_keys(df: pd.DataFrame, name: str = "table") -> pd.DataFrame:
    """Give the key columns one dtype everywhere so merges never silently miss (str/float/int).

    A sparsity that is not a number in [0, 1) or a seed that is not a non-negative integer is a
    TableError naming the file (``seed`` 1.5 was truncated to 1, ``sparsity`` "abc" a traceback).
    """
    import numpy as np

    out = df.copy()
    for c in ("dataset", "arch", "method"):
        out[c] = out[c].astype(str)
    sp = pd.to_numeric(out["sparsity"], errors="coerce")
    seed = pd.to_numeric(out["seed"], errors="coerce")
    bad_sp = ~(sp.ge(0) & sp.lt(1))
    seed_f = seed.astype(float)  # a 30-digit seed wrapped around in int64
    bad_seed = ~(seed_f.ge(0) & seed_f.le(MAX_SEED) & seed_f.eq(np.floor(seed_f)))
    for col, bad, want in (
        ("sparsity", bad_sp, "a number in [0, 1)"),
        ("seed", bad_seed, f"an integer in [0, {MAX_SEED}]"),
    ):
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise TableError(
                f"{name}: column {col!r} holds {df[col].iloc[row]!r} at row {row + 2} of the "
                f"file ({int(bad.sum())} row(s)); expected {want}"
            )
    out["sparsity"] = sp.astype(float).round(6)
    out["seed"] = seed_f.astype("int64")
    return out


def check_networks(networks: pd.DataFrame, name: str) -> pd.DataFrame:
    """Validate the networks table; accuracies must be fractions (a percent table is a mistake)."""
    if "dense_accuracy" not in networks.columns:
        networks = networks.assign(dense_accuracy=float("nan"))
    check_table(networks, name, [*KEYS, "accuracy"], [*KEYS, "accuracy"], unique=KEYS)
    for col in ("accuracy", "dense_accuracy"):
        vals = pd.to_numeric(networks[col], errors="coerce")
        bad = vals.notna() & ((vals < 0) | (vals > 1))
        if bad.any() or (vals.isna() & networks[col].notna()).any():
            raise TableError(f"{name}: column {col!r} must hold fractions in [0, 1]")
    return normalise_keys(networks, name)
