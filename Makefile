# Two commands on a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CORES  ?= 2

.PHONY: venv demo test test-fast lint format bench paper-dry-run report clean-demo dag

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[workflow,dev]"
	touch $@

## Run the whole pipeline on the demo grid (digits data, no download) -> results/report.html
demo: venv
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml --rerun-incomplete
	@echo "Report: results/report.html   analysis: results/analysis/summary.html"

## The test suite (slow tests included; `make test-fast` skips them)
test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/ruff format --check src tests workflow benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile rules
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile config/demo.yaml

format: venv
	$(BIN)/ruff format src tests workflow benchmarks
	$(BIN)/ruff check --fix src tests workflow benchmarks
	$(BIN)/snakefmt Snakefile workflow/Snakefile rules

## Encode and metric benchmarks -> results/bench/*.csv
bench: venv
	$(BIN)/snntopo bench --out results/bench

## Plan the paper grid (1,260 sparse + 36 dense trainings) without running anything: Snakemake's
## job counts, then the price (submissions, GPU-hours, CPU-hours, memory, disk: `snntopo plan`)
paper-dry-run: venv
	$(BIN)/snakemake -n --quiet rules --profile profiles/slurm
	$(BIN)/snntopo plan --configfile config/config.yaml --profile profiles/slurm

## Snakemake's own self-contained report of the finished demo run
report: venv
	$(BIN)/snakemake --configfile config/demo.yaml --report snakemake-report.html

clean-demo:
	rm -rf results/digits results/tables results/analysis results/figures results/report.html results/logs results/benchmarks results/predictions snakemake-report.html

## Regenerate the rule graph shown in the README (needs graphviz's `dot`)
dag: venv
	$(BIN)/snakemake --configfile config/demo.yaml --rulegraph | dot -Tsvg > docs/rulegraph.svg
