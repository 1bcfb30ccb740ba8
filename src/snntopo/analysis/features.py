"""Feature sets and the regression target, built from :class:`Tables`.

Every feature set is a DataFrame indexed by the network keys with one column per feature. All sets
are evaluated on the same networks (the intersection of the tables that feed any set), so their
scores are comparable.

Feature sets (only those whose tables exist are built):

- ``sparsity``: the global sparsity alone. The naive baseline: it knows how much was pruned but
  nothing about the method.
- ``density``: global sparsity plus mean/std/min/max over layers of the layer density
  (nnz/numel). This is "how many weights each layer keeps", with no information about *which*
  weights: the quantity the Ramanujan metrics are compared with (paper 4.1).
- ``layer_density``: the density of every layer as its own column (the full layer-wise density
  profile; layers are matched by ``layer_id`` within an architecture, so in pooled models other
  architectures' layers are missing and imputed).
- ``ramanujan``: per network, the mean over layers of the four Ramanujan metrics.
- ``ramanujan+density``: both, to test whether Ramanujan metrics add anything beyond density.
- ``mge``, ``rolled``, ``rolled-channel``: the network-level topometrics of each encoding (BGE
  per-layer metrics averaged over layers by the loader).
- ``combined``: every column of every other set.

NaN handling (documented in the summary): columns that are NaN for every network in the modelled
subset and constant columns are dropped before cross-validation (they carry no information and
break scaling); remaining NaNs are imputed with the training-fold median inside the model pipeline,
so no information from test folds leaks into the imputation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError, TableError
from ..names import KEYS, encoding_names
from .tables import RAMANUJAN_METRICS, Tables

KEY_LIST = list(KEYS)
GROUP_KEYS = ["dataset", "arch", "method", "sparsity"]

#: the paper's spellings of MGE metrics that the pipeline spells otherwise
_PAPER_SPELLINGS = {"1_hop_nei": "one_hop_nei", "2_hop_nei": "two_hop_nei"}


def _mge_families() -> dict[str, str]:
    """metric -> its family (registry fact ``metrics`` of each family that applies to the MGE:
    to a multipartite encoding, whether registered with ``kinds=`` or ``encodings=``)."""
    from ..encode import ENCODINGS
    from ..metrics import FAMILIES, family_encoding_names

    out = {
        metric: fam
        for fam in FAMILIES.names()
        if any(ENCODINGS.fact(e, "kind") == "multipartite" for e in family_encoding_names(fam))
        for metric in FAMILIES.fact(fam, "metrics")
    }
    out.update({paper: out[ours] for paper, ours in _PAPER_SPELLINGS.items() if ours in out})
    return out


#: topometric family of each MGE metric name; used to order and colour plots
MGE_FAMILIES = _mge_families()
FAMILY_ORDER = (*dict.fromkeys(MGE_FAMILIES.values()), "other")


def family_of(feature: str) -> str:
    """The topometric family of a feature name (``other`` when not a known MGE metric)."""
    return MGE_FAMILIES.get(feature.removesuffix("_norm"), "other")


def target_frame(networks: pd.DataFrame, target: str, drop: str) -> tuple[pd.Series, str]:
    """The regression target per network and its name.

    ``target='auto'`` uses the accuracy drop when every network has a dense baseline, else the
    accuracy itself. A drop is ``dense - sparse`` (absolute) or ``(dense - sparse) / dense``
    (relative); lower is better. Accuracy: higher is better.
    """
    if target not in ("auto", "drop", "accuracy"):
        raise ConfigError(f"target must be 'auto', 'drop' or 'accuracy', got {target!r}")
    if drop not in ("absolute", "relative"):
        raise ConfigError(f"drop must be 'absolute' or 'relative', got {drop!r}")
    idx = networks.set_index(KEY_LIST)
    has_dense = bool(idx["dense_accuracy"].notna().all()) and len(idx) > 0
    if target == "auto":
        target = "drop" if has_dense else "accuracy"
    if target == "accuracy":
        return idx["accuracy"].astype(float).rename("accuracy"), "accuracy"
    if not has_dense:
        n = int(idx["dense_accuracy"].isna().sum())
        raise TableError(
            f"networks: target 'drop' needs column 'dense_accuracy' for every network ({n} missing)"
        )
    diff = idx["dense_accuracy"] - idx["accuracy"]
    if drop == "relative":
        return (diff / idx["dense_accuracy"]).rename("relative_drop"), "relative_drop"
    return diff.rename("absolute_drop"), "absolute_drop"


def higher_is_better(target_name: str) -> bool:
    return target_name == "accuracy"


def _density_tables(tables: Tables) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Layer-density summary and layer-wise profile per network (one encoding: densities agree)."""
    ram = tables.ramanujan_layers
    if ram is None or ram.empty:
        return None, None
    first = ram["encoding"].iloc[0]
    layers = ram[ram["encoding"] == first]
    g = layers.groupby(KEY_LIST)["layer_density"]
    summary = pd.concat(
        {
            "layer_density_mean": g.mean(),
            "layer_density_std": g.std(ddof=0),
            "layer_density_min": g.min(),
            "layer_density_max": g.max(),
        },
        axis=1,
    )
    profile = layers.pivot_table(
        index=KEY_LIST, columns="layer_id", values="layer_density", aggfunc="mean"
    )
    profile.columns = [f"density_layer_{int(c):02d}" for c in profile.columns]
    return summary, profile


def _ramanujan_table(tables: Tables) -> pd.DataFrame | None:
    """Mean over layers of each Ramanujan metric (NaN layers skipped), one column per encoding."""
    ram = tables.ramanujan_layers
    if ram is None or ram.empty:
        return None
    agg = ram.groupby([*KEY_LIST, "encoding"])[list(RAMANUJAN_METRICS)].mean()
    wide = agg.unstack("encoding")
    wide.columns = [f"mean_{m}__{e.replace('-', '_')}" for m, e in wide.columns]
    return wide


def mask_infinite(tables: Tables) -> tuple[Tables, list[str]]:
    """Replace +-inf metric values by NaN ("undefined"), with a note per column.

    Why: e.g. the paper's ``degree_bound`` is -inf on layers so sparse that the Ramanujan bound is
    0 (division by zero). An infinite value is not a measurement; treating it as missing lets the
    layer mean skip it and the imputer handle networks where it is undefined everywhere.
    """
    notes: list[str] = []

    def clean(df: pd.DataFrame, name: str) -> pd.DataFrame:
        num = df.select_dtypes("number")
        inf = np.isinf(num)
        counts = inf.sum()
        if not counts.any():
            return df
        for col, n in counts[counts > 0].items():
            notes.append(f"{name}: {int(n)} infinite values in {col!r} treated as undefined (NaN)")
        out = df.copy()
        out[num.columns] = num.mask(inf)
        return out

    feats = {k: clean(v, k) for k, v in tables.features.items()}
    ram = tables.ramanujan_layers
    ram = clean(ram, "ramanujan_layers") if ram is not None else None
    cleaned = Tables(
        tables.networks,
        feats,
        ram,
        tables.source,
        list(tables.notes),
        list(tables.normalised),
        list(tables.skipped),
    )
    return cleaned, notes


def build_feature_sets(tables: Tables) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """All feature sets on the common set of networks, plus notes on what was dropped.

    Expects tables whose infinities were already masked (:func:`mask_infinite`).
    """
    notes: list[str] = []
    base = tables.networks.set_index(KEY_LIST)
    sparsity = pd.DataFrame({"sparsity": base.index.get_level_values("sparsity")}, index=base.index)
    sets: dict[str, pd.DataFrame] = {"sparsity": sparsity}
    summary, profile = _density_tables(tables)
    if summary is not None:
        sets["density"] = sparsity.join(summary, how="inner")
        sets["layer_density"] = sparsity.join(profile, how="inner")
    ram = _ramanujan_table(tables)
    if ram is not None:
        sets["ramanujan"] = ram
        sets["ramanujan+density"] = ram.join(sets["density"], how="inner")
    for enc in encoding_names():
        if enc in tables.features:
            sets[enc] = tables.features[enc].set_index(KEY_LIST).astype(float)
    topo = [s for s in encoding_names() if s in sets]
    if topo or ram is not None:
        parts = [sets[s].add_prefix(f"{s}:") for s in (*topo, "ramanujan", "density") if s in sets]
        sets["combined"] = pd.concat(parts, axis=1, join="inner")

    common = base.index
    for name, df in sets.items():
        missing = common.difference(df.index)
        if len(missing):
            notes.append(f"{name}: no features for {len(missing)} networks")
        common = common.intersection(df.index)
    if len(common) == 0:
        raise TableError("no network is present in every feature table")
    dropped = len(base) - len(common)
    if dropped:
        notes.append(
            f"{dropped} of {len(base)} networks lack a row in some feature table and are left out "
            "of every feature set, so all sets are scored on the same networks"
        )
    common = common.sort_values()
    return {k: v.loc[common] for k, v in sets.items()}, notes


def usable_columns(X: pd.DataFrame) -> list[str]:
    """Columns with at least two distinct non-NaN values (all-NaN or constant ones carry nothing)."""
    nunique = X.nunique(dropna=True)
    return list(nunique.index[nunique > 1])


def groups_of(index: pd.MultiIndex) -> np.ndarray:
    """Configuration id per network: (dataset, arch, method, sparsity); seeds share an id."""
    frame = index.to_frame(index=False)[GROUP_KEYS]
    return frame.astype(str).agg("|".join, axis=1).to_numpy()
