"""Predict how well a mask will train from the topology of its masked *initial* network.

``fit_predictor`` fits, per (dataset, architecture), a model of the accuracy (or the drop, when the
tables carry dense baselines) on the MGE topometrics; ``predict`` applies it to the metric
artifacts (``metrics/{family}.json``) of masks that were never trained.

Model (one per (dataset, arch) scope), the analysis' best per-architecture protocol (ridge on the
MGE topometrics) written so that every prediction is "sparsity baseline + what topology adds":

    y_hat = curve(sparsity) + ridge(features)

``curve`` is the mean target of the training methods at each sparsity level (linear
interpolation between levels, clamped outside), i.e. the best any sparsity-only model can do;
the ridge (signed log, training-fold median imputation, standardisation, clipping at +-5 sd, alpha
by leave-one-out on the training set, as in :mod:`snntopo.analysis.models`) fits the residual. Curve
and ridge are fitted jointly (backfitting, :func:`fit_model`). The
two baselines of the validation are the same construction with no features (``sparsity``) and with
the layer-wise density profile (``layer_density``).

Validation is leave-one-method-out, the situation of a user with a new PaI method: each method
is held out in turn, the model is fit on the others and predicts the held-out method at every
sparsity. Reported per scope: MAE, the coverage of the interval, and the held-out method's
predicted vs true rank among the methods at each sparsity. The interval is ``y_hat +- q`` with
``q`` the ``level`` quantile (finite-sample corrected) of the absolute leave-one-method-out
residuals; its coverage is measured the same way, with ``q`` recomputed without the held-out
method's residuals.

Storage: one JSON file (``predictor.json``, format below) holding only numbers, strings and lists;
it is read with :func:`json.loads` and validated key by key, so loading a predictor from an
untrusted source cannot execute code (no pickle, no object hooks).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ArtifactError, ConfigError, TableError
from ..io import provenance, read_json, write_csv, write_json, write_text
from ..names import KEYS
from .features import build_feature_sets, higher_is_better, mask_infinite, target_frame
from .tables import Tables, load_tables, select_features

FORMAT = "snntopo-predictor"
FORMAT_VERSION = 1
FILE = "predictor.json"
CLIP = 5.0
RIDGE_ALPHAS = np.logspace(-2, 3, 11)
DEFAULT_LEVEL = 0.9
PREDICTORS = ("mge", "layer_density", "sparsity")  # the model, then the two baselines
# The metric definitions a predictor records: the local family depends on the encoding mode
# (snntopo.metrics.local); the other families are defined the same way in both modes.
METRIC_DEFINITIONS = {
    "reference": "local: paper code (sinks - n_out, sources - padded n_in, its r-in/r-out index "
    "bounds); other families: snntopo",
    "exact": "local: exact (input/output blocks excluded); other families: snntopo",
}
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


class PredictorError(ArtifactError):
    """A predictor file is malformed, or metrics do not fit the predictor."""


# ------------------------------------------------------------------------------------ the model
def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def fit_linear(X: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """Ridge on the residual ``r``; returns the fitted parameters as plain lists."""
    from sklearn.linear_model import RidgeCV

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns
        med = np.nanmedian(X, axis=0) if X.shape[1] else np.zeros(0)
    med = np.where(np.isfinite(med), med, 0.0)
    Z = _signed_log(np.where(np.isnan(X), med, X))
    mean, scale = Z.mean(axis=0), Z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = np.clip((Z - mean) / scale, -CLIP, CLIP)
    if X.shape[1] == 0 or len(r) < 3:
        coef, intercept, alpha = np.zeros(X.shape[1]), float(np.mean(r)), float("nan")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = RidgeCV(alphas=RIDGE_ALPHAS).fit(Z, r)
        coef, intercept, alpha = est.coef_, float(est.intercept_), float(est.alpha_)
    return {
        "medians": med.tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": np.asarray(coef, float).tolist(),
        "intercept": intercept,
        "alpha": alpha,
    }


def apply_linear(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    med = np.asarray(model["medians"], float)
    Z = _signed_log(np.where(np.isnan(X), med, X))
    Z = np.clip((Z - np.asarray(model["mean"], float)) / np.asarray(model["scale"], float), -CLIP,
                CLIP)  # fmt: skip
    return Z @ np.asarray(model["coef"], float) + float(model["intercept"])


def fit_curve(s: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """Mean target per sparsity level."""
    levels = np.unique(s)
    return {"levels": levels.tolist(), "values": [float(y[s == v].mean()) for v in levels]}


def apply_curve(curve: Mapping[str, Any], s: np.ndarray) -> np.ndarray:
    return np.interp(s, np.asarray(curve["levels"], float), np.asarray(curve["values"], float))


def fit_model(s: np.ndarray, X: np.ndarray, y: np.ndarray, rounds: int = 8) -> dict[str, Any]:
    """Curve and ridge fitted jointly by backfitting: the ridge on ``y - curve``, then the curve
    on ``y - ridge`` (its intercept folded into the curve), ``rounds`` times."""
    curve = fit_curve(s, y)
    linear = fit_linear(X, y - apply_curve(curve, s))
    if X.shape[1] == 0:
        return {"curve": curve, "linear": linear}
    for _ in range(rounds):
        lin = apply_linear(linear, X)
        curve = fit_curve(s, y - lin)
        linear = fit_linear(X, y - apply_curve(curve, s))
    return {"curve": curve, "linear": linear}


def apply_model(model: Mapping[str, Any], s: np.ndarray, X: np.ndarray) -> np.ndarray:
    return apply_curve(model["curve"], s) + apply_linear(model["linear"], X)


def conformal_q(abs_res: np.ndarray, level: float) -> float:
    """The ceil((n+1) level)/n empirical quantile of absolute residuals (inf if too few)."""
    a = np.sort(abs_res[np.isfinite(abs_res)])
    n = len(a)
    k = math.ceil((n + 1) * level)
    return float(a[k - 1]) if 0 < k <= n else float("inf")


# ------------------------------------------------------------------------------ feature frames
def feature_frames(
    tables: Tables, target: str = "auto", drop: str = "absolute"
) -> tuple[dict[str, pd.DataFrame], pd.Series, str, list[str]]:
    """The model's and the baselines' features per network (canonical names), and the target
    (``target``/``drop`` as in :func:`snntopo.analysis.features.target_frame`)."""
    y, target = target_frame(tables.networks, target, drop)
    cleaned, notes = mask_infinite(tables)
    sets, more = build_feature_sets(cleaned)
    if "mge" not in sets:
        raise TableError("the tables have no MGE feature table; a predictor needs one")
    mge = sets["mge"]
    if tables.source == "paper":
        mge = mge.rename(columns=PAPER_MGE_TO_CANONICAL)
    frames = {"mge": mge, "sparsity": sets["sparsity"].iloc[:, :0]}
    if "layer_density" in sets:
        frames["layer_density"] = sets["layer_density"].drop(columns="sparsity")
    return frames, y.loc[mge.index], target, [*notes, *more]


def _rank(value: float, others: np.ndarray, higher: bool) -> int:
    """1 + the number of ``others`` strictly better than ``value``."""
    better = others > value if higher else others < value
    return int(np.count_nonzero(better)) + 1


def _scope_frames(index: pd.MultiIndex) -> list[tuple[str, str, np.ndarray]]:
    frame = index.to_frame(index=False)
    out = []
    for (ds, arch), part in frame.groupby(["dataset", "arch"], sort=True):
        mask = np.zeros(len(frame), bool)
        mask[part.index.to_numpy()] = True
        out.append((str(ds), str(arch), mask))
    return out


def leave_one_method_out(
    frames: dict[str, pd.DataFrame], y: pd.Series, target: str, level: float = DEFAULT_LEVEL
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leave-one-method-out per (dataset, arch) for the model and both baselines.

    Returns ``(per_network, per_method, summary)``: held-out predictions; one row per (scope,
    predictor, held-out method) with MAE, interval coverage and rank error; one row per (scope,
    predictor) with the means.
    """
    higher = higher_is_better(target)
    index = frames["mge"].index
    keys = index.to_frame(index=False)
    rows, net_frames = [], []
    for ds, arch, mask in _scope_frames(index):
        k = keys.loc[mask].reset_index(drop=True)
        ys = y.to_numpy(float)[mask]
        s = k["sparsity"].to_numpy(float)
        methods = sorted(k["method"].unique())
        if len(methods) < 3:
            continue
        true_means = k.assign(y=ys).groupby(["method", "sparsity"])["y"].mean()
        for name in PREDICTORS:
            if name not in frames:
                continue
            F = frames[name].loc[index[mask]]
            F = F[[c for c in F.columns if F[c].nunique(dropna=True) > 1]]
            X = F.to_numpy(float)
            pred = np.full(len(ys), np.nan)
            for m in methods:
                te = (k["method"] == m).to_numpy()
                model = fit_model(s[~te], X[~te], ys[~te])
                pred[te] = apply_model(model, s[te], X[te])
            res = np.abs(pred - ys)
            net_frames.append(k.assign(predictor=name, y_true=ys, y_pred=pred))
            for m in methods:
                te = (k["method"] == m).to_numpy()
                q = conformal_q(res[~te], level)
                ranks = []
                pm = pd.Series(pred[te]).groupby(s[te]).mean()
                for sp, value in pm.items():
                    others = true_means.drop(m, level="method").xs(sp, level="sparsity")
                    ranks.append(
                        (
                            _rank(value, others.to_numpy(), higher),
                            _rank(true_means[(m, sp)], others.to_numpy(), higher),
                        )
                    )
                r = np.array(ranks)
                rows.append(
                    {
                        "dataset": ds,
                        "arch": arch,
                        "predictor": name,
                        "held_out": m,
                        "n_networks": int(te.sum()),
                        "mae": float(res[te].mean()),
                        "interval_halfwidth": q,
                        "coverage": float(np.mean(res[te] <= q)),
                        "rank_abs_error": float(np.abs(r[:, 0] - r[:, 1]).mean()),
                        "rank_exact": float(np.mean(r[:, 0] == r[:, 1])),
                        "predicted_ranks": " ".join(map(str, r[:, 0])),
                        "true_ranks": " ".join(map(str, r[:, 1])),
                    }
                )
    per_method = pd.DataFrame(rows)
    per_network = pd.concat(net_frames, ignore_index=True) if net_frames else pd.DataFrame()
    if per_method.empty:
        return per_network, per_method, pd.DataFrame()
    g = per_method.groupby(["dataset", "arch", "predictor"], sort=False)
    summary = g.apply(
        lambda d: pd.Series(
            {
                "n_methods": len(d),
                "n_networks": int(d["n_networks"].sum()),
                "mae": float(np.average(d["mae"], weights=d["n_networks"])),
                "coverage": float(np.average(d["coverage"], weights=d["n_networks"])),
                "rank_abs_error": float(d["rank_abs_error"].mean()),
                "rank_exact": float(d["rank_exact"].mean()),
            }
        ),
        include_groups=False,
    ).reset_index()
    return per_network, per_method, summary


MAE_MARGIN = 0.05  # "beats": MAE more than 5 % below the better baseline
RANK_MARGIN = 0.1  # "beats": mean rank error more than 0.1 places below the better baseline


def lomo_verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per scope: the model's MAE and rank error beside both baselines, and whether it beats both
    (by more than :data:`MAE_MARGIN` relative MAE / :data:`RANK_MARGIN` places)."""
    if summary.empty:
        return summary
    wide = summary.pivot_table(
        index=["dataset", "arch"], columns="predictor", values=["mae", "rank_abs_error", "coverage"]
    )
    out = pd.DataFrame(index=wide.index)
    for p in PREDICTORS:
        if ("mae", p) in wide:
            out[f"mae_{p}"] = wide[("mae", p)]
            out[f"rank_err_{p}"] = wide[("rank_abs_error", p)]
    out["coverage_mge"] = wide[("coverage", "mge")]
    base = [f"mae_{p}" for p in ("sparsity", "layer_density") if f"mae_{p}" in out]
    out["mge_beats_baselines_mae"] = out["mae_mge"] < (1 - MAE_MARGIN) * out[base].min(axis=1)
    rbase = [f"rank_err_{p}" for p in ("sparsity", "layer_density") if f"rank_err_{p}" in out]
    out["mge_beats_baselines_rank"] = out["rank_err_mge"] < out[rbase].min(axis=1) - RANK_MARGIN
    return out.reset_index()


# ----------------------------------------------------------------------------------------- fit
def _versions() -> dict[str, str]:
    import sklearn

    from .. import __version__

    return {
        "snntopo": __version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }


def fit_predictor(
    tables: str | os.PathLike[str] | Tables,
    out_dir: str | os.PathLike[str],
    mode: str | None = None,
    level: float = DEFAULT_LEVEL,
    progress=None,
) -> dict[str, Path]:
    """Fit one model per (dataset, arch), validate it leave-one-method-out, write the predictor.

    ``mode``: the encoding mode the tables' metrics were computed in. The paper's published tables
    are ``reference`` (the paper code's graph); canonical tables do not record it, so it must be
    given for them.
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
    frames, y, target, notes = feature_frames(tables)
    say(f"{len(y)} networks, target {target}, {frames['mge'].shape[1]} MGE features")
    per_net, per_method, summary = leave_one_method_out(frames, y, target, level)
    verdicts = lomo_verdicts(summary)
    index = frames["mge"].index
    keys = index.to_frame(index=False)
    scopes = []
    for ds, arch, mask in _scope_frames(index):
        k = keys.loc[mask].reset_index(drop=True)
        F = frames["mge"].loc[index[mask]]
        cols = [c for c in F.columns if F[c].nunique(dropna=True) > 1]
        ys = y.to_numpy(float)[mask]
        s = k["sparsity"].to_numpy(float)
        model = fit_model(s, F[cols].to_numpy(float), ys)
        val = {}
        if not summary.empty:
            sub = summary[(summary["dataset"] == ds) & (summary["arch"] == arch)]
            val = {r["predictor"]: {c: float(r[c]) for c in ("mae", "coverage", "rank_abs_error",
                                                             "rank_exact")}
                   for _, r in sub.iterrows()}  # fmt: skip
        sub_net = per_net[(per_net.get("predictor") == "mge")] if not per_net.empty else per_net
        if not sub_net.empty:
            sub_net = sub_net[(sub_net["dataset"] == ds) & (sub_net["arch"] == arch)]
        q = (
            conformal_q(np.abs(sub_net["y_pred"] - sub_net["y_true"]).to_numpy(), level)
            if not sub_net.empty
            else float("inf")
        )
        known = k.assign(y=ys).groupby(["method", "sparsity"])["y"].mean()
        scopes.append(
            {
                "dataset": ds,
                "arch": arch,
                "n_networks": int(mask.sum()),
                "methods": sorted(k["method"].unique()),
                "sparsities": sorted(float(v) for v in np.unique(s)),
                "features": cols,
                "model": model,
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
        "tables": source or tables.source,
        "tables_layout": tables.source,
        "versions": _versions(),
        "notes": [*tables.notes, *notes][:200],
        "scopes": scopes,
        "provenance": provenance(mode=mode, level=level, tables=source or tables.source),
    }
    out = Path(out_dir)
    paths = {"predictor": out / FILE}
    write_json(paths["predictor"], _finite(doc))
    paths["lomo"] = write_csv(per_method, out / "lomo_methods.csv")
    paths["lomo_summary"] = write_csv(summary, out / "lomo_summary.csv")
    paths["lomo_verdicts"] = write_csv(verdicts, out / "lomo_verdicts.csv")
    return paths


def _finite(obj: Any) -> Any:
    """JSON without NaN/inf tokens (not valid JSON): they are written as null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------------- load
def _num(v: Any, where: str, allow_null: bool = False) -> float:
    if v is None and allow_null:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PredictorError(f"{where}: expected a number, got {type(v).__name__}")
    return float(v)


def _nums(v: Any, where: str, n: int | None = None, allow_null: bool = False) -> list[float]:
    if not isinstance(v, list):
        raise PredictorError(f"{where}: expected a list of numbers")
    out = [_num(x, f"{where}[{i}]", allow_null) for i, x in enumerate(v)]
    if n is not None and len(out) != n:
        raise PredictorError(f"{where}: expected {n} values, got {len(out)}")
    return out


def _strs(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PredictorError(f"{where}: expected a list of strings")
    return list(v)


def _only(d: Any, where: str, allowed: Iterable[str], required: Iterable[str]) -> dict:
    if not isinstance(d, dict):
        raise PredictorError(f"{where}: expected an object")
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise PredictorError(f"{where}: unknown keys {extra}")
    missing = sorted(set(required) - set(d))
    if missing:
        raise PredictorError(f"{where}: missing keys {missing}")
    return d


TOP_KEYS = (
    "format", "format_version", "target", "higher_is_better", "encoding", "encoding_mode",
    "metric_definitions", "interval_level", "features", "tables", "tables_layout", "versions",
    "notes", "scopes", "provenance",
)  # fmt: skip
SCOPE_KEYS = (
    "dataset", "arch", "n_networks", "methods", "sparsities", "features", "model",
    "interval_halfwidth", "known_means", "validation",
)  # fmt: skip


def load_predictor(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``predictor.json`` (a directory holding it, or the file itself).

    Only JSON data is read (numbers, strings, lists, objects); every key is checked against the
    format, so a file from an untrusted source either loads as plain numbers or is refused.
    """
    p = Path(path)
    if p.is_dir():
        p = p / FILE
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PredictorError(f"{p}: cannot read predictor ({exc.strerror})") from None
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise PredictorError(f"{p}: not a JSON predictor file ({exc})") from None
    try:
        _validate(doc)
    except PredictorError as exc:
        raise PredictorError(f"{p}: {exc}") from None
    return doc


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _validate(doc: Any) -> None:
    _only(doc, "predictor", TOP_KEYS, TOP_KEYS)
    if doc["format"] != FORMAT or doc["format_version"] != FORMAT_VERSION:
        raise PredictorError(
            f"format {doc['format']!r} v{doc['format_version']!r}; expected {FORMAT!r} "
            f"v{FORMAT_VERSION}"
        )
    for key in ("target", "encoding", "encoding_mode", "metric_definitions", "tables",
                "tables_layout"):  # fmt: skip
        if not isinstance(doc[key], str):
            raise PredictorError(f"{key}: expected a string")
    if doc["encoding_mode"] not in METRIC_DEFINITIONS:
        raise PredictorError(f"encoding_mode: unknown mode {doc['encoding_mode']!r}")
    if not isinstance(doc["higher_is_better"], bool):
        raise PredictorError("higher_is_better: expected true or false")
    level = _num(doc["interval_level"], "interval_level")
    if not 0 < level < 1:
        raise PredictorError("interval_level: must be in (0, 1)")
    _strs(doc["features"], "features")
    _strs(doc["notes"], "notes")
    if not isinstance(doc["versions"], dict) or not all(
        isinstance(v, str) for v in doc["versions"].values()
    ):
        raise PredictorError("versions: expected an object of strings")
    if not isinstance(doc["provenance"], dict):
        raise PredictorError("provenance: expected an object")
    if not isinstance(doc["scopes"], list) or not doc["scopes"]:
        raise PredictorError("scopes: expected a non-empty list")
    for i, sc in enumerate(doc["scopes"]):
        w = f"scopes[{i}]"
        _only(sc, w, SCOPE_KEYS, SCOPE_KEYS)
        if not isinstance(sc["dataset"], str) or not isinstance(sc["arch"], str):
            raise PredictorError(f"{w}: dataset and arch must be strings")
        _strs(sc["methods"], f"{w}.methods")
        _nums(sc["sparsities"], f"{w}.sparsities")
        feats = _strs(sc["features"], f"{w}.features")
        _num(sc["n_networks"], f"{w}.n_networks")
        _num(sc["interval_halfwidth"], f"{w}.interval_halfwidth", allow_null=True)
        m = _only(sc["model"], f"{w}.model", ("curve", "linear"), ("curve", "linear"))
        c = _only(m["curve"], f"{w}.model.curve", ("levels", "values"), ("levels", "values"))
        lv = _nums(c["levels"], f"{w}.model.curve.levels")
        _nums(c["values"], f"{w}.model.curve.values", len(lv))
        if not lv:
            raise PredictorError(f"{w}.model.curve: no sparsity level")
        lin_keys = ("medians", "mean", "scale", "coef", "intercept", "alpha")
        lin = _only(m["linear"], f"{w}.model.linear", lin_keys, lin_keys)
        for key in ("medians", "mean", "scale", "coef"):
            _nums(lin[key], f"{w}.model.linear.{key}", len(feats))
        _num(lin["intercept"], f"{w}.model.linear.intercept")
        _num(lin["alpha"], f"{w}.model.linear.alpha", allow_null=True)
        if not isinstance(sc["known_means"], list):
            raise PredictorError(f"{w}.known_means: expected a list")
        for j, km in enumerate(sc["known_means"]):
            km_keys = ("method", "sparsity", "mean")
            _only(km, f"{w}.known_means[{j}]", km_keys, km_keys)
            if not isinstance(km["method"], str):
                raise PredictorError(f"{w}.known_means[{j}].method: expected a string")
            _num(km["sparsity"], f"{w}.known_means[{j}].sparsity")
            _num(km["mean"], f"{w}.known_means[{j}].mean")
        if not isinstance(sc["validation"], dict):
            raise PredictorError(f"{w}.validation: expected an object")
        for name, v in sc["validation"].items():
            for key, x in _only(v, f"{w}.validation.{name}", ("mae", "coverage",
                                "rank_abs_error", "rank_exact"), ()).items():  # fmt: skip
                _num(x, f"{w}.validation.{name}.{key}", allow_null=True)


# ------------------------------------------------------------------------------------- predict
def metric_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Metric artifacts named directly, or every ``metrics/*.json`` below a directory."""
    out: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("metrics/*.json"))
        elif p.is_file():
            out.append(str(p))
        else:
            raise ArtifactError(f"{p}: no such metric artifact or directory")
    if not out:
        raise ArtifactError("no metric artifacts (metrics/{family}.json) found")
    return out


def _check_modes(files: list[str], encoding: str, mode: str) -> None:
    for f in files:
        art = read_json(f, required=("family", "encodings", "network"))
        res = art["encodings"].get(encoding)
        if res is None:
            continue
        got = res.get("mode")
        if got is None:
            raise PredictorError(
                f"{f}: records no encoding mode (made before snntopo recorded it); recompute the "
                f"metrics, the predictor needs {encoding} metrics made in mode {mode!r}"
            )
        if got != mode:
            raise PredictorError(
                f"{f}: {encoding} metrics made in mode {got!r}, but the predictor was fit on "
                f"mode {mode!r} metrics ({METRIC_DEFINITIONS[mode]}); re-encode with "
                f"encode.mode: {mode}"
            )


def predict(
    predictor: str | os.PathLike[str] | Mapping[str, Any], metrics: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted target with its interval per network, and each method's rank per sparsity."""
    from ..tables import metric_tables

    doc = predictor if isinstance(predictor, Mapping) else load_predictor(predictor)
    files = metric_files(metrics)
    _check_modes(files, doc["encoding"], doc["encoding_mode"])
    tables, _ = metric_tables(files)
    if doc["encoding"] not in tables:
        raise PredictorError(f"the metric artifacts hold no {doc['encoding']} metrics")
    df = select_features(tables[doc["encoding"]], doc["encoding"])
    scopes = {(sc["dataset"], sc["arch"]): sc for sc in doc["scopes"]}
    rows = []
    for (ds, arch), part in df.groupby(["dataset", "arch"], sort=True):
        sc = scopes.get((str(ds), str(arch)))
        if sc is None:
            known = ", ".join(f"{d}/{a}" for d, a in scopes)
            raise PredictorError(f"no model for {ds}/{arch}; this predictor knows {known}")
        missing = [c for c in sc["features"] if c not in part.columns]
        if missing:
            raise PredictorError(
                f"{ds}/{arch}: the metrics lack features {missing[:5]}"
                + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
                + "; compute every metric family the predictor was fit on"
            )
        X = part[sc["features"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        s = part["sparsity"].to_numpy(float)
        y = apply_model(sc["model"], s, X)
        q = sc["interval_halfwidth"]
        q = float("inf") if q is None else float(q)
        out = part[list(KEYS)].reset_index(drop=True).copy()
        out["target"] = doc["target"]
        out["predicted"] = y
        out["lower"] = y - q
        out["upper"] = y + q
        out["interval_level"] = doc["interval_level"]
        cov = (sc["validation"].get("mge") or {}).get("coverage")
        out["measured_coverage"] = np.nan if cov is None else cov
        out["outside_fit_sparsities"] = ~np.isin(np.round(s, 6), np.round(sc["sparsities"], 6))
        rows.append(out)
    pred = pd.concat(rows, ignore_index=True)
    return pred, rank_against_known(pred, doc)


def rank_against_known(pred: pd.DataFrame, doc: Mapping[str, Any]) -> pd.DataFrame:
    """Where each predicted method would rank among the methods the predictor knows, per sparsity
    (mean over seeds; 1 = best; the known methods are ranked by their measured mean)."""
    higher = bool(doc["higher_is_better"])
    scopes = {(sc["dataset"], sc["arch"]): sc for sc in doc["scopes"]}
    rows = []
    g = pred.groupby(["dataset", "arch", "method", "sparsity"], sort=True)["predicted"].mean()
    for (ds, arch, method, sp), value in g.items():
        known = pd.DataFrame(scopes[(ds, arch)]["known_means"])
        at = known[np.isclose(known["sparsity"], sp) & (known["method"] != method)]
        if at.empty:
            rank, n, order = np.nan, 0, ""
        else:
            rank = _rank(float(value), at["mean"].to_numpy(float), higher)
            n = len(at)
            order = " > ".join(at.sort_values("mean", ascending=not higher)["method"])
        rows.append(
            {
                "dataset": ds,
                "arch": arch,
                "method": method,
                "sparsity": sp,
                "predicted": float(value),
                "rank": rank,
                "among": n + 1 if n else np.nan,
                "known_methods_best_first": order,
            }
        )
    return pd.DataFrame(rows)


def write_predictions(
    predictor: str | os.PathLike[str], metrics: Iterable[str], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """predictions.csv, ranks.csv and a report section (predictions.md / predictions.html)."""
    doc = load_predictor(predictor)
    pred, ranks = predict(doc, metrics)
    out = Path(out_dir)
    paths = {
        "predictions": write_csv(pred, out / "predictions.csv"),
        "ranks": write_csv(ranks, out / "ranks.csv"),
    }
    md = report_section(doc, pred, ranks)
    write_text(out / "predictions.md", md)
    write_text(out / "predictions.html", _md_to_html(md))
    paths["section"] = out / "predictions.html"
    write_json(out / "predictions.json", {"predictor": str(predictor), "n": len(pred),
                                          "provenance": provenance(predictor=str(predictor))})  # fmt: skip
    return paths


def report_section(doc: Mapping[str, Any], pred: pd.DataFrame, ranks: pd.DataFrame) -> str:
    from .summary import _md_table

    level = doc["interval_level"]
    lines = [
        "## Predicted accuracy of untrained masks",
        "",
        f"Predictor fit on {doc['tables']} ({doc['tables_layout']} layout, "
        f"{doc['encoding']} metrics in mode `{doc['encoding_mode']}`); target `{doc['target']}`; "
        f"intervals at nominal level {level:g} (measured leave-one-method-out coverage beside "
        "each prediction). No network below was trained.",
        "",
    ]
    val = []
    for sc in doc["scopes"]:
        v = sc["validation"]
        row = {"dataset": sc["dataset"], "arch": sc["arch"]}
        for p in PREDICTORS:
            row[f"mae_{p}"] = (v.get(p) or {}).get("mae")
        row["coverage"] = (v.get("mge") or {}).get("coverage")
        val.append(row)
    lines += [
        "Leave-one-method-out error of the predictor and of its baselines:",
        "",
        _md_table(pd.DataFrame(val)),
        "",
        _md_table(pred[[*KEYS, "predicted", "lower", "upper", "measured_coverage"]].round(4)),
        "",
        "Rank among the methods the predictor knows (1 = best), per sparsity:",
        "",
        _md_table(ranks),
        "",
    ]
    return "\n".join(lines)


def _md_to_html(md: str) -> str:
    import html

    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>snntopo predictions"
             "</title></head><body>"]  # fmt: skip
    rows: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if rows:
            parts.append("<table border='1'>" + "".join(rows) + "</table>")
            rows = []
        if line.startswith("## "):
            parts.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line:
            parts.append(f"<p>{html.escape(line)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
