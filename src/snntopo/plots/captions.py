"""The one source of the figure and table captions of both reports.

The Snakemake report (``snakemake --report``) reads one reStructuredText caption file per item
(``report/figures/<name>.rst``, ``report/tables/<name>.rst``); the hand-made page
(``results/report.html``, :mod:`snntopo.plots.report_html`) puts the same caption under each
figure. Both come from :data:`FIGURES` and :data:`TABLES` below: the ``.rst`` files are generated
from them (``python -m snntopo.plots.captions`` rewrites them; a test checks that the checked-in
files are what this module generates), so a caption is written once.

A caption is plain text (no markup): :func:`rst` escapes what reStructuredText would read as
markup (``|ρ|`` would otherwise be a substitution reference, an error box in the report).
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Caption:
    """A caption: a bold lead (the question the item answers) and the text after it."""

    title: str
    text: str


#: the analysis figures (``analysis/figures/<name>.png``, in the order both reports show them)
#: and the drawing of one MGE (``figures/mge.png``)
FIGURES: dict[str, Caption] = {
    "regression_r2": Caption(
        "How well does each feature set predict accuracy?",
        "Out-of-fold R² of every feature set (sparsity or density alone, Ramanujan metrics, the "
        "topometrics of each encoding, their mixtures) under each model (ridge, gradient-boosted "
        "trees): bars are the mean over the folds of the grouped cross-validation (a group is one "
        "configuration, so seeds never straddle train and test), whiskers their spread; one panel "
        "pooled, one per architecture. Read it as: higher is better, 1 is a perfect prediction, 0 "
        "is no better than predicting the mean, below 0 is worse than the mean. A feature set is "
        "only useful beyond sparsity if it sits clearly above the sparsity/density rows.",
    ),
    "importance": Caption(
        "Which MGE metrics matter?",
        "Permutation importance of each MGE topometric for the gradient-boosted model, measured "
        "on the held-out folds: the drop in R² when that metric's column is shuffled (bars: mean "
        "over folds and repeats; whiskers: spread). Read it as: a long bar means the prediction "
        "relies on that metric; a bar near zero means the metric adds nothing the others do not "
        "already carry (correlated metrics share their importance, so each can look small).",
    ),
    "ranking_tau": Caption(
        "Does the topology rank the PaI methods correctly?",
        "Kendall's τ between the measured ranking of the PaI methods (by accuracy) and the "
        "ranking predicted out of fold from each feature set, within each scope (e.g. "
        "architecture, sparsity). Read it as: τ = 1 means the predicted order of the methods is "
        "exactly the measured one, 0 means unrelated, negative means reversed. Compare the MGE "
        "and BGE mixtures with the Ramanujan metrics.",
    ),
    "ramanujan_density": Caption(
        "Are the Ramanujan metrics more than layer density?",
        "Each point is one layer of one network: a Ramanujan metric (spectral gap, weighted "
        "spectral gap and their normalised forms) against the layer's density, with the Spearman "
        "correlation in each panel. Read it as: a tight monotone cloud (|ρ| near 1) means the "
        "metric mostly restates density; scatter at a fixed density is what the metric adds.",
    ),
    "accuracy_sparsity": Caption(
        "How does each PaI method degrade with sparsity?",
        "Test accuracy of the trained networks against sparsity, one panel per data set and "
        "architecture: a line per method (mean over seeds, error bars one standard deviation), "
        "the dense baseline as a dashed line with its ±1 sd band. The sparsity axis is the log "
        "of the remaining weights, so 90% to 99% is as wide as 0% to 90%. Read it as: lines "
        "near the dashed one lose nothing to pruning; where the lines part, the method matters.",
    ),
    "training_curves": Caption(
        "How did the trainings go?",
        "Per-epoch training loss (top row) and test accuracy (bottom row) of every method, one "
        "column per sparsity, averaged over seeds (test accuracy only on evaluated epochs); the "
        "dense baseline dashed in every panel. The numbers come from each network's "
        "history.csv. Read it as: curves still falling at the last epoch mean the training was "
        "cut short; a flat loss means the network never learned (e.g. a layer pruned away).",
    ),
    "layer_density": Caption(
        "Where does each method put the weights it keeps?",
        "The density of every prunable layer (input side on the left, log scale) in the masks "
        "of each method, one panel per sparsity, mean over seeds; the dotted line is the "
        "overall density. Read it as: uniform pruning is flat on the dotted line; ERK keeps the "
        "small layers denser; SNIP, GraSP and SynFlow follow the data or the weights and may "
        "empty a layer at high sparsity, which cuts the network.",
    ),
    "mge": Caption(
        "What an MGE looks like.",
        "The unrolled multipartite graph encoding of the sparsest network of the grid: one "
        "column per layer (input on the left), nodes are input positions and channels after each "
        "layer's unrolling, edges the surviving weights (sampled when there are many). Read it "
        "as: thinning columns and bundles show where pruning disconnected the network; isolated "
        "stretches are paths that no longer reach the output.",
    ),
}

#: the analysis figures, in the order both reports show them
ANALYSIS_FIGURES = ("regression_r2", "importance", "ranking_tau", "ramanujan_density")

#: the field's figures drawn by the report rule (``figures/<name>.png``, in page order)
FIELD_FIGURES = ("accuracy_sparsity", "training_curves", "layer_density")

#: the tables the Snakemake report shows (``report/tables/<name>.rst``)
TABLES: dict[str, Caption] = {
    "pai_accuracy": Caption(
        "Test accuracy of the PaI methods side by side.",
        "One row per (data set, architecture, method), one column per sparsity: mean ± standard "
        "deviation over seeds; the last column is the dense baseline of the same data set and "
        "architecture. Read across a row for how a method degrades with sparsity, down a column "
        "to compare methods at one sparsity.",
    ),
    "ranking_summary": Caption(
        "Ranking agreement.",
        "Per feature set: Kendall's τ between the measured and the held-out predicted ranking of "
        "the PaI methods (mean and spread over the scopes), and how often the predicted best "
        'method is the measured best (top-1 agreement), pooled over all architectures ("all") '
        "and per architecture. τ = 1 is the measured order, 0 unrelated.",
    ),
    "regression": Caption(
        "Regression scores.",
        "One row per (feature set, model, scope): out-of-fold R² and MAE under grouped K-fold "
        "cross-validation (a group is one configuration; the seeds of one configuration are "
        "never split between training and test), with their spread over folds and repeats. "
        "Higher R² and lower MAE are better; compare every row with the sparsity-only row.",
    ),
}

#: characters reStructuredText reads as inline markup, escaped in :func:`rst`
_RST_SPECIAL = ("\\", "|", "*", "`", "_")


def _rst_escape(text: str) -> str:
    for ch in _RST_SPECIAL:
        text = text.replace(ch, "\\" + ch)
    return text


def rst(caption: Caption) -> str:
    """The caption as a reStructuredText paragraph (bold lead, escaped text, 100 columns)."""
    body = f"**{_rst_escape(caption.title)}** {_rst_escape(caption.text)}"
    return textwrap.fill(body, width=100, break_on_hyphens=False) + "\n"


def plain(caption: Caption) -> str:
    """The caption as one line of plain text (for HTML, escape it there)."""
    return f"{caption.title} {caption.text}"


def rst_files(root: str | Path) -> dict[Path, str]:
    """Every caption file of the Snakemake report under ``root`` (the repository's ``report/``)
    with its text."""
    root = Path(root)
    out = {root / "figures" / f"{n}.rst": rst(c) for n, c in FIGURES.items()}
    out.update({root / "tables" / f"{n}.rst": rst(c) for n, c in TABLES.items()})
    return out


def write_rst(root: str | Path) -> list[Path]:
    """(Re)write the caption files under ``root``; returns those that changed."""
    changed = []
    for path, text in rst_files(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m snntopo.plots.captions [report/]
    for p in write_rst(sys.argv[1] if len(sys.argv) > 1 else "report"):
        print(f"wrote {p}")
