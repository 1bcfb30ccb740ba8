"""``snntopo plan``: the price of a config before launch. Its job counts and requests are checked
against Snakemake's own dry run of the same config and profile, its totals against hand counts on a
tiny config, and it must not import torch and must price the paper grid in seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from snntopo.plan import is_local_rule, load_profile, load_workflow_config, make_plan

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SNNTOPO = str(Path(sys.executable).parent / "snntopo")
SLURM = REPO / "profiles" / "slurm"

#: a grid small enough to count by hand (see test_hand_counted_totals)
TINY = {
    "datasets": ["digits"],
    "architectures": ["resnet20"],
    "methods": ["erk", "snip"],
    "sparsities": [0.9],
    "seeds": [0],
    "dense_baseline": False,
    "encodings": ["rolled"],
    "metrics": {"families": ["strength", "ramanujan"]},
    "training": {"epochs": 2},
    "analysis": {"n_splits": 2},
    "resources": {"train_gpus": 2, "train_cpus": 3, "train_mem_mb": 1000},
}


def _write(path: Path, cfg: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _dry_run_jobs(text: str) -> list[tuple[str, int, int, int, int]]:
    """(rule, threads, mem_mb, runtime, gpu) of every job a dry run prints (threads are printed
    only when above 1; a job without a ``gpu`` resource asks for none)."""
    jobs = []
    rule, threads = None, 1
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"^(?:local)?rule (\w+):$", s)
        if m:
            rule, threads = m[1], 1
        elif rule and s.startswith("threads:"):
            threads = int(s.split(":", 1)[1])
        elif rule and s.startswith("resources:"):
            res = dict(
                i.strip().split("=", 1) for i in s[len("resources:") :].split(",") if "=" in i
            )
            jobs.append(
                (
                    rule,
                    threads,
                    int(res.get("mem_mb", 0)),  # only `all` may lack them (no default-resources)
                    int(res.get("runtime", 0)),
                    int(res.get("gpu", 0)),
                )
            )
            rule = None
    return jobs


def _job_stats(text: str) -> Counter[str]:
    """Jobs per rule in the dry run's job-stats table."""
    table = text.split("Job stats:", 1)[1]
    counts: Counter[str] = Counter()
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m[1] != "total":
            counts[m[1]] = int(m[2])
    return counts


#: a profile that overrides requests the way sites do (units included), caps cores, batches more
CUSTOM_PROFILE = """executor: slurm
jobs: 10
cores: 4
group-components: [network=2, graphs=4]
set-resources:
  train: {runtime: 2h, mem: 3G}
  encode: {mem_mb: 1500}
set-threads: [train=3]
"""


@pytest.mark.workflow
@pytest.mark.parametrize("profile", ["slurm", "custom"])
def test_plan_equals_the_dry_run_of_the_demo(tmp_path, profile):
    """Same jobs per rule, same requests job by job, same GPU-hours and cluster submissions as
    ``snakemake -n --profile ...`` on the demo config (with GPUs, so GPU-hours count)."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    demo["resources"]["train_gpus"] = 1
    demo["resources"]["train_cpus"] = 2
    config = _write(tmp_path / "work" / "config.yaml", demo)
    prof = SLURM
    if profile == "custom":
        prof = tmp_path / "profile"
        prof.mkdir()
        (prof / "config.yaml").write_text(CUSTOM_PROFILE)
    res = subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "--directory", str(config.parent)]
        + ["--configfile", str(config), "--profile", str(prof)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    text = res.stdout + res.stderr

    plan = make_plan(load_workflow_config([config]), load_profile(prof))
    assert Counter(j.rule for j in plan.jobs) == _job_stats(text)

    dry = [j for j in _dry_run_jobs(text) if j[0] != "all"]
    mine = [(j.rule, j.threads, j.mem_mb, j.runtime, j.gpu) for j in plan.jobs if j.rule != "all"]
    assert Counter(mine) == Counter(dry)
    if profile == "custom":  # the overrides arrived (and the check above compared them)
        assert {(t, m, r) for rule, t, m, r, _ in dry if rule == "train"} == {(3, 3000, 120)}
    gpu_minutes = sum(gpu * runtime for _, _, _, runtime, gpu in dry)
    assert gpu_minutes > 0
    assert plan.gpu_hours == pytest.approx(gpu_minutes / 60)
    assert plan.cpu_hours == pytest.approx(sum(t * r for _, t, _, r, _ in dry) / 60)

    # one cluster submission per group job the dry run prints; the jobs outside a group are the
    # ones the plan runs on the submitting machine
    groups = Counter(re.findall(r"Group job (\w+)", text))
    assert plan.submissions == groups
    top = re.findall(r"^(?:local)?rule (\w+):$", text, re.M)
    assert top and all(is_local_rule(r) for r in top)
    assert Counter(top) == Counter(j.rule for j in plan.jobs if is_local_rule(j.rule))


def test_hand_counted_totals(tmp_path):
    """15 jobs, counted by hand: 1 spec, 2 masks (erk 15 min; snip 60 min on the GPUs), 2
    trainings (2 epochs: the 10-minute floor, 2 GPUs, 3 threads), 2 rolled encodings (30 min), 2 x
    2 metric jobs (60 min), tables (10), analysis (30), report (5), all."""
    cfg = load_workflow_config([_write(tmp_path / "tiny.yaml", TINY)])
    plan = make_plan(cfg, load_profile(SLURM), mem_limit_mb=10**6)
    assert Counter(j.rule for j in plan.jobs) == {
        "spec": 1, "mask": 2, "train": 2, "encode": 2, "metrics_strength": 2,
        "metrics_ramanujan": 2, "tables": 1, "analysis": 1, "report": 1, "all": 1,
    }  # fmt: skip
    # GPU minutes: 2 trainings x 10 min x 2 GPUs + snip's mask 60 min x 2 GPUs = 160
    assert plan.gpu_hours == pytest.approx(160 / 60)
    # thread minutes: spec 10, masks 15 + 60, trainings 2 x 3 x 10, encodings 2 x 30,
    # strength 2 x 60, ramanujan 2 x 60, tables 10, analysis 30, report 5 = 490
    assert plan.cpu_hours == pytest.approx(490 / 60)
    # one submission per network (2), both networks' graph jobs in one (10 per submission)
    assert plan.submissions == {"network": 2, "graphs": 1}
    # two cores: a training's 3 threads become 2 (as snakemake --cores 2 lowers them)
    assert make_plan(cfg, load_profile(SLURM), cores=2).cpu_hours == pytest.approx(470 / 60)
    # without a cluster executor nothing is submitted
    assert make_plan(cfg, None, cores=8).submissions == {}
    assert not plan.too_big()


def test_jobs_that_cannot_fit_are_named(tmp_path):
    cfg = load_workflow_config([_write(tmp_path / "tiny.yaml", TINY)])
    plan = make_plan(cfg, load_profile(SLURM), mem_limit_mb=1500)
    # the masks (erk 2000 MB, snip 4000 MB), the spec and the joins of 2000 MB and more exceed
    # 1500 MB; the trainings (1000 MB), the report (1000 MB) and the tiny graphs' jobs (~500 MB) fit
    assert Counter(j.rule for j in plan.too_big()) == {
        "mask": 2,
        "spec": 1,
        "tables": 1,
        "analysis": 1,
    }
    res = subprocess.run(
        [SNNTOPO, "plan", "--configfile", str(tmp_path / "tiny.yaml"), "--mem-limit-mb", "1500"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "5 jobs cannot fit" in res.stdout
    assert (
        "mask: 2 jobs ask for more, up to 4,000 MB (digits/resnet20/snip/s0.9/seed0)" in res.stdout
    )


def _no_torch_path(tmp_path: Path) -> str:
    for name in ("torch", "torchvision"):
        pkg = tmp_path / "blocked" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f'raise ImportError("{name} imported while planning")\n')
    return os.pathsep.join([str(tmp_path / "blocked"), str(REPO / "src")])


def test_paper_grid_priced_in_seconds_without_torch(tmp_path):
    env = {**os.environ, "PYTHONPATH": _no_torch_path(tmp_path)}
    start = time.perf_counter()
    res = subprocess.run(
        [SNNTOPO, "plan", "--configfile", str(REPO / "config" / "config.yaml")]
        + ["--profile", str(SLURM)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stderr[-3000:]
    assert elapsed < 60, elapsed
    out = res.stdout
    # the paper grid's counts (as its dry run has them, tests/test_workflow.py): 1,260 sparse
    # networks + 36 dense, 3 encodings, 1,422 submissions
    assert re.search(r"^train\s+1,296\s", out, re.M)
    assert re.search(r"^encode\s+3,780\s", out, re.M)
    assert "Cluster submissions (slurm): 1,422 = 1,296 network" in out
    gpu = float(re.search(r"GPU-hours: ([\d,.]+)", out)[1].replace(",", ""))
    cpu = float(re.search(r"CPU-hours: ([\d,.]+)", out)[1].replace(",", ""))
    assert gpu > 2000 and cpu > gpu
    assert "Memory limit: unknown for a cluster" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--configfile", "nope.yaml"], "--configfile nope.yaml: no such file"),
        (["--profile", "nowhere"], "profile nowhere: no config.yaml there"),
        (["--config", "seeds"], "expected key=value"),
        (["--config", "sparsities=[1.5]"], "sparsities"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, fragment):
    res = subprocess.run([SNNTOPO, "plan", *args], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert fragment in res.stderr
    assert res.stdout == ""


def test_configfiles_and_config_layer_like_snakemake(tmp_path):
    """``--configfile a b`` (b over a over the defaults) and ``--config key=value`` read as YAML:
    two seeds double the tiny grid's 2 networks, and its 2 network submissions."""
    tiny = _write(tmp_path / "tiny.yaml", TINY)
    over = _write(tmp_path / "over.yaml", {"analysis": {"n_splits": 3}, "sparsities": [0.8, 0.9]})
    res = subprocess.run(
        [SNNTOPO, "plan", "--configfile", str(tiny), str(over), "--profile", str(SLURM)]
        + ["--config", "seeds=[0, 1]", "dense_baseline=true"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    # 2 methods x 2 sparsities x 2 seeds + 2 dense = 10 networks: 10 masks, 10 network submissions
    assert re.search(r"^mask\s+10\s", res.stdout, re.M)
    assert re.search(r"^encode\s+8\s", res.stdout, re.M)  # sparse networks x 1 encoding
    assert "Cluster submissions (slurm): 11 = 10 network" in res.stdout


def test_local_rules_and_groups_are_the_workflows():
    """The plan's local rules are the rules that say ``localrule: True`` (the data rules, made in
    a loop, are local too), and its groups the rules' ``group:`` directives."""
    from snntopo.plan import LOCAL_RULES, RULE_GROUPS

    local = set()
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        for m in re.finditer(r"^rule (\w+):\n((?:(?!^rule ).*\n)*)", path.read_text(), re.M):
            if re.search(r"^\s+localrule: True$", m[2], re.M):
                local.add(m[1])
    assert local == LOCAL_RULES
    assert re.search(r"^\s+localrule: True$", (REPO / "rules" / "data.smk").read_text(), re.M)
    groups = {}
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        for m in re.finditer(
            r"^rule (\w+):\n(?:(?!^rule ).*\n)*?\s+group:\n\s+\"(\w+)\"", text, re.M
        ):
            groups[m[1]] = m[2]
    assert groups == RULE_GROUPS
    metrics = (REPO / "rules" / "metrics.smk").read_text()
    assert re.search(r"group:\n\s+\"graphs\"", metrics)  # the generated metrics_<family> rules
