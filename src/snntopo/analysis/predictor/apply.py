"""``predict``: apply a predictor to the metrics of masks that were never trained.

Reads both kinds of metric files: the workflow's per-network artifacts (``metrics/{family}.json``:
``family``, ``encodings``, ``network`` keys) and what ``snntopo metrics`` writes (one family's
result, or ``{family: result}``; the network keys come from the graph's recorded provenance). Both
are checked for meaning: a registered family, one encoding mode, network keys of the right types,
numbers where metrics belong, no network measured twice.

Every prediction is checked against the training range of each feature it uses (and the sparsity
against the fitted levels): a network outside it is marked as an *extrapolation* -- which
feature, its value, the training range and how many training standard deviations outside -- and
gets no interval and no measured coverage, since leave-one-method-out coverage was measured on
networks inside the range.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import ArtifactError
from ...io import read_json
from ...names import KEYS
from ..models import signed_log1p
from ..tables import select_features
from .fileformat import METRIC_DEFINITIONS, PredictorError, load_predictor
from .model import apply_model
from .validation import _rank

RANGE_SLACK = 1e-9  # relative: a value this close to a training bound is inside the range


# ------------------------------------------------------------------------------- metric files
def metric_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Metric files named directly (either kind), or every ``metrics/*.json`` below a directory."""
    out: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("metrics/*.json"))
        elif p.is_file():
            out.append(str(p))
        else:
            raise ArtifactError(f"{p}: no such metric file or directory")
    if not out:
        raise ArtifactError(
            "no metric files found (the workflow's metrics/{family}.json, or `snntopo metrics` "
            "output named directly)"
        )
    return out


@dataclass(frozen=True)
class MetricRecord:
    """One family's network-level values on one encoding of one network."""

    path: str
    keys: dict[str, Any]
    family: str
    encoding: str
    mode: str | None
    values: dict[str, float]


def _network_keys(d: Any, where: str) -> dict[str, Any]:
    from ...models.external import unslug

    if not isinstance(d, dict):
        raise PredictorError(f"{where}: network keys must be an object")
    missing = [k for k in KEYS if k not in d]
    if missing:
        raise PredictorError(f"{where}: network keys lack {missing}")
    for k in ("dataset", "arch", "method"):
        if not isinstance(d[k], str) or not d[k]:
            raise PredictorError(f"{where}: network key {k} must be a non-empty string")
    sp, seed = d["sparsity"], d["seed"]
    if isinstance(sp, bool) or not isinstance(sp, int | float) or not 0 <= sp < 1:
        raise PredictorError(
            f"{where}: network key sparsity must be a number in [0, 1), got {sp!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PredictorError(f"{where}: network key seed must be an integer, got {seed!r}")
    return {"dataset": d["dataset"], "arch": unslug(d["arch"]), "method": d["method"],
            "sparsity": float(sp), "seed": int(seed)}  # fmt: skip


def _values(d: Any, where: str) -> dict[str, float]:
    if not isinstance(d, dict):
        raise PredictorError(f"{where}: network-level values must be an object")
    out = {}
    for k, v in d.items():
        if v is None:
            out[k] = float("nan")
            continue
        x = math.inf
        if not isinstance(v, bool) and isinstance(v, int | float):
            with contextlib.suppress(OverflowError):  # an integer beyond float range
                x = float(v)
        if not math.isfinite(x):
            raise PredictorError(
                f"{where}: metric {k!r} is {str(v)[:20]!r}, not a finite number or null"
            )
        out[k] = x
    return out


def _family(name: Any, where: str) -> str:
    from ...metrics import FAMILIES

    if name not in FAMILIES.names():
        raise PredictorError(f"{where}: unknown metric family {name!r}")
    return str(name)


def _cli_result(res: Any, path: str, where: str) -> MetricRecord:
    """One family's result as ``snntopo metrics`` writes it."""
    if not isinstance(res, dict) or not {"family", "encoding", "network"} <= set(res):
        raise PredictorError(f"{where}: not a metric family result (family, encoding, network)")
    family = _family(res["family"], where)
    if not isinstance(res["encoding"], str):
        raise PredictorError(f"{where}: records no encoding (a graph not made by snntopo encode)")
    graph = ((res.get("provenance") or {}).get("graph") or {}).get("provenance") or {}
    keys = (graph.get("params") or {}).get("network") if isinstance(graph, dict) else None
    if keys is None:
        raise PredictorError(
            f"{where}: its graph records no network (dataset, arch, method, sparsity, seed); "
            "encode it with `snntopo encode`, which records them"
        )
    mode = res.get("mode")
    return MetricRecord(path, _network_keys(keys, where), family, res["encoding"],
                        mode if isinstance(mode, str) else None, _values(res["network"], where))  # fmt: skip


def read_metric_file(path: str, seen: dict[tuple, str]) -> list[MetricRecord]:
    """The records of one metric file of either kind (``seen`` catches a network measured twice)."""
    try:
        doc = read_json(path)
    except RecursionError:
        raise PredictorError(f"{path}: not a metric file (nested too deeply)") from None
    records: list[MetricRecord] = []
    if "encodings" in doc:  # the workflow's metrics/{family}.json
        from ...tables import _check_belongs

        missing = [k for k in ("family", "encodings", "network") if k not in doc]
        if missing:
            raise PredictorError(f"{path}: missing required keys {missing}")
        family = _family(doc["family"], path)
        keys = _network_keys(doc["network"], path)
        if Path(path).parent.name == "metrics" and Path(path).stem != family:
            raise PredictorError(f"{path}: family is {family!r} but the file is named for "
                                 f"{Path(path).stem!r}")  # fmt: skip
        _check_belongs(keys, path, {}, f"family {family}")
        if not isinstance(doc["encodings"], dict):
            raise PredictorError(f"{path}: 'encodings' is not a mapping")
        for enc, res in doc["encodings"].items():
            if not isinstance(res, dict):
                raise PredictorError(f"{path}: encodings.{enc} is not an object")
            mode = res.get("mode")
            records.append(MetricRecord(path, keys, family, enc,
                                        mode if isinstance(mode, str) else None,
                                        _values(res.get("network") or {}, f"{path}: {enc}")))  # fmt: skip
    elif "family" in doc:  # `snntopo metrics --families F`: one family's result
        records.append(_cli_result(doc, path, path))
    elif doc and all(isinstance(v, dict) and "family" in v for v in doc.values()):
        for name, res in doc.items():  # `snntopo metrics`: {family: result}
            rec = _cli_result(res, path, f"{path}: {name}")
            if rec.family != name:
                raise PredictorError(f"{path}: entry {name!r} holds family {rec.family!r}")
            records.append(rec)
    else:
        raise PredictorError(
            f"{path}: not a metric file: expected the workflow's metrics/{{family}}.json "
            "(family, encodings, network) or the output of `snntopo metrics`"
        )
    for rec in records:
        key = (rec.family, rec.encoding, *(rec.keys[k] for k in KEYS))
        if key in seen:
            raise PredictorError(
                f"{path}: {rec.family} metrics of {rec.encoding} network "
                f"{'/'.join(str(rec.keys[k]) for k in KEYS)} also come from {seen[key]}"
            )
        seen[key] = path
    return records


def metric_table(files: list[str], encoding: str, mode: str) -> pd.DataFrame:
    """One row per network: its keys and every network-level value of ``encoding``; refuses
    metrics made in another encoding mode than ``mode``."""
    seen: dict[tuple, str] = {}
    rows: dict[tuple, dict[str, Any]] = {}
    for f in files:
        for rec in read_metric_file(f, seen):
            if rec.encoding != encoding:
                continue
            if rec.mode is None:
                raise PredictorError(
                    f"{f}: records no encoding mode (made before snntopo recorded it); recompute "
                    f"the metrics, the predictor needs {encoding} metrics made in mode {mode!r}"
                )
            if rec.mode != mode:
                raise PredictorError(
                    f"{f}: {encoding} metrics made in mode {rec.mode!r}, but the predictor was "
                    f"fit on mode {mode!r} metrics ({METRIC_DEFINITIONS[mode]}); re-encode with "
                    f"encode.mode: {mode}"
                )
            row = rows.setdefault(tuple(rec.keys[k] for k in KEYS), dict(rec.keys))
            row.update(rec.values)
    if not rows:
        raise PredictorError(f"the metric files hold no {encoding} metrics")
    df = pd.DataFrame(list(rows.values())).sort_values(list(KEYS)).reset_index(drop=True)
    # which values each network's files hold (null included): a value absent for one network but
    # present for another means a family was not computed there, not a NaN metric
    df.attrs["present"] = {k: frozenset(r) for k, r in rows.items()}
    out = select_features(df, encoding)
    out.attrs["present"] = df.attrs["present"]
    return out


# ------------------------------------------------------------------------------ extrapolation
def extrapolation(
    sc: Mapping[str, Any], X: np.ndarray, s: np.ndarray
) -> list[list[dict[str, Any]]]:
    """Per network (row of ``X``), the features outside the scope's training range: name, value,
    range, the distance beyond the range in training standard deviations of the raw values
    (``sd_outside``), and the value's position on the model's own scale (``model_z``: signed log,
    standardised by the training mean and sd; the ridge clips it at +-CLIP). The sparsity's SD
    columns are left empty. A NaN feature (imputed by the training median) is not an
    extrapolation."""
    r = sc["feature_ranges"]
    lo, hi, sd = (np.asarray(r[k], float) for k in ("min", "max", "std"))
    lin = sc["model"]["linear"]
    z_mean, z_scale = np.asarray(lin["mean"], float), np.asarray(lin["scale"], float)
    slack = RANGE_SLACK * np.maximum(np.abs(lo), np.abs(hi))
    levels = sc["sparsities"]
    out: list[list[dict[str, Any]]] = []
    for i in range(len(X)):
        row = []
        if not levels[0] - 1e-9 <= s[i] <= levels[-1] + 1e-9:
            row.append({"feature": "sparsity", "value": float(s[i]), "min": levels[0],
                        "max": levels[-1], "sd_outside": float("nan"),
                        "model_z": float("nan")})  # fmt: skip
        for j, name in enumerate(sc["features"]):
            v = X[i, j]
            if not np.isfinite(v) or lo[j] - slack[j] <= v <= hi[j] + slack[j]:
                continue
            gap = v - hi[j] if v > hi[j] else lo[j] - v
            sds = gap / sd[j] if sd[j] > 0 else float("inf")
            z = (signed_log1p(v) - z_mean[j]) / z_scale[j]
            row.append({"feature": name, "value": float(v), "min": float(lo[j]),
                        "max": float(hi[j]), "sd_outside": float(sds),
                        "model_z": float(z)})  # fmt: skip
        out.append(row)
    return out


def _describe(e: Mapping[str, Any]) -> str:
    side = "above" if e["value"] > e["max"] else "below"
    far = "" if not math.isfinite(e["sd_outside"]) else f", {e['sd_outside']:.3g} SD {side}"
    if math.isfinite(e["model_z"]):
        far += f" (model scale z {e['model_z']:+.1f})"
    return f"{e['feature']} {e['value']:.4g} not in [{e['min']:.4g}, {e['max']:.4g}]{far}"


# ------------------------------------------------------------------------------------ predict
def predict(
    predictor: str | os.PathLike[str] | Mapping[str, Any], metrics: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted target per network, with an interval where the network lies inside the training
    range (else an extrapolation note and no interval), and each method's rank per sparsity."""
    pred, ranks, _ = predict_details(predictor, metrics)
    return pred, ranks


def predict_details(
    predictor: str | os.PathLike[str] | Mapping[str, Any], metrics: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """:func:`predict`, plus one record per (network, feature outside the training range)."""
    doc = predictor if isinstance(predictor, Mapping) else load_predictor(predictor)
    df = metric_table(metric_files(metrics), doc["encoding"], doc["encoding_mode"])
    scopes = {(sc["dataset"], sc["arch"]): sc for sc in doc["scopes"]}
    rows, details = [], []
    level = float(doc["interval_level"])
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
        present = df.attrs.get("present", {})
        for _, r in part.iterrows():
            have = present.get(tuple(r[k] for k in KEYS))
            lack = [c for c in sc["features"] if have is not None and c not in have]
            if lack:
                raise PredictorError(
                    f"{'/'.join(str(r[k]) for k in KEYS)}: its metric files lack {lack[:5]}"
                    + (f" (+{len(lack) - 5} more)" if len(lack) > 5 else "")
                    + "; compute every metric family the predictor was fit on for every network"
                )
        X = part[sc["features"]].to_numpy(float)
        s = part["sparsity"].to_numpy(float)
        with np.errstate(all="ignore"):
            y = apply_model(sc["model"], s, X)
        if not np.isfinite(y).all():
            raise PredictorError(f"{ds}/{arch}: the predictor's model gives non-finite values")
        ext = extrapolation(sc, X, s)
        q = sc["interval_halfwidth"]
        cov = (sc["validation"].get("mge") or {}).get("coverage")
        out = part[list(KEYS)].reset_index(drop=True).copy()
        out["target"] = doc["target"]
        out["predicted"] = y
        inside = np.array([not e for e in ext])
        has_q = q is not None
        out["lower"] = np.where(inside & has_q, y - (q or 0.0), np.nan)
        out["upper"] = np.where(inside & has_q, y + (q or 0.0), np.nan)
        out["interval_level"] = level
        cov_value = np.nan if cov is None else float(cov)
        out["measured_coverage"] = np.where(inside & has_q, cov_value, np.nan)
        out["extrapolation"] = [";".join(e["feature"] for e in row) for row in ext]
        out["extrapolation_detail"] = ["; ".join(map(_describe, row)) for row in ext]
        out["max_sd_outside"] = [max((e["sd_outside"] for e in row if math.isfinite(e["sd_outside"])),
                                     default=np.nan) for row in ext]  # fmt: skip
        out["imputed"] = [
            ";".join(c for j, c in enumerate(sc["features"]) if np.isnan(X[i, j]))
            for i in range(len(X))
        ]
        out["interval_note"] = [
            "extrapolation: features outside the training range, no interval"
            if row
            else ("" if has_q else f"too few held-out residuals for a {level:g} interval")
            for row in ext
        ]
        out["outside_fit_sparsities"] = ~np.isin(np.round(s, 6), np.round(sc["sparsities"], 6))
        for i, row in enumerate(ext):
            details += [{**{k: out.loc[i, k] for k in KEYS}, **e} for e in row]
        rows.append(out)
    pred = pd.concat(rows, ignore_index=True)
    return pred, rank_against_known(pred, doc), details


def rank_against_known(pred: pd.DataFrame, doc: Mapping[str, Any]) -> pd.DataFrame:
    """Where each predicted method would rank among ALL the methods the predictor knows (its
    namesake included: a new ``erk`` mask is ranked among the 7 known methods, the known ``erk``
    one of them), per sparsity (mean over seeds; 1 = best; the known methods by their measured
    mean). The new row is labelled ``<method> (new)``."""
    higher = bool(doc["higher_is_better"])
    scopes = {(sc["dataset"], sc["arch"]): sc for sc in doc["scopes"]}
    rows = []
    g = pred.groupby(["dataset", "arch", "method", "sparsity"], sort=True)
    for (ds, arch, method, sp), part in g:
        value = float(part["predicted"].mean())
        label = f"{method} (new)"
        known = pd.DataFrame(scopes[(ds, arch)]["known_means"])
        at = known[np.isclose(known["sparsity"], sp)]
        feats = sorted({f for e in part["extrapolation"] for f in e.split(";") if f})
        if at.empty:
            rank, n, order = np.nan, 0, ""
        else:
            rank = _rank(value, at["mean"].to_numpy(float), higher)
            n = len(at)
            names = list(at.sort_values("mean", ascending=not higher, kind="stable")["method"])
            order = " > ".join([*names[: rank - 1], label, *names[rank - 1 :]])
        rows.append(
            {
                "dataset": ds,
                "arch": arch,
                "method": method,
                "label": label,
                "sparsity": sp,
                "predicted": value,
                "rank": rank,
                "among": n + 1 if n else np.nan,
                "order_best_first": order,
                "extrapolation": ";".join(feats),
            }
        )
    return pd.DataFrame(rows)


def details_json(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The extrapolation records as plain JSON values."""
    return json.loads(pd.DataFrame(details).to_json(orient="records")) if details else []
