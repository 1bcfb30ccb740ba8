# snntopo: grid -> mask -> train -> encode -> metrics -> tables -> analysis -> report.
# Run the demo with `make demo`, the paper grid with `snakemake --cores 8 --use-conda`
# (config/config.yaml), a cluster with `--profile profiles/slurm`. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


if not config:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/mask.smk"
include: "rules/train.smk"
include: "rules/encode.smk"
include: "rules/metrics.smk"
include: "rules/tables.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


rule all:
    default_target: True
    input:
        REPORT_TARGETS,
