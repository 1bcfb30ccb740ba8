"""Rule `report`: one HTML page with the analysis figures. Logic: snntopo.stages.make_report."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import run_job
from snntopo.plots.captions import FIELD_FIGURES
from snntopo.stages.report import make_report

run_job(
    make_report,
    snakemake.log[0],
    summary_html=snakemake.input.summary,
    figures=list(snakemake.input.figures),
    graph_figures=list(snakemake.input.graph_figure),
    networks_csv=snakemake.input.networks,
    out=snakemake.output.html,
    out_accuracy=snakemake.output.accuracy,
    meta=dict(snakemake.params.grid),
    train_summaries=list(snakemake.input.train_summaries),
    masks=list(snakemake.input.masks),
    out_figures={name: getattr(snakemake.output, name) for name in FIELD_FIGURES},
)
