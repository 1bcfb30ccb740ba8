"""Rule `analysis`: regression, importance, ranking, Ramanujan vs density.
Logic: snntopo.stages.run_analysis."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import run_job
from snntopo.stages.analysis import run_analysis

run_job(
    run_analysis,
    snakemake.log[0],
    tables_dir=snakemake.params.tables,
    out_dir=snakemake.params.out,
    params=dict(snakemake.params.analysis),
)
