# snntopo: grid -> mask -> train -> encode -> metrics -> tables -> analysis -> report.
# Run the demo with `make demo`, the paper grid with `snakemake --cores 8 --use-conda`
# (config/config.yaml), a cluster with `--profile profiles/slurm`. See README.md.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# This checkout's own files (the default config, src/) are found from this file, not from
# `workflow.basedir`: used as a module, that is the calling workflow's directory. Outputs stay
# relative to the working directory (the caller's, for a module).
SNNTOPO_DIR = os.path.dirname(os.path.abspath(workflow.snakefile))
# Defaults: the paper grid. `--configfile FILE` overlays it (a second one overlays the first) and
# `--config key=value` overrides single keys. A workflow that uses this one as a module with
# `config: config` replaces all of that with its own config (schema defaults fill the rest); see
# rules/common.smk.
DEFAULT_CONFIG = str(workflow.source_path("config/config.yaml"))


configfile: DEFAULT_CONFIG


# `snakemake --report`: this page describes the workflow; every figure and table has its own caption
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/mask.smk"
include: "rules/train.smk"
include: "rules/encode.smk"
include: "rules/metrics.smk"
include: "rules/tables.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


# Cheap joins and small single jobs (all, spec, tables, analysis, graph_figure, report and the
# data sets) run on the submitting machine, not as cluster jobs: each says `localrule: True` (a
# `localrules:` list would miss them under a module's rule-name prefix).


rule all:
    default_target: True
    input:
        REPORT_TARGETS,
    localrule: True
