"""One function per pipeline stage: read the input artifacts, call the package, write the outputs
atomically with provenance. ``workflow/scripts/*.py`` are thin adapters onto these, and tests call
them directly, so the DAG and the tests exercise the same code.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .io import atomic_path, file_digest, provenance, read_json, write_json, write_text
from .names import DENSE

log = logging.getLogger("snntopo.stages")


# --------------------------------------------------------------------------- models and masks
def _build(params: dict[str, Any]):
    from .models import build_model

    return build_model(
        params["arch"],
        num_classes=params["num_classes"],
        in_channels=params["in_channels"],
        input_size=params["input_size"],
        width=params["width"],
        seed=params["seed"],
    )


def make_spec(params: dict[str, Any], out: str) -> None:
    """Write the layer spec (``layers.json``) of one (dataset, arch): what every encoding reads."""
    from .encode.layers import layer_spec

    model = _build({**params, "seed": 0})
    shape = (params["in_channels"], params["input_size"], params["input_size"])
    spec = layer_spec(model, shape, arch=params["arch"], num_classes=params["num_classes"])
    spec["provenance"] = provenance(**params)
    write_json(out, spec)


def make_mask(params: dict[str, Any], out_mask: str, out_init: str) -> None:
    """Compute one PaI mask (or the all-ones dense mask) and the masked initial weights."""
    import torch
    from safetensors.torch import save_file

    from .data import pai_loader_factory
    from .models import prunable_parameters
    from .pai.io import save_mask
    from .train import resolve_device

    model = _build(params)
    t0 = time.perf_counter()
    meta = {k: params[k] for k in ("arch", "dataset", "method", "sparsity", "seed", "width")}
    meta["input_size"] = params["input_size"]
    if params["method"] == DENSE:
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model)}
        info: dict[str, Any] = {"realised_sparsity": 0.0}
    else:
        from .pai import METHODS, compute_mask

        needs_data = METHODS.meta(params["method"]).get("needs_data", False)
        masks, info = compute_mask(
            params["method"],
            model,
            params["sparsity"],
            seed=params["seed"],
            loader_factory=pai_loader_factory(
                params["dataset"],
                params["data_root"],
                params["seed"],
                download=params["download"],
                input_size=params["input_size"],
            )
            if needs_data
            else None,
            # the real input shape: SynFlow's all-ones input must match the data's size
            params={
                **(params.get("pai") or {}),
                "input_shape": [params["in_channels"], params["input_size"], params["input_size"]],
            },
            device=resolve_device(params["device"]),
        )
    # flat, like `snntopo mask` writes it; save_mask adds densities, realised sparsity and emptied
    # layers from the masks themselves (compute_mask already logged any emptied layer)
    meta = {**info, **meta, "seconds": time.perf_counter() - t0}
    meta["provenance"] = provenance(**params)
    save_mask(out_mask, masks, meta)
    log.info(
        "%s at sparsity %s: realised sparsity %.5f",
        params["method"],
        params["sparsity"],
        float(info["realised_sparsity"]),
    )
    init = {
        n: (p.detach().cpu() * masks[n].cpu()).contiguous().float()
        for n, p in prunable_parameters(model)
    }
    with atomic_path(out_init) as tmp:
        save_file(init, str(tmp), metadata={"snntopo": json.dumps({"kind": "masked-init", **meta})})


def train_and_save(
    model: Any,
    masks: dict[str, Any] | None,
    mask_meta: dict[str, Any],
    params: dict[str, Any],
    cfg: Any,
    out_model: str,
    out_summary: str,
    checkpoint: str,
    log: Any = None,
) -> Any:
    """Train ``model`` under ``masks`` and write ``model.safetensors`` and ``train.json``.

    Shared by the ``train`` rule and ``snntopo train`` so both write the same artifacts: the
    network keys (method and sparsity from the mask, ``dense``/0 without one), accuracy, history,
    device, parameter counts and the realised sparsity of the mask. Resumes from ``checkpoint``
    if a previous attempt left one, and removes it once the artifacts are written.
    """
    from .artifacts import save_trained
    from .data import load_dataset
    from .train import train_masked

    common = dict(
        root=params["data_root"], download=params["download"], input_size=params["input_size"]
    )
    train_set = load_dataset(params["dataset"], train=True, **common)
    test_set = load_dataset(params["dataset"], train=False, **common)
    result = train_masked(
        model,
        masks,
        train_set,
        test_set,
        cfg,
        seed=params["seed"],
        checkpoint_path=checkpoint,
        log=log,
    )
    summary = {
        "dataset": params["dataset"],
        "arch": params["arch"],
        "method": mask_meta.get("method", DENSE),
        "sparsity": float(mask_meta.get("sparsity", 0.0)),
        "seed": int(params["seed"]),
        "accuracy": result.accuracy,
        "history": result.history,
        "realised_sparsity": mask_meta.get("realised_sparsity", 0.0),
        "mask_sha256": mask_meta.get("mask_sha256"),
        "device": result.device,
        "amp": result.amp,
        "parameters": result.params,
        "training": cfg.to_dict(),
        "provenance": provenance(**params),
    }
    save_trained(out_model, model, masks, {**summary, "params": params})
    write_json(out_summary, summary)
    Path(checkpoint).unlink(missing_ok=True)
    return result


def train_network(
    params: dict[str, Any], mask_path: str, out_model: str, out_summary: str, checkpoint: str
) -> None:
    """Train one masked network of the grid (the ``train`` rule)."""
    from .pai.io import load_mask
    from .train import TrainConfig

    model = _build(params)
    masks, mask_meta = load_mask(mask_path, model)
    cfg = TrainConfig.from_dict({**params["training"], "device": params["device"]})
    mask_meta = {**mask_meta, "mask_sha256": file_digest(mask_path)}
    train_and_save(model, masks, mask_meta, params, cfg, out_model, out_summary, checkpoint)


# --------------------------------------------------------------------------- graphs and metrics
def load_weights(path: str) -> dict[str, Any]:
    """Float weights from a ``.safetensors`` artifact as numpy arrays (no torch needed)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable weights file ({exc})") from None


def encode_network(
    encoding: str, spec_path: str, weights_path: str, params: dict[str, Any], out: str
) -> None:
    """Build one graph encoding from the layer spec and the masked weights."""
    from .encode import build_graph
    from .encode.graph import save_graph

    spec = read_json(spec_path, required=("layers", "blocks", "input_shape"))
    weights = load_weights(weights_path)
    missing = [lay["param"] for lay in spec["layers"] if lay["param"] not in weights]
    if missing:
        raise ArtifactError(
            f"{weights_path}: no weights for {missing[:3]} required by {spec_path}"
            + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        )
    t0 = time.perf_counter()
    graph = build_graph(
        encoding,
        spec,
        weights,
        mode=params.get("mode", "exact"),
        identity_edges=params.get("identity_edges", False),
    )
    graph.meta.update(
        network=params.get("network", {}),
        weights_sha256=file_digest(weights_path),
        build_seconds=time.perf_counter() - t0,
        provenance=provenance(**params),
    )
    log.info("%s: %d nodes, %d edges", encoding, graph.n_nodes, graph.n_edges)
    save_graph(out, graph)


def compute_metrics(family: str, graphs: dict[str, str], params: dict[str, Any], out: str) -> None:
    """One metric family on every applicable encoding of one network -> one small JSON."""
    from .encode.graph import load_graph
    from .metrics import compute_family

    result: dict[str, Any] = {"family": family, "encodings": {}}
    for encoding, path in graphs.items():
        t0 = time.perf_counter()
        graph = load_graph(path)
        res = compute_family(family, graph, params)
        res["seconds"] = time.perf_counter() - t0
        for metric, why in (res.get("nan_reasons") or {}).items():
            log.warning("%s/%s: %s is NaN: %s", encoding, family, metric, why)
        result["encodings"][encoding] = res
    result["network"] = params.get("network", {})
    result["provenance"] = provenance(**params)
    write_json(out, result)


# --------------------------------------------------------------------------- tables and analysis
def build_tables(train_summaries: list[str], metric_files: list[str], out_dir: str) -> None:
    """Join per-network artifacts into the canonical tables (see docs/architecture.md)."""
    from .tables import write_tables

    write_tables(train_summaries, metric_files, out_dir)


def run_analysis(tables_dir: str, out_dir: str, params: dict[str, Any]) -> None:
    from .analysis import run_analysis as _run

    _run(tables_dir, out_dir, params)


def accuracy_table(networks_csv: str) -> Any:
    """Mean ± std test accuracy over seeds, one row per (dataset, arch, method), one column per
    sparsity, with the dense baseline beside it: the PaI methods side by side."""
    import pandas as pd

    df = pd.read_csv(networks_csv)
    grouped = df.groupby(["dataset", "arch", "method", "sparsity"])["accuracy"]
    cell = (
        grouped.mean().map("{:.3f}".format) + " ± " + grouped.std().fillna(0).map("{:.3f}".format)
    )
    table = cell.unstack("sparsity")
    table.columns = [f"s={c:g}" for c in table.columns]
    dense = df.groupby(["dataset", "arch", "method"])["dense_accuracy"].mean()
    table["dense"] = dense.reindex(table.index).map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return table.reset_index()


def make_report(
    summary_html: str,
    figures: list[str],
    graph_figures: list[str],
    networks_csv: str,
    out: str,
    meta: dict[str, Any],
) -> None:
    """A single HTML page: the grid, the accuracies of the PaI methods side by side, a drawing of
    one MGE and the analysis figures, linking to the full analysis summary (relative links)."""
    from html import escape

    out_dir = Path(out).parent

    def rel(path: str) -> str:
        return escape(str(Path(path).resolve().relative_to(out_dir.resolve())))

    imgs = "\n".join(
        f'<figure><img src="{rel(f)}" style="max-width:100%"><figcaption>'
        f"{escape(Path(f).stem)}</figcaption></figure>"
        for f in figures
        if f.endswith(".png")
    )
    acc = accuracy_table(networks_csv).to_html(index=False, border=0, classes="acc")
    mge = "".join(
        "<h2>The multipartite graph encoding (MGE) of one network</h2>\n"
        f'<img src="{rel(f)}" style="max-width:100%">\n'
        for f in graph_figures
    )
    grid = "".join(f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>" for k, v in meta.items())
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>snntopo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
table.acc td,table.acc th{{padding:2px 8px;text-align:right}}</style></head>
<body>
<h1>snntopo report</h1>
<ul>{grid}</ul>
<p>Protocol, numbers and verdicts on the paper's claims:
<a href="{rel(summary_html)}">analysis summary</a>.</p>
<h2>Test accuracy of the PaI methods (mean ± std over seeds)</h2>
{acc}
{mge}
<h2>Analysis figures</h2>
{imgs}
</body></html>
"""
    write_text(out, html)


def plot_graph(graph_path: str, out: str) -> None:
    """Draw a stored MGE (layers as columns) for the report."""
    from .encode.graph import load_graph
    from .plots.graph import plot_mge

    with atomic_path(out) as tmp:
        plot_mge(load_graph(graph_path), tmp)
