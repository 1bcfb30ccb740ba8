"""``fit_predictor``: one model per (dataset, arch) on tables, validated leave-one-method-out,
written as ``predictor.json`` with each feature's training range."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ConfigError, TableError
from ...io import provenance, write_csv
from ..features import build_feature_sets, higher_is_better, mask_infinite, target_frame
from ..tables import Tables, load_tables
from .fileformat import (
    FILE,
    FORMAT,
    FORMAT_VERSION,
    METRIC_DEFINITIONS,
    finite_json,
    validate,
    write_predictor,
)
from .model import conformal_q, feature_ranges, fit_model
from .validation import (
    DEFAULT_LEVEL,
    MIN_METHODS,
    _scope_frames,
    leave_one_method_out,
    lomo_verdicts,
)

# The paper's MGE columns (as the paper loader names them) -> the metric-artifact keys holding the
# same quantity on the same (paper-normalised) scale; the canonical tables use the right side.
PAPER_MGE_TO_CANONICAL = {
    "sink_nodes": "sink_nodes_norm",
    "source_nodes": "source_nodes_norm",
    "disc_nodes": "disc_nodes_norm",
    "r_out": "r_out_norm",
    "r_in": "r_in_norm",
    "1_hop_nei": "one_hop_nei_norm",
    "2_hop_nei": "two_hop_nei_norm",
    "motif": "motif",
    "avg_node_strength": "avg_node_strength_norm",
    "k_core": "k_core_norm",
    "cut_edges": "cut_edges_norm",
    "cut_nodes": "cut_nodes_norm",
    "no_connected_components": "no_connected_components",
    "mean_connected_components": "mean_connected_components_norm",
    "spectral_gap": "spectral_gap",
    "spectral_radius": "spectral_radius",
}


def canonical_feature_names(names: Iterable[str]) -> list[str]:
    """Feature names as the predictor stores them (metric-artifact keys): a paper column name
    (``1_hop_nei``, ``1-hop-nei``) is mapped to its canonical key; sorted, unique."""
    out = set()
    for n in names:
        if not isinstance(n, str) or not n:
            raise ConfigError(f"exclude_features: expected feature names, got {n!r}")
        out.add(PAPER_MGE_TO_CANONICAL.get(n.replace("-", "_"), n))
    return sorted(out)


def default_excluded_features(tables: Tables, mode: str) -> list[str]:
    """The columns a predictor leaves out when ``fit`` is not told which (``exclude_features=None``):
    the one place to name columns whose values new masks cannot reproduce on the tables' scale
    (e.g. published columns that reference-mode metrics do not reproduce).

    The authors' published tables hold columns that no mask at initialisation reproduces (their
    |w|-weighted columns come from trained weights, ``docs/reproduction.md``); the metric
    families' registry names them (:func:`snntopo.metrics.unreproducible_columns`), and a
    predictor fit on those tables leaves them out, since a new mask's value would sit on another
    scale. Tables made by snntopo itself compute every column the way ``predict`` will, so nothing
    is left out of them."""
    del mode
    if tables.source != "paper":
        return []
    from ...metrics import unreproducible_columns

    return sorted(unreproducible_columns("mge"))


def feature_frames(
    tables: Tables,
    target: str = "auto",
    drop: str = "absolute",
    exclude_features: Iterable[str] = (),
) -> tuple[dict[str, pd.DataFrame], pd.Series, str, list[str]]:
    """The model's and the baselines' features per network (canonical names), and the target
    (``target``/``drop`` as in :func:`snntopo.analysis.features.target_frame`). Columns named in
    ``exclude_features`` (canonical or paper spelling) are left out of the model's features."""
    y, target = target_frame(tables.networks, target, drop)
    cleaned, notes = mask_infinite(tables)
    sets, more = build_feature_sets(cleaned)
    if "mge" not in sets:
        raise TableError("the tables have no MGE feature table; a predictor needs one")
    mge = sets["mge"]
    if tables.source == "paper":
        mge = mge.rename(columns=PAPER_MGE_TO_CANONICAL)
    excluded = canonical_feature_names(exclude_features)
    mge = mge.drop(columns=[c for c in excluded if c in mge.columns])
    frames = {"mge": mge, "sparsity": sets["sparsity"].iloc[:, :0]}
    if "layer_density" in sets:
        frames["layer_density"] = sets["layer_density"].drop(columns="sparsity")
    return frames, y.loc[mge.index], target, [*notes, *more]


def _check_excluded(tables: Tables, excluded: list[str]) -> None:
    """``--exclude-features`` names that are no MGE column of the tables are a typo, not a
    no-op (``sigal`` left ``signal`` in the model without a word)."""
    import difflib

    sets, _ = build_feature_sets(tables)
    mge = sets.get("mge")
    if mge is None:
        return
    columns = list(mge.columns)
    if tables.source == "paper":
        columns = [PAPER_MGE_TO_CANONICAL.get(c, c) for c in columns]
    for name in excluded:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TableError(
                f"--exclude-features: {name!r} is not an MGE column of the tables{hint}"
            )


def _versions() -> dict[str, str]:
    import sklearn

    from ... import __version__

    return {
        "snntopo": __version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _check_methods(index: pd.MultiIndex) -> None:
    """Every scope needs :data:`MIN_METHODS` methods: with fewer there is no leave-one-method-out
    validation, hence no interval and no measured coverage to give."""
    few = []
    for ds, arch, mask in _scope_frames(index):
        methods = sorted(index[mask].get_level_values("method").unique())
        if len(methods) < MIN_METHODS:
            few.append(f"{ds}/{arch} has {len(methods)} ({', '.join(methods)})")
    if few:
        raise TableError(
            f"a predictor needs at least {MIN_METHODS} PaI methods per (dataset, architecture) to "
            f"validate it leave-one-method-out; {'; '.join(few)}"
        )


def fit_predictor(
    tables: str | os.PathLike[str] | Tables,
    out_dir: str | os.PathLike[str],
    mode: str | None = None,
    level: float = DEFAULT_LEVEL,
    progress=None,
    exclude_features: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Fit one model per (dataset, arch), validate it leave-one-method-out, write the predictor.

    ``mode``: the encoding mode the tables' metrics were computed in. The paper's published tables
    are ``reference`` (the paper code's graph); canonical tables do not record it, so it must be
    given for them. ``exclude_features``: MGE columns the model must not use (e.g. columns that
    new masks cannot reproduce on the tables' scale); ``None``: those of
    :func:`default_excluded_features`. Recorded in the predictor (``excluded_features``).
    """
    say = progress or (lambda m: None)
    if not 0 < level < 1:
        raise ConfigError(f"interval level must be in (0, 1), got {level}")
    source = None
    if not isinstance(tables, Tables):
        source = str(tables)
        tables = load_tables(tables)
    if tables.source == "paper":
        if mode not in (None, "reference"):
            raise ConfigError(
                "the paper's tables were computed on the paper code's graph: mode must be "
                f"'reference', not {mode!r}"
            )
        mode = "reference"
    elif mode not in METRIC_DEFINITIONS:
        raise ConfigError(
            "canonical tables do not record the encoding mode of their metrics: pass "
            f"--mode {' or --mode '.join(METRIC_DEFINITIONS)} (the config's encode.mode)"
        )
    given = exclude_features is not None
    if exclude_features is None:
        exclude_features = default_excluded_features(tables, mode)
    excluded = canonical_feature_names(exclude_features)
    if given:
        _check_excluded(tables, excluded)
    frames, y, target, notes = feature_frames(tables, exclude_features=excluded)
    index = frames["mge"].index
    _check_methods(index)
    say(f"{len(y)} networks, target {target}, {frames['mge'].shape[1]} MGE features")
    per_net, per_method, summary = leave_one_method_out(frames, y, target, level)
    verdicts = lomo_verdicts(summary)
    keys = index.to_frame(index=False)
    scopes = []
    for ds, arch, mask in _scope_frames(index):
        k = keys.loc[mask].reset_index(drop=True)
        F = frames["mge"].loc[index[mask]]
        cols = [c for c in F.columns if F[c].nunique(dropna=True) > 1]
        if not cols:
            raise TableError(
                f"{ds}/{arch}: no MGE feature is left that varies between networks ("
                f"{len(excluded)} excluded, {F.shape[1]} constant or empty); a predictor of "
                "the sparsity alone is not an MGE predictor"
            )
        X = F[cols].to_numpy(float)
        ys = y.to_numpy(float)[mask]
        s = k["sparsity"].to_numpy(float)
        sub = summary[(summary["dataset"] == ds) & (summary["arch"] == arch)]
        val = {r["predictor"]: {c: float(r[c]) for c in ("mae", "coverage", "rank_abs_error",
                                                         "rank_exact")}
               for _, r in sub.iterrows()}  # fmt: skip
        net = per_net[
            (per_net["predictor"] == "mge") & (per_net["dataset"] == ds) & (per_net["arch"] == arch)
        ]
        q = conformal_q(np.abs(net["y_pred"] - net["y_true"]).to_numpy(), level)
        known = k.assign(y=ys).groupby(["method", "sparsity"])["y"].mean()
        scopes.append(
            {
                "dataset": ds,
                "arch": arch,
                "n_networks": int(mask.sum()),
                "methods": sorted(k["method"].unique()),
                "sparsities": sorted(float(v) for v in np.unique(s)),
                "features": cols,
                "feature_ranges": feature_ranges(X),
                "model": fit_model(s, X, ys),
                "interval_halfwidth": q,
                "known_means": [
                    {"method": m, "sparsity": float(sp), "mean": float(v)}
                    for (m, sp), v in known.items()
                ],
                "validation": val,
            }
        )
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": target,
        "higher_is_better": higher_is_better(target),
        "encoding": "mge",
        "encoding_mode": mode,
        "metric_definitions": METRIC_DEFINITIONS[mode],
        "interval_level": level,
        "features": sorted({c for sc in scopes for c in sc["features"]}),
        "excluded_features": excluded,
        "tables": source or tables.source,
        "tables_layout": tables.source,
        "versions": _versions(),
        "notes": [*tables.notes, *notes][:200],
        "scopes": scopes,
        "provenance": provenance(
            mode=mode, level=level, tables=source or tables.source, exclude_features=excluded
        ),
    }
    validate(finite_json(doc))  # before anything is written
    out = Path(out_dir)
    paths = {
        "lomo": write_csv(per_method, out / "lomo_methods.csv"),
        "lomo_summary": write_csv(summary, out / "lomo_summary.csv"),
        "lomo_verdicts": write_csv(verdicts, out / "lomo_verdicts.csv"),
    }
    paths["predictor"] = write_predictor(doc, out / FILE)  # last: its presence means complete
    return paths
