"""The Snakemake DAG end to end, in a temporary directory: a tiny grid runs through every stage,
a rerun does nothing, deleting one artifact reruns only its job and what depends on it, adding a
sparsity or a metric family plans only the new jobs, and bad configs stop before any job runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

pytestmark = pytest.mark.workflow

TINY = {
    "results": "results",
    "datasets": ["digits"],
    "architectures": ["resnet20"],
    "methods": ["erk", "snip"],
    "sparsities": [0.6, 0.9],
    "seeds": [0, 1],
    "dense_baseline": True,
    "model": {"width": 0.25, "input_size": {"digits": 8}},
    # (the defaults underneath are config/config.yaml's, whose loaders use 4 workers)
    "training": {"epochs": 1, "batch_size": 128, "milestones": [1], "lr": 0.05, "num_workers": 0},
    "pai": {"snip": {"batch_size": 32}},
    "metrics": {"motif_sample_fraction": 0.01},
    "analysis": {"n_splits": 2, "n_repeats": 1, "n_permutation_repeats": 2},
    "resources": {"train_gpus": 0, "train_cpus": 1, "train_mem_mb": 1000},
}


def snakemake(
    workdir: Path,
    *args: str,
    snakefile: Path = REPO / "Snakefile",
    timeout: int = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def write_config(workdir: Path, cfg: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def job_counts(text: str) -> Counter[str]:
    """Jobs per rule in Snakemake's job-stats table of a dry run's output."""
    counts: Counter[str] = Counter()
    in_table = False
    for line in text.splitlines():
        if re.match(r"^job\s+count", line.strip()):
            in_table = True
            continue
        if in_table:
            m = re.match(r"^([A-Za-z_]\w*)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def planned(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> Counter[str]:
    """Jobs a dry run would execute, per rule (parsed from Snakemake's job-stats table)."""
    res = snakemake(workdir, "-n", *args, snakefile=snakefile)
    assert res.returncode == 0, res.stderr[-3000:]
    text = res.stdout + res.stderr
    if "Nothing to be done" in text:
        return Counter()
    counts = job_counts(text)
    assert counts, text[-3000:]
    return counts


# --------------------------------------------------------------------------- fast checks
@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"architectures": ["resnet21"]}, ["architectures[0]", "resnet20", "wrn28_2"]),
        ({"methods": ["snipp"]}, ["methods[0]", "'snip'"]),
        ({"sparsities": [1.5]}, ["sparsities[0]", "out of range"]),
        ({"seedz": [0]}, ["unknown key 'seedz'", "'seeds'"]),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, change, fragments):
    write_config(tmp_path, {**TINY, **change})
    res = snakemake(tmp_path, "--cores", "1")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "config.yaml" in out
    for frag in fragments:
        assert frag in out, (frag, out[-2000:])
    assert not (tmp_path / "results").exists()


def test_missing_key_stops_before_any_job(tmp_path):
    """Without the defaults underneath (--replace-workflow-config), a config file must be whole."""
    cfg = dict(TINY)
    del cfg["methods"]
    write_config(tmp_path, cfg)
    res = snakemake(tmp_path, "--cores", "1", "--replace-workflow-config")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert out.count("missing required key methods") == 1, out[-2000:]
    assert not (tmp_path / "results").exists()


def test_a_grid_without_the_mge_plans_without_its_figure(tmp_path):
    write_config(tmp_path, {**TINY, "encodings": ["rolled", "rolled-channel"]})
    jobs = planned(tmp_path)
    assert jobs["encode"] == 2 * 8 and "graph_figure" not in jobs
    assert jobs["report"] == 1


# --------------------------------------------------------------------------- config layers
def _nets(counts: Counter[str]) -> int:
    return counts["mask"]


def test_command_line_overrides_layer_over_the_defaults(tmp_path):
    """`--config` and a second `--configfile` overlay the config the Snakemake way, with YAML
    types: 2 methods x 2 sparsities x 2 seeds + 2 dense = 10 networks in TINY."""
    write_config(tmp_path, TINY)
    assert _nets(planned(tmp_path)) == 10
    assert _nets(planned(tmp_path, "--config", "seeds=[0]")) == 2 * 2 + 1
    assert _nets(planned(tmp_path, "--config", "download=true", "dense_baseline=false")) == 8
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("sparsities: [0.6]\ntraining: {epochs: 2, milestones: [1]}\n")
    # `--configfile A B` overlays B on A on the defaults
    both = ("--configfile", str(tmp_path / "config.yaml"), str(overlay))
    assert _nets(planned(tmp_path, *both)) == 2 * 1 * 2 + 2
    # the issue's `--configfile config/config.yaml --configfile overlay.yaml`: a repeated flag
    # keeps its last value (Snakemake's argument parser), over the defaults: the paper grid
    # (3 data sets x 4 architectures x 7 methods x 3 seeds) at sparsity 0.6 plus 36 dense
    paper = ("--configfile", str(REPO / "config" / "config.yaml"), "--configfile", str(overlay))
    assert _nets(planned(tmp_path, *paper, "--config", "download=true")) == 3 * 4 * 7 * 3 + 36


def test_the_defaults_are_config_yaml_without_any_configfile(tmp_path):
    """No --configfile: the paper grid of config/config.yaml, and --config overrides it."""
    res = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n"]
        + ["--config", "download=true", "datasets=[cifar10]", "architectures=[conv6]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M))
    # 7 methods x 5 sparsities x 3 seeds + 3 dense baselines; one data job for CIFAR-10
    assert int(counts["train"]) == 7 * 5 * 3 + 3
    assert int(counts["data_cifar10"]) == 1


@pytest.mark.parametrize(
    ("args", "source", "fragment"),
    [
        (["--config", "download=maybe"], "--config download=maybe", "'maybe' is not of type"),
        (["--config", "sparsites=[0.5]"], "--config sparsites=[0.5]", "did you mean 'sparsities'"),
        ("overlay", "overlay.yaml", "training.momentum: 1.5 is out of range"),
    ],
)
def test_a_bad_override_fails_once_naming_its_source(tmp_path, args, source, fragment):
    write_config(tmp_path, TINY)
    if args == "overlay":
        (tmp_path / "overlay.yaml").write_text("training: {momentum: 1.5}\n")
        args = ["--configfile", str(tmp_path / "overlay.yaml")]
    res = snakemake(tmp_path, "-n", *args)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    lines = [line for line in out.splitlines() if fragment in line]
    assert len(lines) == 1, out[-2000:]
    assert source in lines[0] and "config.yaml" not in lines[0].replace("overlay.yaml", "")
    assert "Traceback" not in out and 'File "' not in out, out[-2000:]


# --------------------------------------------------------------------------- data-set nodes
NO_DATA = {
    **TINY,
    "datasets": ["cifar10", "cifar100"],
    "methods": ["snip", "erk"],
    "download": False,
    "data_root": "nodata",
}


def test_each_data_set_is_one_node(tmp_path):
    """Missing CIFAR: one data job per data set; the data-driven masks and every training wait
    for it, the data-free masks do not; digits (no files) has no node."""
    write_config(tmp_path, NO_DATA)
    jobs = planned(tmp_path)
    assert jobs["data_cifar10"] == jobs["data_cifar100"] == 1
    assert not any(
        r.startswith("data_") and r not in ("data_cifar10", "data_cifar100") for r in jobs
    )
    res = snakemake(tmp_path, "-n", "--dag")
    dag = res.stdout
    assert res.returncode == 0, res.stderr[-2000:]
    assert "data_cifar10" in dag
    write_config(tmp_path, TINY)
    assert not any(r.startswith("data_") for r in planned(tmp_path))


def test_missing_data_fails_once_per_data_set_with_its_message(tmp_path):
    cfg = {**NO_DATA, "methods": ["snip"], "sparsities": [0.9], "dense_baseline": False}
    write_config(tmp_path, cfg)
    targets = [
        f"results/{d}/resnet20/snip/s0.9/seed{s}/train.json"
        for d in ("cifar10", "cifar100")
        for s in (0, 1)
    ]
    res = snakemake(tmp_path, "--cores", "2", "--keep-going", "--show-failed-logs", *targets)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert out.count("Error in rule data_") == 2, out[-4000:]
    assert "Error in rule mask" not in out and "Error in rule train" not in out
    # the message of each failed job, on the console (not just a pointer at its log)
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        assert f"{name} not found: looked in nodata/{folder}" in out, out[-4000:]
    assert not (tmp_path / "results" / "cifar10" / "resnet20" / "snip").exists()


USER_GRID = {
    **TINY,
    "architectures": ["resnet20", "module:user_models:make", "torchvision:resnet18"],
    "model": {**TINY["model"], "kwargs": {"module:user_models:make": {"hidden": 3}}},
}


def test_users_module_and_torchvision_model_in_a_grid_plan_their_jobs(tmp_path):
    """A ``module:`` factory and a ``torchvision:`` name next to a bundled model: the dry run
    plans every stage per architecture, under the names' path slugs."""
    write_config(tmp_path, USER_GRID)
    res = snakemake(tmp_path, "-n")
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    text = res.stdout + res.stderr
    jobs = job_counts(text)
    nets = 2 * 2 * 2  # methods x sparsities x seeds, per architecture
    assert jobs["spec"] == 3
    assert jobs["mask"] == jobs["train"] == 3 * (nets + 2)  # + dense baselines
    assert jobs["encode"] == 3 * nets * 3
    for family in ("local", "neighbourhood", "strength", "global", "expansion", "ramanujan"):
        assert jobs[f"metrics_{family}"] == 3 * nets
    for arch in ("resnet20", "module__user_models__make", "torchvision__resnet18"):
        assert f"results/digits/{arch}/layers.json" in text
        assert f"results/digits/{arch}/snip/s0.9/seed1/graphs/rolled-channel.npz" in text
    assert "module:user_models" not in text.replace("arch=module__", "")  # paths use slugs


@pytest.mark.slow
def test_users_module_grid_runs_end_to_end(tmp_path):
    """The user's factory, importable from the working directory only (as for the CLI), runs
    through every stage with its config kwargs; artifacts carry the full name and the kwargs."""
    import json

    import pandas as pd

    shutil.copy(REPO / "tests" / "user_models.py", tmp_path / "user_models.py")
    cfg = {**USER_GRID, "architectures": ["module:user_models:make"]}
    write_config(tmp_path, cfg)
    res = snakemake(tmp_path, "--cores", "2")
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    r = tmp_path / "results"
    spec = json.loads((r / "digits" / "module__user_models__make" / "layers.json").read_text())
    assert spec["arch"] == "module:user_models:make"
    assert spec["provenance"]["params"]["model_kwargs"] == {"hidden": 3}
    # hidden=3 channels at 8x8, then the classifier from the 3 x 2 x 2 pooled map
    assert [b["shape"] for b in spec["blocks"]] == [[3, 8, 8], [3, 8, 8], [10]]
    nets = pd.read_csv(r / "tables" / "networks.csv")
    assert len(nets) == 8 and nets["dense_accuracy"].notna().all()
    mge = pd.read_csv(r / "tables" / "mge.csv")
    # MGE nodes: input 3*8*8 + conv 3*8*8 + 10 outputs
    assert len(mge) == 8 and (mge["nodes"] == 3 * 64 + 3 * 64 + 10).all()
    assert (r / "report.html").stat().st_size > 0
    assert (r / "analysis" / "regression.csv").stat().st_size > 0


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    """``snakemake -n --profile profiles/slurm`` on the paper config (plans ~14,000 jobs)."""
    work = tmp_path_factory.mktemp("paper")
    shutil.copy(REPO / "config" / "config.yaml", work / "config.yaml")
    res = snakemake(work, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res.stdout + res.stderr


def _job_resources(text: str) -> dict[str, list[dict[str, str]]]:
    """Per rule, the resources line of every planned job, parsed into dicts (its `threads:` line
    as the entry `threads`)."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    threads = "1"
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            rule, threads = m.group(1), "1"
            continue
        if rule and line.strip().startswith("threads:"):
            threads = line.strip()[len("threads:") :].strip()
        if rule and line.strip().startswith("resources:"):
            items = line.strip()[len("resources:") :].split(",")
            res = dict(item.strip().split("=", 1) for item in items if "=" in item)
            jobs.setdefault(rule, []).append({**res, "threads": threads})
            rule = None
    return jobs


@pytest.mark.slow
def test_paper_grid_plans_every_job_with_cluster_resources(paper_dry_run):
    """1,260 sparse trainings plus 36 dense baselines; GPUs only where they are used; memory of
    graph jobs scaled by the graph they will build."""
    counts = job_counts(paper_dry_run)
    assert counts["train"] == 1260 + 36
    assert counts["mask"] == 1260 + 36
    assert counts["encode"] == 1260 * 3
    assert counts["spec"] == 12
    for family in ("local", "neighbourhood", "strength", "global", "expansion", "ramanujan"):
        assert counts[f"metrics_{family}"] == 1260
    assert counts["tables"] == counts["analysis"] == counts["report"] == 1
    assert counts["data_cifar10"] == counts["data_cifar100"] == counts["data_tinyimagenet"] == 1

    # cluster submissions: one per network (mask + training), one per 10 networks' graphs; every
    # other job is local (data sets, layer specs, joins)
    groups = Counter(re.findall(r"Group job (\w+)", paper_dry_run))
    assert groups == Counter({"network": 1296, "graphs": 126})
    assert sum(groups.values()) <= 1500
    top_level = re.findall(r"^rule (\w+):$", paper_dry_run, re.M)  # jobs outside any group
    assert set(top_level) <= {"all", "spec", "tables", "analysis", "graph_figure", "report"} | {
        f"data_{d}" for d in ("cifar10", "cifar100", "tinyimagenet")
    }
    assert "partition" not in (REPO / "config" / "config.yaml").read_text()

    jobs = _job_resources(paper_dry_run)
    assert len(jobs["train"]) == 1296
    assert all(j["gpu"] == "1" and j["slurm_partition"] == "gpu" for j in jobs["train"])
    # CPUs per task come from the rules' threads (train_cpus for training); no rule or profile
    # default overrides them
    assert all(int(j["threads"]) == 4 and "cpus_per_task" not in j for j in jobs["train"])
    assert not any("cpus_per_task" in j for rule_jobs in jobs.values() for j in rule_jobs)
    # Tiny-ImageNet epochs are 100 over twice the images: longer runtime than CIFAR
    runtimes = {int(j["runtime"]) for j in jobs["train"]}
    assert min(runtimes) >= 10 and len(runtimes) > 1
    gpu_masks = [j for j in jobs["mask"] if j["gpu"] == "1"]
    assert len(gpu_masks) == 4 * 180  # snip, grasp, synflow, prospr
    assert all(j["slurm_partition"] == "gpu" for j in gpu_masks)
    for rule, rule_jobs in jobs.items():
        if rule not in ("train", "mask"):
            assert all(j.get("gpu", "0") == "0" for j in rule_jobs), rule
    # memory follows the graph: a 60%-sparse WRN MGE asks for more than a 98%-sparse ResNet-20
    enc = [int(j["mem_mb"]) for j in jobs["encode"]]
    assert max(enc) > 4 * min(enc)
    # global asks its resident rate, 12 MB per million edges (issue 29), on top of 500 MB
    met = [int(j["mem_mb"]) for j in jobs["metrics_global"]]
    assert max(met) > 3 * min(met)


@pytest.mark.parametrize("configfile", [None, "config/demo.yaml", "tiny"])
def test_lint_and_format(tmp_path, configfile):
    """`snakemake --lint` finds nothing on the paper config (the default: its data-set rules
    too), the demo config and a tiny grid; the Snakefiles are snakefmt-formatted."""
    args = []
    if configfile == "tiny":
        write_config(tmp_path, TINY)
        args = ["--configfile", str(tmp_path / "config.yaml")]
    elif configfile:
        args = ["--configfile", configfile]
    res = subprocess.run([SNAKEMAKE, "--lint", *args], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr, res.stdout + res.stderr
    snakefmt = str(Path(sys.executable).parent / "snakefmt")
    res = subprocess.run(
        [snakefmt, "--check", "Snakefile", "workflow/Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- a real run
#: a ``sitecustomize`` for the jobs of the finished run: when a rule's script ends, it records the
#: rule, its wildcards and every ``snntopo`` module in ``sys.modules`` (what the job really ran)
MODULE_TRACE_HOOK = """
import atexit, json, os, sys

def _record():
    main = sys.modules.get("__main__")
    job = getattr(main, "snakemake", None)
    if job is None:  # Snakemake itself, not a job's script
        return
    rec = {"rule": job.rule, "wildcards": dict(job.wildcards.items()),
           "modules": sorted(m for m in sys.modules if m.split(".")[0] == "snntopo")}
    with open(os.path.join(os.environ["SNNTOPO_MODULE_TRACE"], f"{os.getpid()}.json"), "w") as fh:
        json.dump(rec, fh)

atexit.register(_record)
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tiny")
    write_config(work, TINY)
    hook, trace = work / "hook", work / "module-trace"
    hook.mkdir()
    trace.mkdir()
    (hook / "sitecustomize.py").write_text(MODULE_TRACE_HOOK)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path, "SNNTOPO_MODULE_TRACE": str(trace)}
    res = snakemake(work, "--cores", "2", env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    return work


@pytest.mark.slow
def test_tiny_grid_runs_end_to_end(finished_run):
    r = finished_run / "results"
    for name in ("networks", "mge", "rolled", "rolled-channel", "ramanujan_layers"):
        assert (r / "tables" / f"{name}.csv").stat().st_size > 0
    for name in ("regression", "importance", "ranking", "ramanujan_density"):
        assert (r / "analysis" / f"{name}.csv").stat().st_size > 0
    for name in ("regression_r2", "importance", "ranking_tau", "ramanujan_density"):
        assert (r / "analysis" / "figures" / f"{name}.png").stat().st_size > 0
    assert "<img" in (r / "report.html").read_text()
    import pandas as pd

    nets = pd.read_csv(r / "tables" / "networks.csv")
    assert len(nets) == 2 * 2 * 2  # methods x sparsities x seeds
    assert nets["dense_accuracy"].notna().all()
    mge = pd.read_csv(r / "tables" / "mge.csv")
    assert len(mge) == len(nets) and (mge["edges"] > 0).all()
    # every metric is finite or NaN (null) with its reason recorded
    import json

    for path in r.rglob("metrics/*.json"):
        art = json.loads(path.read_text())
        for res in art["encodings"].values():
            reasons = res.get("nan_reasons") or {}
            for key, value in (res.get("network") or {}).items():
                assert value is not None or key.removesuffix("_norm") in reasons or key in reasons
            for row in res.get("layers") or []:
                for key, value in row.items():
                    name = f"{row['layer_name']}/{key}"
                    assert (
                        value is not None
                        or name in reasons
                        or name.removesuffix("_norm") in reasons
                    )


@pytest.mark.slow
def test_rerun_does_nothing_and_deleting_reruns_only_dependents(finished_run):
    assert planned(finished_run) == Counter()
    victim = next((finished_run / "results").rglob("metrics/strength.json"))
    victim.unlink()
    jobs = planned(finished_run)
    assert jobs == Counter(
        {"metrics_strength": 1, "tables": 1, "analysis": 1, "report": 1, "all": 1}
    ) or jobs == Counter({"metrics_strength": 1, "tables": 1, "analysis": 1, "report": 1})
    res = snakemake(finished_run, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert victim.exists()


@pytest.mark.slow
def test_adding_a_sparsity_plans_only_new_grid_points(finished_run):
    cfg = {**TINY, "sparsities": [0.6, 0.9, 0.95]}
    write_config(finished_run, cfg)
    try:
        jobs = planned(finished_run)
    finally:
        write_config(finished_run, TINY)
    new_nets = 2 * 1 * 2  # methods x new sparsity x seeds
    assert jobs["mask"] == jobs["train"] == new_nets
    assert jobs["encode"] == 3 * new_nets
    assert jobs["metrics_local"] == new_nets
    assert jobs["spec"] == 0
    assert jobs["tables"] == jobs["analysis"] == jobs["report"] == 1


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow and the package (to edit code without touching the checkout)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "rules", "workflow", "config", "report", "src"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / item)
    return dest


@contextlib.contextmanager
def using_copy(code: Path, workdir: Path, cfg: dict | None = None) -> Iterator[None]:
    """Run Snakemake on ``workdir`` with the workflow copy ``code``'s package first on the path and
    ``cfg`` as the config, both for the duration of the block only."""
    if cfg is not None:
        write_config(workdir, cfg)
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(code / "src")
    try:
        yield
    finally:
        if env_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_path
        write_config(workdir, TINY)


def planned_with(code: Path, workdir: Path, cfg: dict | None = None, *args: str) -> Counter[str]:
    """Jobs planned on ``workdir`` by the workflow copy ``code``, with ``cfg`` for this plan only."""
    with using_copy(code, workdir, cfg):
        jobs = planned(workdir, *args, snakefile=code / "Snakefile")
    jobs.pop("all", None)
    return jobs


def add_registry_line(init: Path, line: str) -> None:
    """Append one registration line (``REGISTRY.register(...)``) at the end of a registry module,
    which must already make that registry's calls."""
    call = line[: line.index("(") + 1]
    text = init.read_text()
    assert call in text, (init, call)
    init.write_text(text.rstrip() + "\n" + line + "\n")


NETS = 2 * 2 * 2  # methods x sparsities x seeds of TINY
FAMILY_JOBS = ("local", "neighbourhood", "strength", "global", "expansion", "ramanujan")


@pytest.mark.slow
def test_new_metric_family_is_one_module_and_one_line(finished_run, tmp_path):
    """A family module + one registry line: only its jobs and the joins are planned."""
    code = copy_workflow(tmp_path / "code")
    metrics = code / "src" / "snntopo" / "metrics"
    (metrics / "dummy.py").write_text(
        '"""A test family: the number of edges again."""\n\n\n'
        "def dummy(graph, params):\n"
        '    return {"dummy_edges": float(graph.n_edges)}\n'
    )
    add_registry_line(
        metrics / "__init__.py",
        'FAMILIES.register("dummy", "snntopo.metrics.dummy:dummy", kinds=("multipartite",))',
    )
    cfg = {**TINY, "metrics": {**TINY["metrics"], "families": [*FAMILY_JOBS, "dummy"]}}
    jobs = planned_with(code, finished_run, cfg)
    assert jobs == Counter({"metrics_dummy": NETS, "tables": 1, "analysis": 1, "report": 1})


@pytest.mark.slow
def test_new_pai_method_is_one_module_and_one_line(finished_run, tmp_path):
    """A PaI method module + one registry line: its masks, trainings, graphs and metrics are
    planned, a GPU is requested for it because its entry says so, nothing else reruns."""
    code = copy_workflow(tmp_path / "code")
    pai = code / "src" / "snntopo" / "pai"
    (pai / "halfrandom.py").write_text(
        '"""A test method: the uniform method, registered as data-driven."""\n\n'
        "from .uniform import compute\n\n"
        '__all__ = ["compute"]\n'
    )
    add_registry_line(
        pai / "__init__.py",
        'METHODS.register("halfrandom", "snntopo.pai.halfrandom:compute", needs_data=True, '
        "wants_gpu=True)",
    )
    cfg = {
        **TINY,
        "methods": [*TINY["methods"], "halfrandom"],
        "resources": {**TINY["resources"], "train_gpus": 1},
    }
    with using_copy(code, finished_run, cfg):
        res = snakemake(finished_run, "-n", "--rerun-triggers", "mtime", "input",
                        snakefile=code / "Snakefile")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = job_counts(res.stdout + res.stderr)
    new = 2 * 2  # sparsities x seeds
    assert jobs["mask"] == jobs["train"] == new
    assert jobs["encode"] == 3 * new
    assert all(jobs[f"metrics_{f}"] == new for f in FAMILY_JOBS)
    assert jobs["spec"] == 0
    assert jobs["tables"] == jobs["analysis"] == jobs["report"] == 1
    # its mask jobs ask for a GPU because its registry entry says so (same plan)
    masks = _job_resources(res.stdout + res.stderr)["mask"]
    assert len(masks) == new and all(j["gpu"] == "1" for j in masks)


@pytest.mark.slow
def test_new_encoding_is_one_module_and_one_line(finished_run, tmp_path):
    """An encoding module + one registry line: its graphs are built, every family that applies
    to its kind recomputes (a metric artifact covers all encodings of a network), its table is
    written; no mask, training or other graph reruns."""
    code = copy_workflow(tmp_path / "code")
    enc = code / "src" / "snntopo" / "encode"
    (enc / "rolled_again.py").write_text(
        '"""A test encoding: the rolled BGE under another name."""\n\n'
        "from .rolled import build\n\n"
        '__all__ = ["build"]\n'
    )
    add_registry_line(
        enc / "__init__.py",
        'ENCODINGS.register("rolled-again", "snntopo.encode.rolled_again:build", '
        'kind="bipartite", paper=None, edge_model="weights")',
    )
    cfg = {**TINY, "encodings": ["mge", "rolled", "rolled-channel", "rolled-again"]}
    jobs = planned_with(code, finished_run, cfg)
    assert jobs["encode"] == NETS
    assert "mask" not in jobs and "train" not in jobs and "spec" not in jobs
    assert all(jobs[f"metrics_{f}"] == NETS for f in FAMILY_JOBS)
    assert jobs["tables"] == jobs["analysis"] == jobs["report"] == 1


@pytest.mark.slow
def test_new_architecture_is_one_module_and_one_line(finished_run, tmp_path):
    """An architecture module + one registry line: its layer spec, masks, trainings, graphs
    and metrics are planned; the existing architecture's jobs are not."""
    code = copy_workflow(tmp_path / "code")
    models = code / "src" / "snntopo" / "models"
    (models / "tinynet.py").write_text(
        '"""A test architecture: two convolutions and a classifier."""\n\n'
        "from torch import nn\n\n\n"
        "def tinynet(num_classes, in_channels, input_size, width=1.0):\n"
        "    c = max(2, int(8 * width))\n"
        "    return nn.Sequential(\n"
        "        nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(),\n"
        "        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),\n"
        "        nn.Flatten(), nn.Linear(c * input_size * input_size, num_classes),\n"
        "    )\n"
    )
    add_registry_line(
        models / "__init__.py",
        'MODELS.register("tinynet", "snntopo.models.tinynet:tinynet", runtime_min_per_epoch=0.01)',
    )
    cfg = {**TINY, "architectures": ["resnet20", "tinynet"]}
    jobs = planned_with(code, finished_run, cfg)
    assert jobs["spec"] == 1
    assert jobs["mask"] == jobs["train"] == NETS + 2  # + the dense baselines of 2 seeds
    assert jobs["encode"] == 3 * NETS
    assert all(jobs[f"metrics_{f}"] == NETS for f in FAMILY_JOBS)


@pytest.mark.slow
def test_editing_a_module_reruns_only_the_jobs_that_run_it(finished_run, tmp_path):
    """Code-aware reruns: a code change in one metric family's module plans only that family's
    jobs plus the joins; one in the analysis plans only the analysis and the report; a docstring
    or comment edit plans nothing."""
    code = copy_workflow(tmp_path / "code")
    pkg = code / "src" / "snntopo"
    expansion = pkg / "metrics" / "expansion.py"
    original = expansion.read_text()
    expansion.write_text(original.replace('"""', '"""Edited docstring. ', 1) + "\n# a comment\n")
    assert planned_with(code, finished_run) == Counter()
    expansion.write_text(original + "\n_EDITED = True\n")
    assert planned_with(code, finished_run) == Counter(
        {"metrics_expansion": NETS, "tables": 1, "analysis": 1, "report": 1}
    )
    expansion.write_text(original)
    ranking = pkg / "analysis" / "ranking.py"
    ranking.write_text(ranking.read_text() + "\n_EDITED = True\n")
    assert planned_with(code, finished_run) == Counter({"analysis": 1, "report": 1})


#: modules a rule's job loads that are not the stage's code, and why they are not in its digest:
#: the root package (it holds only the version string, recorded in provenance), the job runner
#: that every rule script calls (``snntopo.jobs.run_job``: logging and one-line error messages)
#: and the thread cap the scripts set through it before the stage loads (``snntopo.threads``)
HARNESS_MODULES = {"snntopo", "snntopo.jobs", "snntopo.threads"}
#: planning and command-line modules: never executed by a stage, never in a stage's digest
PLANNING_MODULES = ("snntopo.workflow", "snntopo.config", "snntopo.overrides", "snntopo.jobs")


def _is_planning(module: str) -> bool:
    return module in PLANNING_MODULES or module.split(".")[:2] == ["snntopo", "cli"]


def _stage_of(rule: str, wildcards: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The stage and members a rule's job runs (as the rules pass them to ``stage_code``)."""
    if rule.startswith("metrics_"):
        return "metrics", {"family": rule.removeprefix("metrics_")}
    members = {
        "spec": ("dataset", "arch"),
        "mask": ("dataset", "arch", "method"),
        "train": ("dataset", "arch"),
        "encode": ("encoding",),
    }.get(rule, ())
    stage = {"graph_figure": "report"}.get(rule, rule)
    return stage, {k: wildcards[k] for k in members}


@pytest.mark.slow
def test_each_job_ran_only_modules_of_its_digest(finished_run):
    """The independent check of the code digests: every ``snntopo`` module a real job of the
    finished run had loaded when it ended is in its stage's digest closure (lazy registry exports
    included), and no planning or command-line module is in any closure."""
    import json

    from snntopo.codedigest import stage_closure

    records = [json.loads(p.read_text()) for p in (finished_run / "module-trace").glob("*.json")]
    rules = {r["rule"] for r in records}
    assert {"spec", "mask", "train", "encode", "tables", "analysis", "report"} <= rules, rules
    assert {f"metrics_{f}" for f in FAMILY_JOBS} <= rules, rules
    assert len(records) == 97  # every job of the tiny grid (98 with ``all``, which runs no script)
    for rec in records:
        stage, members = _stage_of(rec["rule"], rec["wildcards"])
        digested = set(stage_closure(stage, **members))
        ran = set(rec["modules"]) - HARNESS_MODULES
        assert ran <= digested, (rec["rule"], rec["wildcards"], sorted(ran - digested))
        assert not [m for m in digested if _is_planning(m)], (rec["rule"], sorted(digested))
        assert not [m for m in ran if _is_planning(m)], (rec["rule"], sorted(ran))
    # the modules the issue found missing are digested where they run
    train = set(stage_closure("train", dataset="digits", arch="resnet20"))
    assert {"snntopo.train.loop", "snntopo.data.loaders", "snntopo.models.build"} <= train
    assert "snntopo.pai.compute" in stage_closure("mask", arch="resnet20", method="erk")


def _append_code(path: Path) -> str:
    original = path.read_text()
    path.write_text(original + "\n_EDITED = True\n")
    return original


#: jobs of the finished tiny grid: 8 sparse networks + 2 dense baselines, 3 encodings
_DOWNSTREAM_OF_MASKS = Counter(
    {
        "mask": NETS + 2,
        "train": NETS + 2,
        "encode": 3 * NETS,
        "graph_figure": 1,
        **{f"metrics_{f}": NETS for f in FAMILY_JOBS},
        "tables": 1,
        "analysis": 1,
        "report": 1,
    }
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "expected"),
    [
        # the training loop: every training and the joins that read train.json
        ("train/loop.py", Counter({"train": NETS + 2, "tables": 1, "analysis": 1, "report": 1})),
        # the planner: nothing (its code is in no job's digest)
        ("workflow.py", Counter()),
        ("config.py", Counter()),
        # one metric family: its jobs and the joins
        (
            "metrics/strength.py",
            Counter({"metrics_strength": NETS, "tables": 1, "analysis": 1, "report": 1}),
        ),  # fmt: skip
        # PaI scoring and the data loaders (read by every mask job): the masks and all after them
        ("pai/compute.py", _DOWNSTREAM_OF_MASKS),
        ("data/loaders.py", _DOWNSTREAM_OF_MASKS),
        # the model builder: the layer spec too
        ("models/build.py", _DOWNSTREAM_OF_MASKS + Counter({"spec": 1})),
    ],
)
def test_a_code_line_plans_exactly_the_jobs_that_run_it(finished_run, tmp_path, module, expected):
    """A line of code appended to one module of a finished run's package plans exactly the jobs
    whose stage executes that module, and what depends on their outputs."""
    code = copy_workflow(tmp_path / "code")
    _append_code(code / "src" / "snntopo" / module)
    assert planned_with(code, finished_run) == expected


@pytest.mark.slow
def test_killed_training_job_resumes(tmp_path):
    # two sparsities: the config check wants a grid the analysis can cross-validate; only the
    # 0.6 network is built (the target below)
    cfg = {**TINY, "methods": ["erk"], "sparsities": [0.6, 0.9], "seeds": [0]}
    cfg["dense_baseline"] = False
    cfg["training"] = {**TINY["training"], "epochs": 40, "batch_size": 16, "milestones": [30]}
    write_config(tmp_path, cfg)
    target = "results/digits/resnet20/erk/s0.6/seed0/train.json"
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
        target,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    ckpt = tmp_path / "results/digits/resnet20/erk/s0.6/seed0/.train/checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.5)
    assert ckpt.exists(), "no checkpoint appeared"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / target).exists()
    # a killed Snakemake leaves its lock behind: unlock, then rerun the incomplete job
    subprocess.run(cmd + ["--unlock"], capture_output=True, text=True, timeout=300, check=True)
    res = subprocess.run(cmd + ["--rerun-incomplete"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    log = (tmp_path / "results/logs/train/digits/resnet20/erk/s0.6/seed0.log").read_text()
    assert re.search(r"resum\w* from epoch \d+", log), log[-2000:]
    assert (tmp_path / target).exists()

    # the same job, never interrupted, ends with the same accuracy and the same weights
    fresh = tmp_path / "uninterrupted"
    write_config(fresh, cfg)
    whole = [*cmd[:4], str(fresh), "--configfile", str(fresh / "config.yaml"), *cmd[7:]]
    res = subprocess.run(whole, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    import json

    from safetensors.numpy import load_file

    resumed = json.loads((tmp_path / target).read_text())
    uninterrupted = json.loads((fresh / target).read_text())
    assert resumed["accuracy"] == uninterrupted["accuracy"]
    model = "results/digits/resnet20/erk/s0.6/seed0/model.safetensors"
    a, b = load_file(str(tmp_path / model)), load_file(str(fresh / model))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def _screenshot(html: Path, png: Path) -> None:
    """Render a page with headless Chromium (Debian's package) and check it is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    with_profile = png.parent / "chromium-profile"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={with_profile}",
        "--virtual-time-budget=8000",
        "--window-size=1280,1600",
        f"--screenshot={png}",
        html.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert png.exists() and png.stat().st_size > 0
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    assert pixels.std() > 0.05, "the rendered page is blank"


@pytest.mark.slow
def test_reports_render_in_a_browser(finished_run, tmp_path):
    report = tmp_path / "snakemake-report.html"
    res = snakemake(finished_run, "--report", str(report))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    text = report.read_text(errors="replace")
    for figure in ("regression_r2", "importance", "ranking_tau", "mge"):
        assert figure in text, figure
    # every figure and table its own caption, and the workflow description page
    for item in (
        "How well does each feature set predict accuracy?",
        "Which MGE metrics matter?",
        "Does the topology rank the PaI methods correctly?",
        "Are the Ramanujan metrics more than layer density?",
        "What an MGE looks like.",
        "Test accuracy of the PaI methods side by side.",
        "Regression scores.",
        "Ranking agreement.",
        "Protocol",
    ):
        assert item in text, item
    for table in ("pai_accuracy.csv", "regression.csv", "ranking_summary.csv"):
        assert table in text, table
    # nothing the workflow writes under results/ goes undeclared
    res = snakemake(finished_run, "--list-untracked")
    assert res.returncode == 0, res.stderr[-2000:]
    listed = [
        line.strip()
        for line in (res.stdout + res.stderr).splitlines()
        if line.strip().startswith("results/")
    ]
    # benchmark files included: each rule also names its benchmark as a log (rules/common.smk)
    assert listed == [], listed
    # the hand-made page, copied alone elsewhere, still shows its images
    copied = tmp_path / "copied" / "report.html"
    copied.parent.mkdir()
    shutil.copy(finished_run / "results" / "report.html", copied)
    assert "data:image/png;base64," in copied.read_text()
    shots = Path(os.environ.get("SNNTOPO_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    _screenshot(copied, shots / "report.png")
    _screenshot(report, shots / "snakemake-report.png")
