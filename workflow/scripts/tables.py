"""Rule `tables`: join accuracies and metric artifacts into the canonical tables.
Logic: snntopo.stages.build_tables."""

from pathlib import Path

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import run_job
from snntopo.stages.tables import build_tables

run_job(
    build_tables,
    snakemake.log[0],
    train_summaries=list(snakemake.input.train),
    metric_files=list(snakemake.input.metrics),
    out_dir=str(Path(snakemake.output[0]).parent),
)
