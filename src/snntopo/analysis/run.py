"""``run_analysis``: tables in, CSVs + figures + summary out.

Everything is validated and computed before the first file is written, so a bad table leaves the
output directory untouched; each file is then written atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..io import provenance, write_csv, write_json
from .features import KEY_LIST, build_feature_sets, higher_is_better, mask_infinite, target_frame
from .models import MODELS, limit_threads
from .ramanujan import density_correlation
from .ranking import rank_agreement, summarise_ranking
from .regression import cross_validate, summarise_folds, summarise_importance
from .tables import Tables, load_tables
from .transfer import summarise_transfer, transfer
from .verdicts import ranking_cells, ranking_verdicts, regression_verdicts


@dataclass(frozen=True)
class AnalysisParams:
    """Knobs of the analysis; every random choice derives from ``seed``.

    ``target``: 'auto' (drop when every network has a dense accuracy, else accuracy), 'drop' or
    'accuracy'. ``drop``: 'absolute' (dense - sparse) or 'relative' ((dense - sparse) / dense).
    ``ranking_scope``: which regression scope's out-of-fold predictions rank the methods in the
    headline figure (all scopes are in ranking.csv). ``threads``: the cores the analysis may use;
    with more than one, the cross-validation runs that many worker processes, each fit
    single-threaded (one level of parallelism); BLAS/OpenMP threads are capped at one in every
    process either way, so a run never oversubscribes shared cores. Results do not depend on it.
    """

    seed: int = 0
    n_splits: int = 5
    n_repeats: int = 2
    models: tuple[str, ...] = MODELS
    target: str = "auto"
    drop: str = "absolute"
    n_permutation_repeats: int = 5
    ranking_scope: str = "arch"
    figures: bool = True
    threads: int = 1

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> AnalysisParams:
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown analysis parameters {unknown}; allowed: {sorted(known)}")
        if "models" in params:
            params["models"] = tuple(params["models"])
        p = cls(**params)
        bad = [m for m in p.models if m not in MODELS]
        if bad or not p.models:
            raise ConfigError(f"models must be a non-empty subset of {MODELS}, got {p.models}")
        if p.ranking_scope not in ("pooled", "arch", "sparsity"):
            raise ConfigError(
                f"ranking_scope must be pooled, arch or sparsity: {p.ranking_scope!r}"
            )
        if p.n_permutation_repeats < 1:
            raise ConfigError("n_permutation_repeats must be >= 1")
        if not isinstance(p.threads, int) or isinstance(p.threads, bool) or p.threads < 1:
            raise ConfigError(f"threads must be an integer >= 1, got {p.threads!r}")
        return p


def library_versions() -> dict[str, str]:
    import matplotlib
    import numpy
    import scipy
    import seaborn
    import sklearn

    return {
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "seaborn": seaborn.__version__,
    }


def compute(tables: Tables, params: AnalysisParams, progress: Callable[[str], None]) -> dict:
    """All result tables, in memory (BLAS/OpenMP capped at one thread per process)."""
    with limit_threads(1):
        return _compute(tables, params, progress)


def _compute(tables: Tables, params: AnalysisParams, progress: Callable[[str], None]) -> dict:
    y, target_name = target_frame(tables.networks, params.target, params.drop)
    tables, inf_notes = mask_infinite(tables)
    sets, notes = build_feature_sets(tables)
    notes = inf_notes + notes
    index = next(iter(sets.values())).index
    progress(
        f"features: {len(index)} networks, target {target_name}, sets "
        + ", ".join(f"{k}({v.shape[1]})" for k, v in sets.items())
    )
    res: dict[str, Any] = {"target": target_name, "notes": [*tables.notes, *notes], "sets": sets}
    if tables.ramanujan_layers is not None:
        progress("ramanujan vs density: per-layer correlations")
        layers = tables.ramanujan_layers.merge(index.to_frame(index=False), on=KEY_LIST)
        res["ramanujan_density"] = density_correlation(layers)
        res["ramanujan_layers"] = layers
    cv = cross_validate(
        sets,
        y,
        models=params.models,
        n_splits=params.n_splits,
        n_repeats=params.n_repeats,
        seed=params.seed,
        importance_set="mge" if "mge" in sets else None,
        importance_model="gbt" if "gbt" in params.models else params.models[0],
        n_permutation_repeats=params.n_permutation_repeats,
        progress=progress,
        n_jobs=params.threads,
    )
    res["regression"] = summarise_folds(cv.folds, cv.predictions, target_name)
    res["regression_folds"] = cv.folds
    res["predictions"] = cv.predictions.drop(columns=["oof_r2_by_repeat", "oof_mae_by_repeat"])
    res["importance"] = summarise_importance(cv.importance)
    progress("ranking: Kendall tau and top-1 agreement per (dataset, arch, sparsity)")
    direct = None
    ram_cols = [c for c in sets.get("ramanujan", pd.DataFrame()).columns]
    if ram_cols:
        direct = sets["ramanujan"].assign(y_true=y.loc[index]).reset_index()
    res["ranking"] = rank_agreement(res["predictions"], higher_is_better(target_name), direct)
    res["ranking_summary"] = summarise_ranking(res["ranking"])
    dataset = str(index.get_level_values("dataset")[0])
    res["regression_verdicts"] = regression_verdicts(res["regression"], dataset)
    res["ranking_cells"] = ranking_cells(res["ranking"], params.ranking_scope)
    res["ranking_verdicts"] = ranking_verdicts(res["ranking_cells"])
    if index.get_level_values("dataset").nunique() > 1:
        progress("transfer: fit on one data set, rank the methods on another, per architecture")
        res["transfer"] = transfer(
            sets, y, higher_is_better(target_name), params.models, params.seed
        )
        res["transfer_summary"] = summarise_transfer(res["transfer"])
    from .predictor import feature_frames, leave_one_method_out, lomo_verdicts
    from .predictor.fit import default_excluded_features

    if "mge" in sets:
        progress("leave-one-method-out: MGE predictor vs sparsity and layer-density baselines")
        # the same columns `snntopo fit` uses: on published tables, not those computed on
        # trained weights (a new method's mask at initialisation cannot give them)
        excluded = default_excluded_features(tables, "reference")
        frames, y_lomo, _, _ = feature_frames(
            tables, params.target, params.drop, exclude_features=excluded
        )
        res["lomo_excluded"] = excluded
        _, per_method, lomo = leave_one_method_out(frames, y_lomo, target_name)
        res["lomo_methods"], res["lomo"] = per_method, lomo
        res["lomo_verdicts"] = lomo_verdicts(lomo)
    res["normalised"] = pd.DataFrame(tables.normalised, columns=["file", "column", "action"])
    res["skipped"] = pd.DataFrame(tables.skipped, columns=["file", "reason"])
    if "ramanujan_density" in res:
        reg = res["regression"]
        res["ramanujan_prediction"] = reg[
            reg["feature_set"].isin(["sparsity", "density", "ramanujan", "ramanujan+density"])
        ].reset_index(drop=True)
    return res


def run_analysis(
    tables: str | os.PathLike[str] | Tables,
    out_dir: str | os.PathLike[str],
    params: AnalysisParams | Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Run every analysis and write its outputs under ``out_dir``; return name -> path."""
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    p = params if isinstance(params, AnalysisParams) else AnalysisParams.from_mapping(params)
    source = None
    if not isinstance(tables, Tables):
        source = Path(tables)
        say(f"load: {source}")
        tables = load_tables(source)
    configs = len(tables.networks[["dataset", "arch", "method", "sparsity"]].drop_duplicates())
    if p.n_splits > configs:
        from ..errors import ConfigError

        # grouped_splits would cap the folds silently while the summary said "1000-fold CV"
        raise ConfigError(
            f"n_splits: {p.n_splits} folds, but the tables hold {configs} configurations "
            "(dataset, arch, method, sparsity); a fold needs at least one (lower --splits / "
            "analysis.n_splits)"
        )
    res = compute(tables, p, say)
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    for name in (
        "ramanujan_density",
        "ramanujan_prediction",
        "regression",
        "regression_folds",
        "importance",
        "ranking",
        "ranking_summary",
        "regression_verdicts",
        "ranking_cells",
        "ranking_verdicts",
        "transfer",
        "transfer_summary",
        "predictions",
        "lomo",
        "lomo_methods",
        "lomo_verdicts",
        "normalised",
        "skipped",
    ):
        if name in res:
            paths[name] = write_csv(res[name], out / f"{name}.csv")
    if p.figures:
        from ..plots.analysis import write_figures

        say("figures")
        paths.update(write_figures(res, out / "figures", ranking_scope=p.ranking_scope))
    from .summary import write_summary

    meta = {
        "target": res["target"],
        "n_networks": int(len(next(iter(res["sets"].values())))),
        "lomo_excluded_features": list(res.get("lomo_excluded", [])),
        "feature_sets": {k: list(v.columns) for k, v in res["sets"].items()},
        "notes": res["notes"],
        "tables": str(source) if source else tables.source,
        "tables_layout": tables.source,
        "versions": library_versions(),
        "seconds": round(time.perf_counter() - t0, 2),
        "provenance": provenance(**asdict(p)),
    }
    paths.update(write_summary(res, meta, p, out, paths))
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "analysis.json", meta)
    paths["meta"] = out / "analysis.json"
    say(f"done in {meta['seconds']} s")
    return paths
