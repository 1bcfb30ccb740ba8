"""Rules `data_<dataset>`: fetch (with `download: true`) and check one data set.
Logic: snntopo.stages.data.prepare_dataset."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_threads, run_job

limit_threads(snakemake.threads)
from snntopo.stages.data import prepare_dataset  # noqa: E402

run_job(
    prepare_dataset,
    snakemake.log[0],
    name=snakemake.params.dataset,
    root=snakemake.params.root,
    download=snakemake.params.download,
)
