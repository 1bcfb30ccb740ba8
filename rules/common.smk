# Shared set-up: make the package importable, validate the config (before any job runs), and
# define the grid, the artifact paths and the input functions of every stage.
import os
import sys
from pathlib import Path

_SRC = str(Path(SNNTOPO_DIR) / "src")
if Path(_SRC).is_dir() and _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from snntopo.config import check_config, write_effective_schema
from snntopo.errors import ConfigError
from snntopo.overrides import Layer, layered_config, source_of, yaml_typed
from snntopo import workflow as W
from snntopo import gridpoint
from snntopo.plots.captions import ANALYSIS_FIGURES, FIELD_FIGURES


def _module_config_layers(handed, overrides):
    """The config a calling workflow hands this one (`module ...: config: config`), as one layer:
    the caller's values, with those its command line set (`--config key=value`, which Snakemake
    reads as strings) re-typed as YAML reads them. The schema's defaults fill what it leaves out.
    """
    values = dict(handed)
    for key, value in overrides.items():
        if values.get(key) == value:
            values[key] = yaml_typed(value)
    return [Layer("the config handed to the snntopo module", values)]


# The configuration. Run directly, it is layered the Snakemake way: DEFAULT_CONFIG (the
# Snakefile's `configfile:`), then each --configfile, then --config key=value (re-typed as YAML
# reads it: download=true is a boolean). Used as a module with `config:`, it is the caller's
# config (Snakemake then skips this workflow's `configfile:`), over the schema's defaults. Every
# error names the layer that set the bad value, and is printed once, without a traceback.
try:
    if getattr(workflow.modifier, "skip_configfile", False):
        _layers = _module_config_layers(config, workflow.config_settings.config)
        _raw = dict(_layers[0].values)
        _source = lambda path: source_of(_layers, path)
    else:
        _raw, _source = layered_config(
            (
                None
                if workflow.config_settings.replace_workflow_config
                else DEFAULT_CONFIG
            ),
            workflow.config_settings.configfiles,
            dict(workflow.config_settings.config),
        )
    _checked = check_config(_raw, source=_source)
except ConfigError as exc:
    print(f"invalid configuration:\n{exc}", file=sys.stderr)
    sys.exit(1)
if getattr(workflow.modifier, "skip_configfile", False):
    # a module: its own checked copy; the caller's config dict is left as the caller wrote it
    config = _checked
else:
    config.clear()
    config.update(_checked)

# the schema with the registries' names, written under the working directory's .snakemake/
validate(
    config,
    write_effective_schema(
        Path(".snakemake/snntopo/schema.yaml").resolve(), config=config
    ),
)

RESULTS = config["results"]
NET = gridpoint.network_pattern(RESULTS)
LOGS = f"{RESULTS}/logs"
# A job's benchmark file is named twice, by the benchmark directive (Snakemake writes it) and as
# the named log `benchmark=` (Snakemake 9's --list-untracked counts inputs, outputs and logs, not
# benchmark files; without it every benchmark would be listed as untracked).
BENCH = f"{RESULTS}/benchmarks"
NETWORK_ID = gridpoint.network_pattern()
SPARSE = W.sparse_grid(config)
DENSE_NETS = W.dense_grid(config)
FAMILIES_ACTIVE = W.active_families(config)
# the network drawn in the report: the sparsest one (fewest edges, clearest picture)
FIGURE_NET = max(SPARSE, key=lambda n: n.sparsity)


wildcard_constraints:
    dataset="[a-z0-9]+",
    arch="[A-Za-z0-9_.]+",
    method="[a-z]+",
    sparsity="[0-9.]+",
    seed="[0-9]+",
    encoding="|".join(config["encodings"]),


def net_paths(nets, template):
    """Expand ``template`` (relative to a network's directory) over ``nets``."""
    return [f"{n.path(RESULTS)}/{template}" for n in nets]


def network_keys(wc):
    # the full architecture name (paths carry its slug): artifacts and tables name it as train.json does
    return gridpoint.network_keys(*(getattr(wc, k) for k in gridpoint.KEYS))


def weights_for_encoding(wc):
    name = (
        "init.safetensors"
        if config["encode"]["weights"] == "init"
        else "model.safetensors"
    )
    return f"{gridpoint.wildcards_dir(RESULTS, wc)}/{name}"


TRAIN_SUMMARIES = net_paths(SPARSE + DENSE_NETS, "train.json")
METRIC_FILES = [
    p for f in FAMILIES_ACTIVE for p in net_paths(SPARSE, f"metrics/{f}.json")
]
# one table per registered encoding, plus the networks and per-layer Ramanujan tables
TABLES = [f"{RESULTS}/tables/{t}.csv" for t in W.table_names()]
ANALYSIS_CSV = [
    f"{RESULTS}/analysis/{t}.csv"
    for t in ("ramanujan_density", "regression", "importance", "ranking")
]
FIGURES = [f"{RESULTS}/analysis/figures/{f}.png" for f in ANALYSIS_FIGURES]
GRAPH_FILES = [
    p for e in config["encodings"] for p in net_paths(SPARSE, f"graphs/{e}.npz")
]
# Every per-network artifact is a target too: Snakemake does not regenerate a deleted
# intermediate file while its downstream outputs are up to date, and a user who deletes one
# artifact expects exactly that artifact and what depends on it to be rebuilt.
REPORT_TARGETS = [
    f"{RESULTS}/report.html",
    *ANALYSIS_CSV,
    *net_paths(SPARSE + DENSE_NETS, "mask.safetensors"),
    *TRAIN_SUMMARIES,
    *GRAPH_FILES,
    *METRIC_FILES,
]
