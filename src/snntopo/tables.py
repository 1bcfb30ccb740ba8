"""Join the per-network artifacts (``train.json``, ``metrics/{family}.json``) into the canonical
tables the analysis reads (format in docs/architecture.md).

Why a separate join step: each metric family writes its own small artifact, so adding a family
reruns only its jobs plus this join; the join itself is cheap.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import TableError
from .gridpoint import DENSE, KEYS, network_keys, parse_path
from .io import read_json, write_csv
from .names import RAMANUJAN_LAYER_COLUMNS, RAMANUJAN_METRICS, encoding_names


def _keys(d: dict[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise TableError(f"{source}: network is {d!r:.60}, not an object")
    missing = [k for k in KEYS if k not in d]
    if missing:
        raise TableError(f"{source}: missing network keys {missing}")
    for k in KEYS:
        v = d[k]
        number = k in ("sparsity", "seed")
        if (
            isinstance(v, bool)
            or (number and not isinstance(v, int | float))
            or (not number and not isinstance(v, str))
            or (k == "seed" and float(v) != int(v))
        ):
            raise TableError(
                f"{source}: network.{k} is {v!r:.60}, not a {'number' if number else 'string'}"
            )
    # the full architecture name (artifacts written from a path carry its slug)
    return dict(network_keys(*(d[k] for k in KEYS)))


def _check_belongs(keys: dict[str, Any], path: str, seen: dict[tuple, str], what: str) -> None:
    """An artifact must describe the network of the directory it sits in, and no network may be
    joined twice (a copied file would otherwise replace another network's row)."""
    from .artifacts import check_recorded
    from .errors import ArtifactError

    where = parse_path(path)
    if where is not None:
        try:
            check_recorded(keys, where, path, keys=KEYS, against="its directory")
        except ArtifactError as exc:
            raise TableError(str(exc)) from None
    key = (what, *(keys[k] for k in KEYS))
    if key in seen:
        raise TableError(
            f"{path}: describes the same network {dict(zip(KEYS, key[1:], strict=True))} as "
            f"{seen[key]} ({what})"
        )
    seen[key] = path


def _number(value: Any, path: str, where: str) -> float | None:
    """A metric value: a number or null; anything else is a ``TableError`` naming the file."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TableError(f"{path}: {where} is {value!r}, not a number")
    return float(value)


def networks_table(train_summaries: list[str]) -> pd.DataFrame:
    """One row per trained network with its accuracy and its dense baseline's accuracy."""
    rows = []
    seen: dict[tuple, str] = {}
    for path in train_summaries:
        s = read_json(path, required=("accuracy",))
        keys = _keys(s, path)
        _check_belongs(keys, path, seen, "train summary")
        acc = _number(s["accuracy"], path, "accuracy")
        rows.append({**keys, "accuracy": float("nan") if acc is None else acc})
    df = pd.DataFrame(rows, columns=[*KEYS, "accuracy"])
    dense = df[df.method == DENSE]
    sparse = df[df.method != DENSE].copy()
    if dense.empty:
        sparse["dense_accuracy"] = float("nan")
        return sparse.reset_index(drop=True)
    per_seed = dense.set_index(["dataset", "arch", "seed"])["accuracy"]
    per_cfg = dense.groupby(["dataset", "arch"])["accuracy"].mean()
    idx = pd.MultiIndex.from_frame(sparse[["dataset", "arch", "seed"]])
    by_seed = per_seed.reindex(idx).to_numpy()
    by_cfg = per_cfg.reindex(pd.MultiIndex.from_frame(sparse[["dataset", "arch"]])).to_numpy()
    # the dense network of the same seed; the mean over seeds when that seed has none
    sparse["dense_accuracy"] = pd.Series(by_seed).fillna(pd.Series(by_cfg)).to_numpy()
    return sparse.reset_index(drop=True)


def metric_tables(metric_files: list[str]) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Per-encoding network-level feature tables and the per-layer Ramanujan table."""
    per_encoding: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)
    layer_rows: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    for path in metric_files:
        art = read_json(path, required=("family", "encodings", "network"))
        keys = _keys(art["network"], path)
        if not isinstance(art["family"], str):
            raise TableError(f"{path}: family is {art['family']!r:.60}, not a string")
        if Path(path).parent.name == "metrics" and Path(path).stem != art["family"]:
            raise TableError(
                f"{path}: family is {art['family']!r} but the file is named for {Path(path).stem!r}"
            )
        _check_belongs(keys, path, seen, f"family {art['family']}")
        key = tuple(keys[k] for k in KEYS)
        if not isinstance(art["encodings"], dict) or not art["encodings"]:
            raise TableError(f"{path}: 'encodings' is not a non-empty mapping")
        for encoding, res in art["encodings"].items():
            if not isinstance(res, dict) or not isinstance(res.get("network"), dict):
                raise TableError(f"{path}: encodings.{encoding} has no 'network' object of metrics")
            layer_list = res.get("layers") or []
            if not isinstance(layer_list, list) or not all(isinstance(x, dict) for x in layer_list):
                raise TableError(f"{path}: encodings.{encoding}.layers is not a list of objects")
            row = per_encoding[encoding].setdefault(key, dict(keys))
            for metric, value in (res.get("network") or {}).items():
                row[metric] = _number(value, path, f"{encoding} metric {metric!r}")
            if art["family"] == "ramanujan":
                for layer in res.get("layers") or []:
                    out = {**keys, "encoding": encoding}
                    out["layer_id"] = layer.get("layer_id")
                    out["layer_name"] = layer.get("layer_name")
                    out["layer_density"] = layer.get("density", layer.get("layer_density"))
                    for c in RAMANUJAN_METRICS:
                        out[c] = _number(layer.get(c), path, f"{encoding} layer metric {c!r}")
                    layer_rows.append(out)
    tables = {
        enc: pd.DataFrame(list(rows.values())).sort_values(list(KEYS)).reset_index(drop=True)
        for enc, rows in per_encoding.items()
    }
    layers = pd.DataFrame(
        layer_rows,
        columns=[*KEYS, *RAMANUJAN_LAYER_COLUMNS],
    )
    return tables, layers


def write_tables(train_summaries: list[str], metric_files: list[str], out_dir: str) -> list[Path]:
    """Write ``networks.csv``, one CSV per encoding and ``ramanujan_layers.csv`` into ``out_dir``.

    Every registered encoding gets a file (empty but with key columns if it was not
    computed) so the rule's outputs are fixed.
    """
    out = Path(out_dir)
    networks = networks_table(train_summaries)
    if networks.empty:
        raise TableError("no sparse networks to tabulate (only dense baselines?)")
    tables, layers = metric_tables(metric_files)
    written = [out / "networks.csv"]
    write_csv(networks, written[0])
    for enc in encoding_names():
        df = tables.get(enc, pd.DataFrame(columns=list(KEYS)))
        path = out / f"{enc}.csv"
        write_csv(df, path)
        written.append(path)
    write_csv(layers, out / "ramanujan_layers.csv")
    written.append(out / "ramanujan_layers.csv")
    return written
