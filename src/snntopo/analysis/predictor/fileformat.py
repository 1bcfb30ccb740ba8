"""The predictor file (``predictor.json``): its format, writing, and loading with validation.

One JSON object holding only numbers, strings, lists and objects; it is read with
:func:`json.loads` and validated key by key -- shape *and* meaning (finite numbers, positive
scales, sparsity levels in order, one scope per (dataset, arch), ranges with min <= max, ...) --
so a predictor from an untrusted source either loads as plain, usable numbers or is refused with
one line (no pickle, no object hooks: loading cannot execute code). The format is documented in
docs/architecture.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ArtifactError
from ...io import JSON_DIGEST_KEY, _unique_keys, json_digest, write_json
from ..models import CLIP
from .validation import MIN_METHODS, PREDICTORS

FORMAT = "snntopo-predictor"
FORMAT_VERSION = 2  # 2: feature_ranges per scope, excluded_features, meaning checks
FILE = "predictor.json"
TARGETS = {"accuracy": True, "absolute_drop": False, "relative_drop": False}  # higher is better?
# The metric definitions a predictor records: the local family depends on the encoding mode
# (snntopo.metrics.local); the other families are defined the same way in both modes.
METRIC_DEFINITIONS = {
    "reference": "local: paper code (sinks - n_out, sources - padded n_in, its r-in/r-out index "
    "bounds); other families: snntopo",
    "exact": "local: exact (input/output blocks excluded); other families: snntopo",
}
VALIDATION_KEYS = ("mae", "coverage", "rank_abs_error", "rank_exact")
RANGE_KEYS = ("min", "max", "mean", "std")
LINEAR_KEYS = ("medians", "mean", "scale", "coef", "intercept", "alpha")

TOP_KEYS = (
    "format", "format_version", "target", "higher_is_better", "encoding", "encoding_mode",
    "metric_definitions", "interval_level", "features", "excluded_features", "tables",
    "tables_layout", "versions", "notes", "scopes", "provenance", "content_sha256",
)  # fmt: skip
#: keys a predictor file may lack (files written before the digest was recorded)
OPTIONAL_TOP_KEYS = ("content_sha256",)
SCOPE_KEYS = (
    "dataset", "arch", "n_networks", "methods", "sparsities", "features", "feature_ranges",
    "model", "interval_halfwidth", "known_means", "validation",
)  # fmt: skip


class PredictorError(ArtifactError):
    """A predictor file is malformed, or metrics do not fit the predictor."""


# --------------------------------------------------------------------------------------- write
def finite_json(obj: Any) -> Any:
    """JSON without NaN/inf tokens (not valid JSON): they are written as null."""
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_predictor(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate ``doc`` as :func:`load_predictor` would, then write it atomically: ``fit`` never
    writes a file ``predict`` would refuse."""
    doc = finite_json(doc)
    validate(doc)
    write_json(path, doc, digest=True)  # a flipped digit in a coefficient is an error when read
    return Path(path)


# ---------------------------------------------------------------------------------------- load
def load_predictor(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``predictor.json`` (a directory holding it, or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / FILE
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PredictorError(f"{p}: cannot read predictor ({exc.strerror})") from None
    try:
        # a key twice in one object is refused (json.loads keeps the last silently)
        doc = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys
        )
    except RecursionError:
        raise PredictorError(f"{p}: not a JSON predictor file (nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise PredictorError(f"{p}: not a JSON predictor file ({exc})") from None
    try:
        validate(doc)
    except PredictorError as exc:
        raise PredictorError(f"{p}: {exc}") from None
    except RecursionError:  # pragma: no cover - json.loads hits the limit first
        raise PredictorError(f"{p}: nested too deeply") from None
    recorded = doc.pop(JSON_DIGEST_KEY, None)
    if recorded is not None and recorded != json_digest(doc):
        raise PredictorError(
            f"{p}: content_sha256 is {recorded!r:.40} but the content gives {json_digest(doc)} "
            "(the file was damaged or edited after fit wrote it)"
        )
    return doc


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _num(v: Any, where: str, allow_null: bool = False) -> float:
    """A finite number (``1e400`` parses as inf and is refused), or NaN for an allowed null."""
    if v is None and allow_null:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PredictorError(f"{where}: expected a number, got {type(v).__name__}")
    try:
        x = float(v)  # an integer beyond float range overflows here
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise PredictorError(f"{where}: {str(v)[:20]} is not a finite number")
    return x


def _nums(v: Any, where: str, n: int | None = None, allow_null: bool = False) -> list[float]:
    if not isinstance(v, list):
        raise PredictorError(f"{where}: expected a list of numbers")
    out = [_num(x, f"{where}[{i}]", allow_null) for i, x in enumerate(v)]
    if n is not None and len(out) != n:
        raise PredictorError(f"{where}: expected {n} values, got {len(out)}")
    return out


def _strs(v: Any, where: str, unique: bool = True) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise PredictorError(f"{where}: expected a list of non-empty strings")
    if unique and len(set(v)) != len(v):
        dup = sorted({x for x in v if v.count(x) > 1})
        raise PredictorError(f"{where}: repeated {dup}")
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


def _increasing(v: list[float], where: str) -> None:
    if not v:
        raise PredictorError(f"{where}: empty")
    if any(b <= a for a, b in zip(v, v[1:], strict=False)):
        raise PredictorError(f"{where}: sparsity levels must be strictly increasing, got {v}")
    if v[0] < 0 or v[-1] >= 1:
        raise PredictorError(f"{where}: sparsity levels must lie in [0, 1), got {v}")


def validate(doc: Any) -> None:
    """Check a parsed predictor, shape and meaning; raises :class:`PredictorError` (one line)."""
    _only(doc, "predictor", TOP_KEYS, ("format", "format_version"))
    if doc["format"] != FORMAT or doc["format_version"] != FORMAT_VERSION:
        raise PredictorError(
            f"format {doc['format']!r} v{doc['format_version']!r}; expected {FORMAT!r} "
            f"v{FORMAT_VERSION} (re-fit the predictor with this snntopo's `snntopo fit`)"
        )
    _only(doc, "predictor", TOP_KEYS, [k for k in TOP_KEYS if k not in OPTIONAL_TOP_KEYS])
    if not isinstance(doc.get(JSON_DIGEST_KEY, ""), str):
        raise PredictorError(f"{JSON_DIGEST_KEY}: expected a string")
    for key in ("target", "encoding", "encoding_mode", "metric_definitions", "tables",
                "tables_layout"):  # fmt: skip
        if not isinstance(doc[key], str):
            raise PredictorError(f"{key}: expected a string")
    if doc["target"] not in TARGETS:
        raise PredictorError(f"target: unknown target {doc['target']!r}; one of {list(TARGETS)}")
    if doc["higher_is_better"] is not TARGETS[doc["target"]]:
        raise PredictorError(
            f"higher_is_better: must be {str(TARGETS[doc['target']]).lower()} for target "
            f"{doc['target']!r}"
        )
    if doc["encoding"] != "mge":
        raise PredictorError(
            f"encoding: predictors are fit on MGE metrics, not {doc['encoding']!r}"
        )
    if doc["encoding_mode"] not in METRIC_DEFINITIONS:
        raise PredictorError(f"encoding_mode: unknown mode {doc['encoding_mode']!r}")
    level = _num(doc["interval_level"], "interval_level")
    if not 0 < level < 1:
        raise PredictorError("interval_level: must be in (0, 1)")
    features = set(_strs(doc["features"], "features"))
    excluded = set(_strs(doc["excluded_features"], "excluded_features"))
    if features & excluded:
        raise PredictorError(f"features: {sorted(features & excluded)} are also excluded")
    _strs(doc["notes"], "notes", unique=False)
    if not isinstance(doc["versions"], dict) or not all(
        isinstance(v, str) for v in doc["versions"].values()
    ):
        raise PredictorError("versions: expected an object of strings")
    if not isinstance(doc["provenance"], dict):
        raise PredictorError("provenance: expected an object")
    if not isinstance(doc["scopes"], list) or not doc["scopes"]:
        raise PredictorError("scopes: expected a non-empty list")
    seen: dict[tuple[str, str], int] = {}
    used: set[str] = set()
    for i, sc in enumerate(doc["scopes"]):
        w = f"scopes[{i}]"
        _only(sc, w, SCOPE_KEYS, SCOPE_KEYS)
        if not isinstance(sc["dataset"], str) or not isinstance(sc["arch"], str):
            raise PredictorError(f"{w}: dataset and arch must be strings")
        key = (sc["dataset"], sc["arch"])
        if key in seen:
            raise PredictorError(
                f"{w}: a second scope for {key[0]}/{key[1]} (scopes[{seen[key]}] is the first)"
            )
        seen[key] = i
        used |= set(_validate_scope(sc, w, features))
    if used != features:
        raise PredictorError(f"features: must list the scopes' features, differs by "
                             f"{sorted(used ^ features)}")  # fmt: skip


def _validate_scope(sc: dict, w: str, features: set[str]) -> list[str]:
    methods = _strs(sc["methods"], f"{w}.methods")
    if len(methods) < MIN_METHODS:
        raise PredictorError(f"{w}.methods: at least {MIN_METHODS} needed, got {len(methods)}")
    sparsities = _nums(sc["sparsities"], f"{w}.sparsities")
    _increasing(sparsities, f"{w}.sparsities")
    n = _num(sc["n_networks"], f"{w}.n_networks")
    if n < 1 or n != int(n):
        raise PredictorError(f"{w}.n_networks: expected a positive integer, got {n}")
    feats = _strs(sc["features"], f"{w}.features")
    if set(feats) - features:
        raise PredictorError(f"{w}.features: {sorted(set(feats) - features)} not in features")
    nf = len(feats)
    # the training range of each feature
    r = _only(sc["feature_ranges"], f"{w}.feature_ranges", RANGE_KEYS, RANGE_KEYS)
    lo, hi, mu, sd = (_nums(r[k], f"{w}.feature_ranges.{k}", nf) for k in RANGE_KEYS)
    for j, name in enumerate(feats):
        slack = 1e-9 * max(abs(lo[j]), abs(hi[j]), 1.0)
        if not lo[j] <= hi[j] or not lo[j] - slack <= mu[j] <= hi[j] + slack or sd[j] < 0:
            raise PredictorError(
                f"{w}.feature_ranges: {name}: needs min <= mean <= max and std >= 0, got "
                f"min {lo[j]}, mean {mu[j]}, max {hi[j]}, std {sd[j]}"
            )
    # the model
    m = _only(sc["model"], f"{w}.model", ("curve", "linear"), ("curve", "linear"))
    c = _only(m["curve"], f"{w}.model.curve", ("levels", "values"), ("levels", "values"))
    lv = _nums(c["levels"], f"{w}.model.curve.levels")
    _increasing(lv, f"{w}.model.curve.levels")
    if lv != sparsities:
        raise PredictorError(f"{w}.model.curve.levels: must be the scope's sparsities {sparsities}")
    values = _nums(c["values"], f"{w}.model.curve.values", len(lv))
    lin = _only(m["linear"], f"{w}.model.linear", LINEAR_KEYS, LINEAR_KEYS)
    for key in ("medians", "mean", "coef"):
        _nums(lin[key], f"{w}.model.linear.{key}", nf)
    scale = _nums(lin["scale"], f"{w}.model.linear.scale", nf)
    if any(x <= 0 for x in scale):
        raise PredictorError(f"{w}.model.linear.scale: every scale must be > 0, got {scale}")
    intercept = _num(lin["intercept"], f"{w}.model.linear.intercept")
    alpha = _num(lin["alpha"], f"{w}.model.linear.alpha", allow_null=True)
    if alpha <= 0:
        raise PredictorError(f"{w}.model.linear.alpha: must be > 0, got {alpha}")
    # the largest value the model can produce (features are clipped at +-CLIP): must be finite
    with np.errstate(over="ignore", invalid="ignore"):
        bound = (
            abs(intercept)
            + CLIP * float(np.sum(np.abs(np.asarray(lin["coef"], float))))
            + float(np.max(np.abs(values)))
        )
    if not math.isfinite(bound):
        raise PredictorError(f"{w}.model: coefficients overflow (predictions would be inf)")
    q = _num(sc["interval_halfwidth"], f"{w}.interval_halfwidth", allow_null=True)
    if q < 0:
        raise PredictorError(f"{w}.interval_halfwidth: {q} < 0 (an interval with lower > upper)")
    # the known methods' measured means, which ranks.csv ranks against
    if not isinstance(sc["known_means"], list) or not sc["known_means"]:
        raise PredictorError(f"{w}.known_means: expected a non-empty list")
    pairs: set[tuple[str, float]] = set()
    for j, km in enumerate(sc["known_means"]):
        wk = f"{w}.known_means[{j}]"
        _only(km, wk, ("method", "sparsity", "mean"), ("method", "sparsity", "mean"))
        if km["method"] not in methods:
            raise PredictorError(f"{wk}.method: {km['method']!r} is not one of {w}.methods")
        sp = _num(km["sparsity"], f"{wk}.sparsity")
        if sp not in sparsities:
            raise PredictorError(f"{wk}.sparsity: {sp} is not one of {w}.sparsities")
        _num(km["mean"], f"{wk}.mean")
        if (km["method"], sp) in pairs:
            raise PredictorError(f"{wk}: a second mean for {km['method']} at sparsity {sp}")
        pairs.add((km["method"], sp))
    # the leave-one-method-out validation
    val = _only(sc["validation"], f"{w}.validation", PREDICTORS, ("mge",))
    for name, v in val.items():
        v = _only(v, f"{w}.validation.{name}", VALIDATION_KEYS, ())
        for key, x in v.items():
            x = _num(x, f"{w}.validation.{name}.{key}", allow_null=True)
            bad = x < 0 or (key in ("coverage", "rank_exact") and x > 1)
            if bad:
                raise PredictorError(f"{w}.validation.{name}.{key}: {x} out of range")
    return feats
