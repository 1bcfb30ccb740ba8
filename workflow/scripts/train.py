"""Rule `train`: train one masked network, resuming from its checkpoint.
Logic: snntopo.stages.train_network."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_threads, run_job

limit_threads(snakemake.threads)
from snntopo.stages.train import train_network  # noqa: E402

run_job(
    train_network,
    snakemake.log[0],
    params=snakemake.params.train,
    mask_path=snakemake.input.mask,
    out_model=snakemake.output.model,
    out_summary=snakemake.output.summary,
    out_history=snakemake.output.history,
    # not a param: turning TensorBoard on or off retrains nothing
    tensorboard=bool(snakemake.config.get("tensorboard", False)),
    checkpoint=snakemake.params.checkpoint,
    # the GPUs this job was granted: a job given one that finds no CUDA stops (device: auto)
    gpus=int(getattr(snakemake.resources, "gpu", 0) or 0),
)
