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
from pathlib import Path

import pandas as pd

from ..errors import TableError
from ..names import KEYS, RAMANUJAN_METRICS, encoding_names
from .paper_tables import is_paper_layout, load_paper_tables
from .table_checks import (
    RAMANUJAN_COLUMNS,
    Tables,
    check_networks,
    check_numeric,
    check_table,
    find_table,
    normalise_keys,
    read_csv,
)

__all__ = ["RAMANUJAN_COLUMNS", "RAMANUJAN_METRICS", "Tables", "load_tables"]
NETWORK_FILE = "networks"
RAMANUJAN_FILE = "ramanujan_layers"


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
        features[enc] = select_features(normalise_keys(df, str(p)), enc)
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
        ram = normalise_keys(ram, str(rpath))
    return Tables(networks, features, ram, source="canonical", notes=notes)


def load_tables(directory: str | os.PathLike[str], strict: bool = False) -> Tables:
    """Autodetect the layout: the paper's (``graph_metrics/``) or ours (``networks.csv``).

    ``strict`` (paper layout): raise on an unusable file instead of skipping it with a reason.
    """
    d = Path(directory)
    if not d.is_dir():
        raise TableError(f"{d}: tables directory not found")
    if is_paper_layout(d):
        return load_paper_tables(d, strict=strict)
    return load_canonical_tables(d)
