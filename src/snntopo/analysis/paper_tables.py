"""Convert the paper's published tables (``graph_metrics/`` + ``ramanujan/``) to :class:`Tables`.

Layout (files may be ``.csv`` or ``.csv.gz``)::

    graph_metrics/unrolled/unrolled-<DATASET>.csv                    one row per network (MGE)
    graph_metrics/rolled/rolled-<DATASET>-<ARCH>.csv                 one row per layer (rolled BGE)
    graph_metrics/rolled_channel/rolled_channel-<DATASET>-<ARCH>.csv one row per layer
    ramanujan/<ARCH>/rolled-<DATASET>-<ARCH>.csv                     one row per layer, no method

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
from .tables import (
    RAMANUJAN_COLUMNS,
    Tables,
    check_networks,
    check_table,
    normalise_keys,
    read_csv,
)

# Paper MGE columns that are metrics (spec D). `nodes` is constant per (arch, dataset) and `edges`
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


def is_paper_layout(directory: Path) -> bool:
    return (directory / "graph_metrics").is_dir()


def feature_name(col: str) -> str:
    """Column names without hyphens so they are valid identifiers in formulas and plots."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", col)


def _csvs(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.csv"), *directory.glob("*.csv.gz")])


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".csv")


def _to_keys(df: pd.DataFrame, method_col: str | None, notes: list[str], name: str) -> pd.DataFrame:
    """Map paper spellings to ours and keep only the paper's PaI grid."""
    required = ["model", "dataset", "sparsity", "seed", "accuracy"]
    if method_col is not None:
        required.append(method_col)
    check_table(df, name, required, required)
    out = df.rename(columns={"model": "arch_paper", "dataset": "dataset_paper"})
    out["arch"] = out["arch_paper"].map(ARCH_FROM_PAPER)
    out["dataset"] = out["dataset_paper"].map(DATASET_FROM_PAPER)
    if method_col is not None:
        out["method"] = out[method_col].map(METHOD_FROM_PAPER)
        keep = out["arch"].notna() & out["dataset"].notna() & out["method"].notna()
    else:
        keep = out["arch"].notna() & out["dataset"].notna()
    if (~keep).any():
        archs = sorted(out.loc[~keep & out["arch"].isna(), "arch_paper"].astype(str).unique())
        methods = (
            sorted(out.loc[~keep & out["method"].isna(), method_col].astype(str).unique())
            if method_col
            else []
        )
        notes.append(
            f"{name}: dropped {int((~keep).sum())} rows outside the PaI grid "
            f"(architectures {archs}, methods {methods})"
        )
    return out.loc[keep].reset_index(drop=True)


def _load_unrolled(root: Path, notes: list[str]) -> pd.DataFrame | None:
    files = _csvs(root / "graph_metrics" / "unrolled")
    if not files:
        notes.append("graph_metrics/unrolled: no table, MGE feature set skipped")
        return None
    frames = []
    for f in files:
        df = read_csv(f)
        check_table(df, str(f), ["pruning", *MGE_METRICS], [])
        frames.append(_to_keys(df, "pruning", notes, str(f)))
    df = pd.concat(frames, ignore_index=True)
    df = normalise_keys(df)
    check_table(df, "graph_metrics/unrolled", KEYS, KEYS, unique=KEYS)
    return df


def _load_bge(root: Path, sub: str, notes: list[str]) -> list[tuple[Path, pd.DataFrame]]:
    """Per-layer tables of one BGE encoding, unfiltered (needed for the positional join)."""
    out = []
    for f in _csvs(root / "graph_metrics" / sub):
        df = read_csv(f)
        check_table(df, str(f), ["pruning_algorithm", "layer_id", "layer_sparsity"], [])
        out.append((f, df))
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
    ram_file: Path, bge_file: Path, bge: pd.DataFrame, encoding: str
) -> pd.DataFrame:
    """Attach the method column to a Ramanujan table by row position, verifying the shared keys."""
    ram = read_csv(ram_file)
    need = ["accuracy", "sparsity", "seed", "layer_id", "layer_sparsity", "degree_bound"]
    check_table(ram, str(ram_file), need, [])
    if len(ram) != len(bge):
        raise TableError(
            f"{ram_file}: {len(ram)} rows but {bge_file} has {len(bge)}; "
            "the positional join needs the same rows in the same order"
        )
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
        raise TableError(
            f"{ram_file}: rows do not line up with {bge_file} in columns {bad}; "
            "cannot attach the method by position"
        )
    out = ram.copy()
    out["pruning_algorithm"] = bge["pruning_algorithm"].to_numpy()
    out["weighted_spectral_gap"] = (
        bge[WEIGHTED_GAP_COLUMN].to_numpy(float) if WEIGHTED_GAP_COLUMN in bge else np.nan
    )
    for c in ("iterative_spectral_gap", "iterative_degree_bound"):
        if c not in out:
            out[c] = np.nan
    out["encoding"] = encoding
    out["layer_density"] = out["layer_sparsity"]  # the paper's column holds nnz/numel
    return out


def load_paper_tables(directory: str | Path) -> Tables:
    """Read a directory in the paper layout and return canonical :class:`Tables`."""
    root = Path(directory)
    notes: list[str] = []
    features: dict[str, pd.DataFrame] = {}
    label_frames: list[pd.DataFrame] = []

    unrolled = _load_unrolled(root, notes)
    if unrolled is not None:
        cols = {c: feature_name(c) for c in MGE_METRICS}
        features["mge"] = unrolled[[*KEYS, *MGE_METRICS]].rename(columns=cols)
        label_frames.append(unrolled[[*KEYS, "accuracy"]])

    ram_frames: list[pd.DataFrame] = []
    for sub, enc in ENCODING_DIRS.items():
        files = _load_bge(root, sub, notes)
        if not files:
            notes.append(f"graph_metrics/{sub}: no tables, {enc} feature set skipped")
            continue
        layer_frames = []
        for f, raw in files:
            # Ramanujan tables named like this BGE table, e.g. ramanujan/*/rolled-CIFAR-10-CONV-6.csv
            for rf in sorted(root.glob(f"ramanujan/*/{_stem(f)}.csv*")):
                joined = _join_ramanujan(rf, f, raw, enc)
                ram_frames.append(_to_keys(joined, "pruning_algorithm", notes, str(rf)))
            layer_frames.append(_to_keys(raw, "pruning_algorithm", notes, str(f)))
        layers = normalise_keys(pd.concat(layer_frames, ignore_index=True))
        check_table(layers, f"graph_metrics/{sub}", [], [], unique=[*KEYS, "layer_id"])
        features[enc] = _aggregate_bge(layers, f"graph_metrics/{sub}")
        label_frames.append(layers[[*KEYS, "accuracy"]].drop_duplicates(list(KEYS)))

    if not label_frames:
        raise TableError(f"{root}: paper layout without any graph_metrics table")

    ram = None
    if ram_frames:
        ram = normalise_keys(pd.concat(ram_frames, ignore_index=True))
        ram = ram[[*KEYS, *RAMANUJAN_COLUMNS]]
        check_table(ram, "ramanujan/", KEYS, KEYS, unique=[*KEYS, "encoding", "layer_id"])
    else:
        notes.append("ramanujan/: no tables, Ramanujan/density analyses skipped")

    labels = normalise_keys(pd.concat(label_frames, ignore_index=True))
    spread = labels.groupby(list(KEYS))["accuracy"].agg(lambda s: s.max() - s.min())
    if (spread > 1e-6).any():
        bad = spread[spread > 1e-6].index[:3].tolist()
        raise TableError(f"{root}: tables disagree on the accuracy of networks {bad}")
    networks = labels.drop_duplicates(list(KEYS)).reset_index(drop=True)
    networks["dense_accuracy"] = np.nan  # the paper's tables carry no dense baselines
    networks = check_networks(networks, f"{root} (networks)")
    return Tables(networks, features, ram, source="paper", notes=notes)
