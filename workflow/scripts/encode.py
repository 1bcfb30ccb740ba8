"""Rule `encode`: one graph encoding of one network. Logic: snntopo.stages.encode_network."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_memory, limit_threads, memory_guard, run_job

limit_threads(snakemake.threads)
if snakemake.config["resources"].get("enforce_memory"):
    limit_memory(snakemake.resources.mem_mb)
from snntopo.stages.encode import encode_network  # noqa: E402

run_job(
    encode_network,
    snakemake.log[0],
    job_context={"mem_mb": snakemake.resources.mem_mb},
    encoding=snakemake.wildcards.encoding,
    spec_path=snakemake.input.spec,
    weights_path=snakemake.input.weights,
    mask_path=snakemake.input.mask,
    params=snakemake.params.encode,
    out=snakemake.output[0],
    memory=memory_guard(snakemake.resources.mem_mb, snakemake.config),
)
