"""The canonical analysis tables, their validation, and the layout autodetection.

Why a single in-memory form: the analysis must run the same way on tables produced by our own
workflow (``results/tables/*.csv``) and on the paper's published tables (converted by
:mod:`snntopo.analysis.paper_tables`). Both loaders return a :class:`Tables`; everything downstream
only sees that. Validation happens here, once, so that a bad table fails with one
:class:`~snntopo.errors.TableError` naming the file and the columns at fault, before anything is
written to the output directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import TableError
from ..names import KEYS, RAMANUJAN_LAYER_COLUMNS, RAMANUJAN_METRICS, encoding_names

RAMANUJAN_COLUMNS = RAMANUJAN_LAYER_COLUMNS
__all__ = ["RAMANUJAN_COLUMNS", "RAMANUJAN_METRICS", "Tables", "load_tables"]
NETWORK_FILE = "networks"
RAMANUJAN_FILE = "ramanujan_layers"


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
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TableError(f"{path}: cannot read table ({exc})") from None


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
    """Raise TableError naming the file, the column and a value for a non-numeric cell (empty
    cells are NaN and allowed)."""
    for c in columns:
        if c not in df.columns or pd.api.types.is_numeric_dtype(df[c]):
            continue
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = df[c].notna() & vals.isna()
        if bad.any():
            first = df[c][bad].iloc[0]
            raise TableError(
                f"{name}: column {c!r} holds non-numeric value {first!r} "
                f"({int(bad.sum())} row(s), first at row {int(bad.idxmax()) + 2} of the file)"
            )


def normalise_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Give the key columns one dtype everywhere so merges never silently miss (str/float/int)."""
    out = df.copy()
    for c in ("dataset", "arch", "method"):
        out[c] = out[c].astype(str)
    out["sparsity"] = out["sparsity"].astype(float).round(6)
    out["seed"] = out["seed"].astype(int)
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
    return normalise_keys(networks)


def select_features(df: pd.DataFrame, encoding: str) -> pd.DataFrame:
    """The analysed columns of a pipeline feature table, matching the paper's tables.

    The pipeline writes every metric raw *and* normalised (``x`` and ``x_norm``); the paper's
    tables hold one of the two, the normalised one where the paper normalises it, so only
    that one is kept. For the MGE, ``nodes`` (constant per architecture) and ``edges`` (the number
    of kept weights: density in disguise) are dropped, as the paper-layout loader does.
    """
    cols = set(df.columns)
    drop = {c for c in cols if f"{c}_norm" in cols}
    if encoding == "mge":
        drop |= {"nodes", "edges"} & cols
    else:
        # the Ramanujan family's layer means belong to the separate ``ramanujan`` feature set
        # (built from ramanujan_layers.csv); the paper's rolled tables do not hold them either
        drop |= {f"mean_{m}" for m in RAMANUJAN_METRICS} & cols
    return df.drop(columns=sorted(drop))


def load_canonical_tables(directory: str | os.PathLike[str]) -> Tables:
    """Load ``networks``, ``mge``, ``rolled``, ``rolled-channel``, ``ramanujan_layers`` (.csv[.gz]).

    ``networks`` is required; each other table is optional (the analysis skips the feature sets it
    cannot build and says so).
    """
    d = Path(directory)
    npath = find_table(d, NETWORK_FILE)
    if npath is None:
        raise TableError(f"{d}: no {NETWORK_FILE}.csv (canonical layout) and no graph_metrics/")
    networks = check_networks(read_csv(npath), str(npath))
    features: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for enc in encoding_names():
        p = find_table(d, enc)
        if p is None:
            notes.append(f"{enc}: table not found, feature set skipped")
            continue
        df = read_csv(p)
        check_table(df, str(p), KEYS, KEYS, unique=KEYS)
        check_numeric(df, str(p), [c for c in df.columns if c not in KEYS])
        features[enc] = select_features(normalise_keys(df), enc)
    rpath = find_table(d, RAMANUJAN_FILE)
    ram = None
    if rpath is None:
        notes.append("ramanujan_layers: table not found, Ramanujan/density analyses skipped")
    else:
        ram = read_csv(rpath)
        no_nan = [*KEYS, "encoding", "layer_id", "layer_density"]
        check_table(
            ram,
            str(rpath),
            [*KEYS, *RAMANUJAN_COLUMNS],
            no_nan,
            unique=[*KEYS, "encoding", "layer_id"],
        )
        check_numeric(ram, str(rpath), ["layer_id", "layer_density", *RAMANUJAN_METRICS])
        ram = normalise_keys(ram)
    return Tables(networks, features, ram, source="canonical", notes=notes)


def load_tables(directory: str | os.PathLike[str], strict: bool = False) -> Tables:
    """Autodetect the layout: the paper's (``graph_metrics/``) or ours (``networks.csv``).

    ``strict`` (paper layout): raise on an unusable file instead of skipping it with a reason.
    """
    from .paper_tables import is_paper_layout, load_paper_tables

    d = Path(directory)
    if not d.is_dir():
        raise TableError(f"{d}: tables directory not found")
    if is_paper_layout(d):
        return load_paper_tables(d, strict=strict)
    return load_canonical_tables(d)
