"""Rule `predict`: predicted accuracy of untrained masks from their metric artifacts.
Logic: snntopo.stages.predict (snntopo.analysis.predictor.write_predictions)."""

import _bootstrap  # noqa: F401  (puts the checkout's src/ on sys.path)

from snntopo.jobs import run_job
from snntopo.stages.predict import write_predictions

run_job(
    write_predictions,
    snakemake.log[0],
    predictor=snakemake.input.predictor,
    metrics=list(snakemake.input.metrics),
    out_dir=snakemake.params.out,
)
