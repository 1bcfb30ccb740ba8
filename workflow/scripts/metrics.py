"""Rules `metrics_<family>`: one metric family on every applicable encoding of one network.
Logic: snntopo.stages.compute_metrics."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)
from snntopo.jobs import limit_threads, run_job

limit_threads(snakemake.threads)
from snntopo.stages import compute_metrics  # noqa: E402

run_job(
    compute_metrics,
    snakemake.log[0],
    family=snakemake.params.family,
    graphs=dict(snakemake.input.items()),
    params={**snakemake.params.metrics, "threads": snakemake.threads},
    out=snakemake.output[0],
)
