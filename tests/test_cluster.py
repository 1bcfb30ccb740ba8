"""From a laptop to a cluster: config layers and their error sources, the device check of GPU jobs,
the self-contained report page, the SLURM submissions (a fake ``sbatch`` records what the
Snakemake SLURM plugin really submits) and a non-editable install run from another directory."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from snntopo.config import check_config
from snntopo.errors import ConfigError, DeviceError
from snntopo.overrides import Layer, command_line_layer, merge, source_of, yaml_typed

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- config layers
@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        ("true", True),
        ("False", False),
        ("0.9", 0.9),
        ("3", 3),
        ("cifar10", "cifar10"),
        ("a: b", "a: b"),  # not a scalar: stays the string the user typed
        (["0", "1"], [0, 1]),
        ({"epochs": "2", "amp": "auto"}, {"epochs": 2, "amp": "auto"}),
    ],
)
def test_command_line_values_are_typed_as_yaml_reads_them(raw, typed):
    assert yaml_typed(raw) == typed


def test_layers_merge_mappings_and_replace_everything_else():
    a = Layer("a.yaml", {"seeds": [0, 1, 2], "training": {"epochs": 160, "lr": 0.1}})
    b = Layer("b.yaml", {"seeds": [0], "training": {"epochs": 10}})
    c = command_line_layer({"download": "true"})
    assert merge([a, b, c]) == {
        "seeds": [0],
        "training": {"epochs": 10, "lr": 0.1},
        "download": True,
    }
    layers = [a, b, c]
    assert source_of(layers, ["training", "lr"]) == "a.yaml"
    assert source_of(layers, ["training", "epochs"]) == "b.yaml"
    assert source_of(layers, ["seeds", 0]) == "b.yaml"
    assert source_of(layers, ["download"]) == "--config download=true"


def test_a_config_error_names_the_layer_that_set_the_value():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    layers = [
        Layer("config/config.yaml", base),
        Layer("overlay.yaml", {"training": {"momentum": 1.5}}),
        command_line_layer({"download": "maybe", "sparsites": ["0.5"]}),
    ]
    with pytest.raises(ConfigError) as err:
        check_config(merge(layers), source=lambda path: source_of(layers, path))
    lines = str(err.value).splitlines()
    assert any(line.startswith("--config download=maybe: download: 'maybe'") for line in lines), (
        lines
    )
    assert any(line.startswith("--config sparsites=") and "sparsities" in line for line in lines)
    # with a valid download and key, the bad momentum is blamed on the overlay
    layers[2] = command_line_layer({"download": "true"})
    with pytest.raises(ConfigError) as err:
        check_config(merge(layers), source=lambda path: source_of(layers, path))
    assert str(err.value).startswith("overlay.yaml: training"), str(err.value)


# --------------------------------------------------------------------------- device check
def test_a_gpu_job_without_cuda_stops_unless_cpu_is_asked_for(monkeypatch, caplog):
    import torch

    from snntopo.train import job_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"given 1 GPU.*CUDA is not available.*device: cpu"):
        job_device("auto", gpus=1)
    with caplog.at_level(logging.INFO, logger="snntopo.device"):
        assert job_device("cpu", gpus=1).type == "cpu"  # the opt-in: warned, not stopped
        assert job_device("auto", gpus=0).type == "cpu"
    text = caplog.text
    assert "device: cpu although this job holds 1 GPU" in text
    assert "device: cpu (auto: CUDA is not available)" in text


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the no-CUDA path of a GPU job"
)
def test_the_train_rule_script_stops_a_gpu_job_without_cuda(tmp_path):
    """The real job path (stage function under run_job, as the rule's script runs it): one line
    in the log naming the problem and the fix, exit status 1, nothing written."""
    from snntopo.jobs import run_job
    from snntopo.stages.train import train_network
    from snntopo.workflow import job_from_config

    job = job_from_config(
        check_config(
            {
                "datasets": ["digits"],
                "architectures": ["resnet20"],
                "methods": ["erk"],
                "sparsities": [0.9],
                "seeds": [0],
                "model": {"width": 0.25, "input_size": {"digits": 8}},
                "training": {"epochs": 1, "milestones": [1]},
            },
            grid=False,  # one network, no analysis
        ),
        "digits",
        "resnet20",
    )
    log = tmp_path / "train.log"
    with pytest.raises(SystemExit) as stop:
        run_job(
            train_network,
            str(log),
            params=job.params("train"),
            mask_path=None,
            out_model=str(tmp_path / "model.safetensors"),
            out_summary=str(tmp_path / "train.json"),
            checkpoint=str(tmp_path / "checkpoint.pt"),
            gpus=1,
        )
    assert stop.value.code == 1
    text = log.read_text()
    assert "DeviceError: this job was given 1 GPU(s)" in text and "Traceback" not in text
    assert not (tmp_path / "train.json").exists() and not (tmp_path / "model.safetensors").exists()


# --------------------------------------------------------------------------- report page
def test_report_page_embeds_its_images_and_survives_a_copy(tmp_path):
    """The page holds its images as data URIs: copied alone elsewhere it still shows them."""
    import pandas as pd

    from snntopo.stages.report import make_report

    png = tmp_path / "run" / "analysis" / "figures" / "regression_r2.png"
    png.parent.mkdir(parents=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(png)
    plt.close(fig)
    rows = [
        {"dataset": "d", "arch": "a", "method": m, "sparsity": s, "seed": k, "accuracy": acc}
        for m, s, k, acc in [("erk", 0.9, 0, 0.5), ("erk", 0.9, 1, 0.7), ("snip", 0.9, 0, 0.6)]
    ]
    networks = tmp_path / "run" / "tables" / "networks.csv"
    networks.parent.mkdir()
    pd.DataFrame(rows).assign(dense_accuracy=0.9).to_csv(networks, index=False)
    out = tmp_path / "run" / "report.html"
    acc_csv = tmp_path / "run" / "tables" / "pai_accuracy.csv"
    summary = tmp_path / "run" / "analysis" / "summary.html"
    make_report(
        str(summary), [str(png)], [], str(networks), str(out), {"seeds": [0, 1]}, str(acc_csv)
    )
    copied = tmp_path / "elsewhere" / "report.html"
    copied.parent.mkdir()
    copied.write_bytes(out.read_bytes())
    png.unlink()
    html = copied.read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == 1 and base64.b64decode(uris[0]).startswith(b"\x89PNG")
    assert 'href="analysis/summary.html"' in html
    # erk at 0.9: mean of 0.5 and 0.7 = 0.600, sample std 0.141; dense 0.900
    table = pd.read_csv(acc_csv)
    erk = table[table["method"] == "erk"].iloc[0]
    assert erk["s=0.9"] == "0.600 ± 0.141" and erk["dense"] == 0.9


# --------------------------------------------------------------------------- SLURM submissions
FAKE = {
    # sbatch records its arguments and answers with a job id; the account/partition queries of
    # the plugin get a plausible answer; status queries say nothing (the jobs never "finish")
    "sbatch": 'echo "$@" >> "$FAKE_SLURM_LOG"; echo 4242',
    "sacctmgr": "echo acct",
    "sshare": "echo acct",
    "sinfo": 'printf "PARTITION\\ncpu*\\ngpu\\n"',
    "sacct": "exit 0",
    "squeue": "exit 0",
    "scontrol": "exit 1",
    "scancel": "exit 0",
}


SLURM_GRID = {
    "datasets": ["digits"],
    "architectures": ["resnet20"],
    "methods": ["erk", "snip"],
    "sparsities": [0.9],
    "seeds": [0],
    "dense_baseline": False,
    "model": {"width": 0.25, "input_size": {"digits": 8}},
    "training": {"epochs": 2, "milestones": [1], "num_workers": 0},
    "resources": {"train_gpus": 1, "train_cpus": 3, "train_mem_mb": 3000},
    # two configurations: the analysis' folds must not outnumber them (config check)
    "analysis": {"n_splits": 2},
}


def _profile_with(tmp_path: Path, uncomment: dict[str, str]) -> Path:
    """A copy of profiles/slurm whose commented `key: value` lines named in ``uncomment`` (key ->
    value as written in the comment) are switched on, as a user editing the profile would."""
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    for key, value in uncomment.items():
        pattern = rf"^(\s*)# {key}: {re.escape(value)}(\s|$)"
        assert re.search(pattern, text, re.M), f"the profile documents no `# {key}: {value}`"
        text = re.sub(pattern, rf"\1{key}: {value}\2", text, count=1, flags=re.M)
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(text)
    return profile


def _sbatch_calls(
    tmp_path: Path, profile: Path, targets: list[str], n: int, *extra: str
) -> list[str]:
    """Run Snakemake with the real SLURM plugin behind a fake sbatch until ``n`` submissions are
    recorded (or 240 s pass); the recorded sbatch argument lines."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in FAKE.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SLURM_GRID))
    log = tmp_path / "sbatch.log"
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "FAKE_SLURM_LOG": str(log),
        "PYTHONPATH": str(REPO / "src"),
    }
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    cmd += ["--configfile", str(tmp_path / "config.yaml"), "--profile", str(profile)]
    proc = subprocess.Popen(
        [*cmd, *targets, *extra],  # (targets first: some options take several values)
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while (
            time.time() < deadline
            and proc.poll() is None
            and (not log.exists() or len(log.read_text().splitlines()) < n)
        ):
            time.sleep(1)
        if proc.poll() is not None and not log.exists():  # Snakemake stopped by itself
            pytest.fail(proc.stdout.read().decode(errors="replace")[-3000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
    return log.read_text().splitlines() if log.exists() else []


def _cpus_and_cores(call: str) -> tuple[int, int]:
    """`--cpus-per-task` of the submission and `--cores` of the Snakemake it runs."""
    cpus = int(re.search(r"--cpus-per-task=(\d+)", call).group(1))
    cores = int(re.search(r"--wrap=.* --cores (\d+) ", call).group(1))
    return cpus, cores


@pytest.mark.workflow
@pytest.mark.slow
def test_slurm_submissions_carry_the_profile_and_rule_resources(tmp_path):
    """Through the real SLURM plugin with a fake sbatch: one submission per network (mask +
    training), on the profile's GPU partition and QOS, with the GPU, memory and runtime of the
    rules, CPUs from the training's threads (the same number as the `--cores` the submission
    runs its jobs with), and no partition taken from the workflow config."""
    profile = _profile_with(tmp_path, {"qos": "long"})
    targets = [f"results/digits/resnet20/{m}/s0.9/seed0/train.json" for m in ("erk", "snip")]
    # `cores` = resources.train_cpus, as the profile says to keep it
    calls = _sbatch_calls(tmp_path, profile, targets, 2, "--cores", "3")
    assert len(calls) >= 2, calls  # (the fake status query makes the plugin resubmit later)
    flags = {}
    for call in calls:
        assert "--comment rule_network_mask_train" in call  # the group, not single rules
        assert " -p gpu " in call and "--gpus=1" in call
        assert " --qos=long " in call  # the plugin's qos resource, set for `train` in the profile
        assert _cpus_and_cores(call) == (3, 3)  # train_cpus threads; the submission's --cores
        flags[re.search(r"--target-jobs (.*?) --", call).group(1).count("erk") > 0] = (
            int(re.search(r" -t (\d+)", call).group(1)),
            int(re.search(r" --mem (\d+)", call).group(1)),
        )
    # by hand from the rules: a mask job asks for 15 min / 2000 MB (data-free ERK) or
    # 60 min / 4000 MB (SNIP wants a GPU), training for 10 min (the minimum) and train_mem_mb 3000;
    # one submission runs them one after the other: runtimes add up, memory is the larger one
    assert flags == {True: (15 + 10, 3000), False: (60 + 10, 4000)}


@pytest.mark.workflow
@pytest.mark.slow
def test_a_graphs_submission_asks_for_the_cores_it_runs_with(tmp_path):
    """The encodings and metrics of both networks (2 x (3 + 6) = 18 jobs of 1 or 2 threads, one
    "graphs" submission): `--cpus-per-task` is the `--cores` its Snakemake runs them with (the
    old profile default `cpus_per_task: 1` made it ask for 6 and run with 8); the CPU partition,
    no QOS where the profile sets none."""
    profile = _profile_with(tmp_path, {})
    # the networks' masks and layer specs exist (the graphs need nothing else), older first
    net = tmp_path / "results" / "digits" / "resnet20"
    net.mkdir(parents=True)
    (net / "layers.json").write_text("{}")
    time.sleep(1.1)
    targets = []
    for method in ("erk", "snip"):
        d = net / method / "s0.9" / "seed0"
        d.mkdir(parents=True)
        for name in ("mask.safetensors", "init.safetensors"):
            (d / name).write_bytes(b"x")
        families = ("local", "neighbourhood", "strength", "global", "expansion", "ramanujan")
        targets += [str((d / "metrics" / f"{f}.json").relative_to(tmp_path)) for f in families]
    calls = _sbatch_calls(tmp_path, profile, targets, 1, "--rerun-triggers", "mtime")
    assert calls, "no submission"
    call = calls[0]
    assert "--comment rule_graphs_" in call and " -p cpu " in call
    assert "--qos" not in call and "--gpus" not in call
    jobs = re.search(r"--target-jobs (.*?) --", call).group(1)
    assert jobs.count("'encode:") == 6 and jobs.count("'metrics_") == 12
    assert _cpus_and_cores(call) == (4, 4)  # the profile's cores: 4, filled by its jobs


def test_the_profile_uses_current_slurm_plugin_keys_only():
    """`slurm_extra` with options the plugin manages (--qos, --cpus-per-task, ...) is rejected by
    snakemake-executor-plugin-slurm; the profile and docs use its resources instead, and nothing
    overrides the rules' threads with a fixed cpus_per_task."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    docs = (REPO / "docs" / "cluster.md").read_text()
    assert not re.search(r"slurm_extra:\s*[\"']?--qos", text + docs)
    for where in [profile.get("default-resources") or {}, *profile["set-resources"].values()]:
        assert "cpus_per_task" not in (where or {}) and "slurm_extra" not in (where or {})
    assert re.search(r"^\s*# qos: ", text, re.M)  # documented, off by default


# --------------------------------------------------------------------------- packaging
@pytest.mark.slow
def test_a_non_editable_install_runs_from_another_directory(tmp_path):
    """`pip install .` (no deps: the test's interpreter provides them) into a fresh venv, then
    `snntopo --help` and `snntopo analyze` on the paper's tables from an unrelated directory."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the test interpreter's packages (torch, numpy, ...) without its editable snntopo
    pth = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (pth / "zz_parent_site.pth").write_text(site + "\n")
    res = subprocess.run(
        # build isolation: pip builds with the setuptools the project asks for (>=77), not the venv's
        [str(py), "-m", "pip", "install", "--no-deps", "-q", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import snntopo, snntopo.config as c; print(snntopo.__file__, c.SCHEMA_PATH)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout and str(REPO / "src") not in where.stdout, where.stdout
    assert (
        where.stdout.split()[1].endswith("schema.yaml") and Path(where.stdout.split()[1]).is_file()
    )
    exe = venv / "bin" / "snntopo"
    res = subprocess.run(
        [str(exe), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0 and "analyze" in res.stdout, res.stderr
    res = subprocess.run(
        [str(exe), "analyze", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert "(default:" in res.stdout, res.stdout
    out = elsewhere / "out"
    # the paper's ResNet-20 tables only (the whole set takes minutes more on a loaded machine)
    import shutil

    tables = elsewhere / "tables"
    src = REPO / "tests" / "data" / "paper_cifar10"
    for f in src.rglob("*.csv.gz"):
        if "CONV-6" not in f.name:
            (tables / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tables / f.relative_to(src))
    res = subprocess.run(
        [str(exe), "analyze", "--tables", str(tables), "--out", str(out)]
        + ["--splits", "2", "--repeats", "1", "--perm-repeats", "1", "--no-figures"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert (out / "regression.csv").stat().st_size > 0
    assert json.loads((out / "analysis.json").read_text())["n_networks"] > 0
