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
from .io import read_json, write_csv
from .names import DENSE, KEYS, RAMANUJAN_LAYER_COLUMNS, RAMANUJAN_METRICS, encoding_names


def _keys(d: dict[str, Any], source: str) -> dict[str, Any]:
    missing = [k for k in KEYS if k not in d]
    if missing:
        raise TableError(f"{source}: missing network keys {missing}")
    return {
        "dataset": d["dataset"],
        "arch": d["arch"],
        "method": d["method"],
        "sparsity": float(d["sparsity"]),
        "seed": int(d["seed"]),
    }


def networks_table(train_summaries: list[str]) -> pd.DataFrame:
    """One row per trained network with its accuracy and its dense baseline's accuracy."""
    rows = []
    for path in train_summaries:
        s = read_json(path, required=("accuracy",))
        rows.append({**_keys(s, path), "accuracy": float(s["accuracy"])})
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
    for path in metric_files:
        art = read_json(path, required=("family", "encodings", "network"))
        keys = _keys(art["network"], path)
        key = tuple(keys[k] for k in KEYS)
        for encoding, res in art["encodings"].items():
            row = per_encoding[encoding].setdefault(key, dict(keys))
            for metric, value in (res.get("network") or {}).items():
                row[metric] = value
            if art["family"] == "ramanujan":
                for layer in res.get("layers") or []:
                    out = {**keys, "encoding": encoding}
                    out["layer_id"] = layer.get("layer_id")
                    out["layer_name"] = layer.get("layer_name")
                    out["layer_density"] = layer.get("density", layer.get("layer_density"))
                    for c in RAMANUJAN_METRICS:
                        out[c] = layer.get(c)
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
