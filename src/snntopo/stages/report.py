"""Stages ``graph_figure`` and ``report``: the HTML page and the MGE drawing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..io import atomic_path, write_text

log = logging.getLogger("snntopo.stages")


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


def code_revision(root: str | Path | None = None) -> str:
    """The git commit of the checkout the running snntopo comes from (``abc123def456``, with
    ``+ uncommitted changes`` when tracked files differ from it), or a sentence saying why it
    is unknown (an installed package, no git)."""
    import subprocess

    root = Path(root) if root is not None else Path(__file__).resolve().parents[3]
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (snntopo is not run from a git checkout)"
    return rev + (" + uncommitted changes" if dirty else "")


def _recipe_text(training: dict[str, Any]) -> str:
    """One line for a training recipe (``train.json``'s ``training``)."""
    t = training
    parts = [
        f"{t.get('epochs')} epochs",
        f"SGD{' (Nesterov)' if t.get('nesterov') else ''} lr {t.get('lr'):g}",
        f"momentum {t.get('momentum'):g}",
        f"weight decay {t.get('weight_decay'):g}",
        f"batch {t.get('batch_size')}",
        f"lr x{t.get('gamma'):g} at epochs {list(t.get('milestones') or [])}",
    ]
    if t.get("limit_batches"):
        parts.append(f"each epoch cut after {t['limit_batches']} batches")
    return ", ".join(parts)


def smoke_reasons(runs: Any) -> list[str]:
    """Why the trainings of ``runs`` (:func:`snntopo.plots.training.load_trainings`) are a smoke
    run rather than a study: fewer epochs than the paper's recipe, a toy data set, epochs cut
    short. Empty when none applies (or the registries do not know the data set / architecture).
    """
    from ..data import dataset_info
    from ..train.config import paper_recipe

    reasons: list[str] = []
    for (ds, arch), d in runs.groupby(["dataset", "arch"], sort=True):
        epochs = int(d["epochs"].max())
        try:
            paper = int(paper_recipe(ds, arch)["epochs"])
            n_train = dataset_info(ds).train_images
        except Exception:  # a data set or architecture the registries do not know
            continue
        if epochs < paper:
            reasons.append(f"{ds}/{arch}: {epochs} epochs (the paper's recipe: {paper})")
        if n_train < 10_000:
            reasons.append(f"{ds} is a toy data set ({n_train:,} training images)")
    for t in dict.fromkeys(runs["training"]):
        lb = json.loads(t).get("limit_batches")
        if lb:
            reasons.append(f"each epoch cut after {lb} batches")
    return list(dict.fromkeys(reasons))


def run_metadata(runs: Any, grid: dict[str, Any]) -> dict[str, Any]:
    """What the report's first screen says about the run: ``rows`` (label, text) and
    ``warnings`` (the smoke-run reasons)."""
    import datetime

    def uniq(col: str) -> str:
        vals = [str(v) for v in dict.fromkeys(runs[col].dropna())]
        return ", ".join(vals) if vals else "not recorded"

    recipes = []
    for t in dict.fromkeys(runs["training"]):
        where = runs.loc[runs["training"] == t, ["dataset", "arch"]].drop_duplicates()
        text = _recipe_text(json.loads(t))
        if len(dict.fromkeys(runs["training"])) > 1:
            text += " (" + ", ".join(f"{a}/{b}" for a, b in where.itertuples(index=False)) + ")"
        recipes.append(text)
    rows = [(str(k), ", ".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in grid.items()]  # fmt: skip
    rows += [
        ("networks trained", f"{len(runs)}"),
        ("training recipe", "; ".join(recipes) or "not recorded"),
        ("trained on", uniq("device")),
        ("versions", f"snntopo {uniq('snntopo')}, torch {uniq('torch')}, Python {uniq('python')}"),
        ("code revision", code_revision()),
        (
            "report made",
            datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        ),
    ]
    return {"rows": rows, "warnings": smoke_reasons(runs)}


def make_report(
    summary_html: str,
    figures: list[str],
    graph_figures: list[str],
    networks_csv: str,
    out: str,
    meta: dict[str, Any],
    out_accuracy: str | None = None,
    train_summaries: list[str] | None = None,
    masks: list[str] | None = None,
    out_figures: dict[str, str] | None = None,
) -> None:
    """``report.html`` (self-contained: images embedded, see :mod:`snntopo.plots.report_html`)
    and, with ``out_accuracy``, the accuracy table as CSV (a Snakemake report item). With
    ``train_summaries``, ``masks`` and ``out_figures`` (paths of ``accuracy_sparsity``,
    ``training_curves``, ``layer_density``) the field's figures
    (:mod:`snntopo.plots.training`) are drawn and shown first, under the run's metadata."""
    import os

    from ..io import write_csv
    from ..plots.report_html import render_report

    acc = accuracy_table(networks_csv)
    info, field = None, []
    if train_summaries:
        from ..plots.training import load_trainings, write_training_figures

        trainings = load_trainings(train_summaries)
        info = run_metadata(trainings[0], meta)
        if out_figures:
            written = write_training_figures(
                trainings, masks or [], out_figures, methods=meta.get("methods")
            )
            field = [str(p) for p in written.values()]
    href = os.path.relpath(Path(summary_html).resolve(), Path(out).resolve().parent)
    write_text(
        out,
        render_report(
            acc,
            figures,
            graph_figures,
            meta,
            summary_href=href,
            run_info=info,
            field_figures=field,
        ),  # fmt: skip
    )
    if out_accuracy:
        write_csv(acc, out_accuracy)


def plot_graph(graph_path: str, out: str) -> None:
    """Draw a stored MGE (layers as columns) for the report."""
    from ..encode.graph import load_graph
    from ..plots.graph import plot_mge

    with atomic_path(out) as tmp:
        plot_mge(load_graph(graph_path), tmp)
