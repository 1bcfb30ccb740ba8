"""Rule `mask`: one PaI mask and the masked initial weights. Logic: snntopo.stages.make_mask."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_threads, run_job

limit_threads(snakemake.threads)
from snntopo.stages.mask import make_mask  # noqa: E402

run_job(
    make_mask,
    snakemake.log[0],
    params=snakemake.params.mask,
    out_mask=snakemake.output.mask,
    out_init=snakemake.output.init,
    # the GPUs this job was granted: a job given one that finds no CUDA stops (device: auto)
    gpus=int(getattr(snakemake.resources, "gpu", 0) or 0),
)
