"""Rule `spec`: write the layer spec of one (dataset, arch). Logic: snntopo.stages.make_spec."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import limit_threads, run_job

limit_threads(snakemake.threads)
from snntopo.stages.spec import make_spec  # noqa: E402

run_job(make_spec, snakemake.log[0], params=snakemake.params.model, out=snakemake.output[0])
