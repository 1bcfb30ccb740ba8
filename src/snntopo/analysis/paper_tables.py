"""Convert the paper's published tables (``graph_metrics/`` + ``ramanujan/``) to :class:`Tables`.

Layout (files may be ``.csv`` or ``.csv.gz``)::

    graph_metrics/unrolled/*.csv                                     one row per network (MGE)
    graph_metrics/rolled/rolled-<DATASET>-<ARCH>.csv                 one row per layer (rolled BGE)
    graph_metrics/rolled_channel/rolled_channel-<DATASET>-<ARCH>.csv one row per layer
    ramanujan/<ARCH>/rolled-<DATASET>-<ARCH>.csv                     one row per layer, no method
    (the authors' repository spells the last folder ``ramanunjan_results/``; both are read)

The published files are not uniform, so every file is normalised on its own and what was done is
recorded (``Tables.normalised``: file, column, action): the method column is ``pruning`` in some
files and ``pruning_algorithm`` in others; two BGE files carry only the ten metrics the paper code
writes today, under its short names (``cut-edges``, ``1-hop_nei``, ...), which are renamed to the
long names of the other files for the same quantities (:data:`BGE_SHORT_NAMES`; the metrics those
files lack stay NaN for their networks); exact duplicate rows are dropped; rows of one network that
disagree with each other are dropped. A file that cannot be used at all (unreadable, no key
columns, a Ramanujan table whose rows do not line up with its BGE table) is skipped with the reason
(``Tables.skipped``), or raises with ``strict=True``.

Only the paper's pruning-at-initialisation grid is kept (methods uniform/er/erk/snip/grasp/synflow/
prospr on CONV-6, ResNet-20/32, WRN-28-2); MobileNetV2 and the dynamic-sparse-training methods are
dropped (counted in ``Tables.notes``). The Ramanujan tables have no method column; their rows are in
the same order as the matching ``graph_metrics`` table of the same encoding, so they are joined by
position and the shared columns (accuracy, sparsity, seed, layer id and name) are checked to agree.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TableError
from ..names import ARCH_FROM_PAPER, DATASET_FROM_PAPER, KEYS, METHOD_FROM_PAPER
from .table_checks import (
    RAMANUJAN_COLUMNS,
    Tables,
    check_networks,
    check_table,
    normalise_keys,
    read_csv,
)

# Paper MGE columns that are metrics. `nodes` is constant per (arch, dataset) and `edges`
# is the number of kept weights, i.e. density in disguise: both stay out of the topometric set.
MGE_METRICS = (
    "sink_nodes",
    "source_nodes",
    "disc_nodes",
    "r-out",
    "r-in",
    "1-hop_nei",
    "2-hop_nei",
    "motif",
    "avg_node_strength",
    "k-core",
    "cut-edges",
    "cut-nodes",
    "no_connected_components",
    "mean_connected_components",
    "spectral_gap",
    "spectral_radius",
)
# Per-layer columns of the BGE tables that are identifiers or the network's own label, not metrics.
BGE_NON_FEATURES = ("accuracy", "sparsity", "seed", "layer_id", "layer_name")
# The BGE column that holds the |w|-weighted spectral gap l1 - l3 of a layer (spec E).
WEIGHTED_GAP_COLUMN = "spectral_gap_weighted_undirected"
ENCODING_DIRS = {"rolled": "rolled", "rolled_channel": "rolled-channel"}


RAMANUJAN_DIRS = ("ramanujan", "ramanunjan_results")  # ours, and the authors' spelling
METHOD_COLUMN = "pruning_algorithm"
METHOD_ALIASES = ("pruning",)
# The paper code's current per-layer BGE metric names (main.py, process_graph_topometrics) -> the
# column names of the other published BGE files for the same quantity, computed the same way:
# bridges / articulation points / size-4 motif estimate / mean out-neighbourhood size / mean
# strength / mean coreness / components of the graph made undirected (= weak components) and their
# mean size / |w|-weighted spectral gap and Laplacian spectral radius of the undirected graph.
BGE_SHORT_NAMES = {
    "cut-edges": "bridges",
    "cut-nodes": "a_point",
    "motif": "motifs_count",
    "1-hop_nei": "nei_one_hop",
    "avg_node_strength": "strenght_all",
    "k-core": "coreness_all",
    "no_connected_components": "weak_clusters",
    "mean_connected_components": "mean_weak",
    "spectral_gap": "spectral_gap_weighted_undirected",
    "spectral_radius": "spectral_radius_laplacian_weighted_undirected",
}
NETWORK_COLUMNS = ["model", "dataset", METHOD_COLUMN, "sparsity", "seed"]


def is_paper_layout(directory: Path) -> bool:
    return (directory / "graph_metrics").is_dir()


def feature_name(col: str) -> str:
    """Column names without hyphens so they are valid identifiers in formulas and plots."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", col)


def _csvs(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.csv"), *directory.glob("*.csv.gz")])


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".csv")


class _Log:
    """Collects what the loader normalised and skipped, per file (paths relative to the root)."""

    def __init__(self, root: Path, strict: bool) -> None:
        self.root, self.strict = root, strict
        self.notes: list[str] = []
        self.normalised: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []

    def rel(self, path: Path | str) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def norm(self, path: Path | str, column: str, action: str) -> None:
        f = self.rel(path)
        self.normalised.append({"file": f, "column": column, "action": action})
        self.notes.append(f"{f}: {column}: {action}")

    def skip(self, path: Path | str, reason: str) -> None:
        f = self.rel(path)
        if self.strict:
            raise TableError(f"{f}: {reason}")
        self.skipped.append({"file": f, "reason": reason})
        self.notes.append(f"{f}: skipped: {reason}")


def _read(path: Path, log: _Log) -> pd.DataFrame | None:
    try:
        return read_csv(path)
    except TableError as exc:
        log.skip(path, str(exc).removeprefix(f"{path}: "))
        return None


def _method_column(df: pd.DataFrame, path: Path, log: _Log, usual: str) -> pd.DataFrame | None:
    """One name for the method column; files that spell it otherwise are renamed and noted."""
    have = [c for c in (METHOD_COLUMN, *METHOD_ALIASES) if c in df.columns]
    if not have:
        log.skip(path, f"no method column ({' or '.join((METHOD_COLUMN, *METHOD_ALIASES))})")
        return None
    if have[0] != METHOD_COLUMN:
        df = df.rename(columns={have[0]: METHOD_COLUMN})
    if have[0] != usual:
        log.norm(path, have[0], f"method column read as {usual!r} (the other files' name)")
    return df


def _require(df: pd.DataFrame, path: Path, log: _Log, cols: list[str]) -> bool:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        log.skip(path, f"missing required columns {missing}")
        return False
    return True


def _dedupe(df: pd.DataFrame, keys: list[str], path: Path, log: _Log) -> pd.DataFrame:
    """Drop exact duplicate rows, then every row of a key that still repeats (they disagree)."""
    exact = df.duplicated()
    if exact.any():
        log.norm(path, "all", f"dropped {int(exact.sum())} exact duplicate rows")
        df = df.loc[~exact]
    clash = df.duplicated(keys, keep=False)
    if clash.any():
        n = int(df.loc[clash, keys].drop_duplicates().shape[0])
        log.norm(path, ", ".join(keys), f"dropped {int(clash.sum())} rows: {n} keys with "
                 "conflicting values")  # fmt: skip
        df = df.loc[~clash]
    return df.reset_index(drop=True)


def _to_keys(df: pd.DataFrame, log: _Log, path: Path, with_method: bool = True) -> pd.DataFrame:
    """Map paper spellings to ours and keep only the paper's PaI grid (dropped rows are noted)."""
    out = df.rename(columns={"model": "arch_paper", "dataset": "dataset_paper"})
    out["arch"] = out["arch_paper"].map(ARCH_FROM_PAPER)
    out["dataset"] = out["dataset_paper"].map(DATASET_FROM_PAPER)
    keep = out["arch"].notna() & out["dataset"].notna()
    if with_method:
        out["method"] = out[METHOD_COLUMN].map(METHOD_FROM_PAPER)
        keep &= out["method"].notna()
    if (~keep).any():
        archs = sorted(out.loc[~keep & out["arch"].isna(), "arch_paper"].astype(str).unique())
        methods = (
            sorted(out.loc[~keep & out["method"].isna(), METHOD_COLUMN].astype(str).unique())
            if with_method
            else []
        )
        datasets = sorted(
            out.loc[~keep & out["dataset"].isna(), "dataset_paper"].astype(str).unique()
        )
        what = f"architectures {archs}, methods {methods}" + (
            f", datasets {datasets}" if datasets else ""
        )
        log.notes.append(
            f"{log.rel(path)}: dropped {int((~keep).sum())} rows outside the PaI grid ({what})"
        )
    out = out.loc[keep]
    bad = out[["sparsity", "seed", "accuracy"]].isna().any(axis=1)
    if bad.any():
        log.norm(path, "sparsity, seed, accuracy", f"dropped {int(bad.sum())} rows with NaN keys")
        out = out.loc[~bad]
    return out.reset_index(drop=True)


def _load_unrolled(root: Path, log: _Log) -> pd.DataFrame | None:
    files = _csvs(root / "graph_metrics" / "unrolled")
    if not files:
        log.notes.append("graph_metrics/unrolled: no table, MGE feature set skipped")
        return None
    frames = []
    for f in files:
        df = _read(f, log)
        if df is None:
            continue
        df = _method_column(df, f, log, usual="pruning")
        if df is None or not _require(df, f, log, NETWORK_COLUMNS + ["accuracy"]):
            continue
        missing = [c for c in MGE_METRICS if c not in df.columns]
        if len(missing) == len(MGE_METRICS):
            log.skip(f, "none of the MGE metric columns")
            continue
        if missing:
            log.norm(f, ", ".join(missing), "absent from this file: NaN for its networks")
            df = df.assign(**{c: np.nan for c in missing})
        df = _dedupe(df, NETWORK_COLUMNS, f, log)
        frames.append(_to_keys(df, log, f))
    if not frames:
        log.notes.append("graph_metrics/unrolled: no usable table, MGE feature set skipped")
        return None
    df = normalise_keys(pd.concat(frames, ignore_index=True))
    dup = df.duplicated(list(KEYS), keep=False)
    if dup.any():
        log.norm("graph_metrics/unrolled", "keys", f"dropped {int(dup.sum())} rows of networks "
                 "listed in more than one file")  # fmt: skip
        df = df.loc[~dup].reset_index(drop=True)
    check_table(df, "graph_metrics/unrolled", KEYS, KEYS, unique=KEYS)
    return df


def _load_bge(root: Path, sub: str, log: _Log) -> list[tuple[Path, pd.DataFrame]]:
    """Per-layer tables of one BGE encoding with canonical column names, before any row is
    dropped (the positional Ramanujan join needs the rows as published)."""
    out = []
    for f in _csvs(root / "graph_metrics" / sub):
        df = _read(f, log)
        if df is None:
            continue
        df = _method_column(df, f, log, usual=METHOD_COLUMN)
        if df is None or not _require(df, f, log, [*NETWORK_COLUMNS, "accuracy", "layer_id"]):
            continue
        if "layer_sparsity" not in df.columns:
            log.skip(f, "missing required columns ['layer_sparsity']")
            continue
        short = {k: v for k, v in BGE_SHORT_NAMES.items() if k in df.columns and v not in df}
        if short:
            df = df.rename(columns=short)
            for k, v in short.items():
                log.norm(f, k, f"renamed to {v!r} (the paper code's short name for it)")
        out.append((f, df))
    if out:  # metric columns the other files of this encoding have and a file lacks

        def metrics(d: pd.DataFrame) -> set[str]:
            skip = {*NETWORK_COLUMNS, *BGE_NON_FEATURES, "layer_sparsity"}
            return {c for c in d.columns if c not in skip and pd.api.types.is_numeric_dtype(d[c])}

        union = set().union(*(metrics(d) for _, d in out))
        for f, d in out:
            lack = sorted(union - set(d.columns))
            if lack:
                log.norm(f, f"{len(lack)} metric columns", "absent from this file (NaN for its "
                         f"networks): {', '.join(lack)}")  # fmt: skip
    return out


def _aggregate_bge(layers: pd.DataFrame, name: str) -> pd.DataFrame:
    """One row per network: the mean of every per-layer metric over the layers where it is defined.

    The mean is what the paper uses and it is invariant to the number of layers, so networks of
    different depth are comparable. Metrics undefined in every layer stay NaN here and are dropped
    by the feature builder (all-NaN columns).
    """
    numeric = [
        c
        for c in layers.columns
        if c not in (*KEYS, *BGE_NON_FEATURES)
        and pd.api.types.is_numeric_dtype(layers[c])
        and c not in ("arch_paper", "dataset_paper")
    ]
    agg = layers.groupby(list(KEYS), sort=True)[numeric].mean()
    agg.columns = [f"mean_{feature_name(c)}" for c in agg.columns]
    agg = agg.reset_index()
    check_table(agg, name, KEYS, KEYS, unique=KEYS)
    return agg


def _join_ramanujan(
    ram_file: Path, bge_file: Path, bge: pd.DataFrame, encoding: str, log: _Log
) -> pd.DataFrame | None:
    """Attach the method column to a Ramanujan table by row position, verifying the shared keys."""
    ram = _read(ram_file, log)
    if ram is None:
        return None
    need = ["accuracy", "sparsity", "seed", "layer_id", "layer_sparsity", "degree_bound"]
    if not _require(ram, ram_file, log, need):
        return None
    if len(ram) != len(bge):
        log.skip(
            ram_file,
            f"{len(ram)} rows but {log.rel(bge_file)} has {len(bge)}; "
            "the positional join needs the same rows in the same order",
        )
        return None
    close_cols = ("accuracy", "sparsity", "layer_sparsity")
    exact_cols = ("seed", "layer_id", "layer_name", "model", "dataset")
    bad = [
        c
        for c in close_cols
        if not np.allclose(ram[c].to_numpy(float), bge[c].to_numpy(float), rtol=1e-6, atol=1e-9)
    ]
    bad += [
        c
        for c in exact_cols
        if c in ram.columns and not (ram[c].astype(str).values == bge[c].astype(str).values).all()
    ]
    if bad:
        log.skip(
            ram_file,
            f"rows do not line up with {log.rel(bge_file)} in columns {bad}; "
            "cannot attach the method by position",
        )
        return None
    out = ram.copy()
    out[METHOD_COLUMN] = bge[METHOD_COLUMN].to_numpy()
    out["weighted_spectral_gap"] = (
        bge[WEIGHTED_GAP_COLUMN].to_numpy(float) if WEIGHTED_GAP_COLUMN in bge else np.nan
    )
    for c in ("iterative_spectral_gap", "iterative_degree_bound"):
        if c not in out:
            out[c] = np.nan
    out["encoding"] = encoding
    out["layer_density"] = out["layer_sparsity"]  # the paper's column holds nnz/numel
    return out


def _ramanujan_files(root: Path, stem: str) -> list[Path]:
    return sorted(p for d in RAMANUJAN_DIRS for p in root.glob(f"{d}/*/{stem}.csv*"))


def load_paper_tables(directory: str | Path, strict: bool = False) -> Tables:
    """Read a directory in the paper layout and return canonical :class:`Tables`.

    ``strict``: raise on the first unusable file instead of skipping it with a recorded reason.
    """
    root = Path(directory)
    log = _Log(root, strict)
    features: dict[str, pd.DataFrame] = {}
    label_frames: list[pd.DataFrame] = []
    for d in RAMANUJAN_DIRS[1:]:
        if (root / d).is_dir():
            log.norm(d, "(folder)", f"read as {RAMANUJAN_DIRS[0]}/ (the authors' spelling)")

    unrolled = _load_unrolled(root, log)
    if unrolled is not None:
        cols = {c: feature_name(c) for c in MGE_METRICS}
        features["mge"] = unrolled[[*KEYS, *MGE_METRICS]].rename(columns=cols)
        label_frames.append(unrolled[[*KEYS, "accuracy"]])

    ram_frames: list[pd.DataFrame] = []
    layer_keys = [*KEYS, "layer_id"]
    for sub, enc in ENCODING_DIRS.items():
        files = _load_bge(root, sub, log)
        if not files:
            log.notes.append(f"graph_metrics/{sub}: no tables, {enc} feature set skipped")
            continue
        layer_frames = []
        for f, raw in files:
            # Ramanujan tables named like this BGE table, e.g. ramanujan/*/rolled-CIFAR-10-CONV-6.csv
            for rf in _ramanujan_files(root, _stem(f)):
                joined = _join_ramanujan(rf, f, raw, enc, log)
                if joined is not None:
                    joined = _dedupe(joined, [*NETWORK_COLUMNS, "layer_id"], rf, log)
                    ram_frames.append(_to_keys(joined, log, rf))
            df = _dedupe(raw, [*NETWORK_COLUMNS, "layer_id"], f, log)
            layer_frames.append(normalise_keys(_to_keys(df, log, f)))
        layers = pd.concat(layer_frames, ignore_index=True)
        dup = layers.duplicated(layer_keys, keep=False)
        if dup.any():
            log.norm(f"graph_metrics/{sub}", "keys", f"dropped {int(dup.sum())} layer rows of "
                     "networks listed in more than one file")  # fmt: skip
            layers = layers.loc[~dup].reset_index(drop=True)
        check_table(layers, f"graph_metrics/{sub}", [], [], unique=layer_keys)
        features[enc] = _aggregate_bge(layers, f"graph_metrics/{sub}")
        label_frames.append(layers[[*KEYS, "accuracy"]].drop_duplicates(list(KEYS)))

    if not label_frames:
        raise TableError(f"{root}: paper layout without any usable graph_metrics table")

    ram = None
    if ram_frames:
        ram = normalise_keys(pd.concat(ram_frames, ignore_index=True))
        ram = ram[[*KEYS, *RAMANUJAN_COLUMNS]]
        dup = ram.duplicated([*KEYS, "encoding", "layer_id"], keep=False)
        if dup.any():
            log.norm("ramanujan/", "keys", f"dropped {int(dup.sum())} rows listed twice")
            ram = ram.loc[~dup].reset_index(drop=True)
    else:
        log.notes.append("ramanujan/: no tables, Ramanujan/density analyses skipped")

    labels = normalise_keys(pd.concat(label_frames, ignore_index=True))
    spread = labels.groupby(list(KEYS))["accuracy"].agg(lambda s: s.max() - s.min())
    if (spread > 1e-6).any():
        bad = spread[spread > 1e-6].index
        if strict:
            raise TableError(
                f"{root}: tables disagree on the accuracy of networks {bad[:3].tolist()}"
            )
        log.norm("(all tables)", "accuracy", f"dropped {len(bad)} networks whose accuracy "
                 f"differs between tables, e.g. {bad[:3].tolist()}")  # fmt: skip
        labels = labels[~labels.set_index(list(KEYS)).index.isin(bad)]
    networks = labels.drop_duplicates(list(KEYS)).reset_index(drop=True)
    networks["dense_accuracy"] = np.nan  # the paper's tables carry no dense baselines
    networks = check_networks(networks, f"{root} (networks)")
    return Tables(
        networks,
        features,
        ram,
        source="paper",
        notes=log.notes,
        normalised=log.normalised,
        skipped=log.skipped,
    )
