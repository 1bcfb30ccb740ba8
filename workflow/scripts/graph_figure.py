"""Rule `graph_figure`: a picture of one network's MGE. Logic: snntopo.plots.graph.plot_mge."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import run_job
from snntopo.stages.report import plot_graph

run_job(plot_graph, snakemake.log[0], graph_path=snakemake.input[0], out=snakemake.output[0])
