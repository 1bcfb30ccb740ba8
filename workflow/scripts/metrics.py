"""Rules `metrics_<family>`: one metric family on every applicable encoding of one network.
Logic: snntopo.stages.compute_metrics."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_memory, limit_threads, memory_guard, run_job

limit_threads(snakemake.threads)
if snakemake.config["resources"].get("enforce_memory"):
    limit_memory(snakemake.resources.mem_mb)
from snntopo.stages.metrics import compute_metrics  # noqa: E402

run_job(
    compute_metrics,
    snakemake.log[0],
    job_context={"mem_mb": snakemake.resources.mem_mb},
    family=snakemake.params.family,
    graphs=dict(snakemake.input.items()),
    params={**snakemake.params.metrics, "threads": snakemake.threads},
    out=snakemake.output[0],
    memory=memory_guard(snakemake.resources.mem_mb, snakemake.config),
)
