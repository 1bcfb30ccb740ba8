"""The workflow reused as a Snakemake module: a user's own Snakefile in another directory, with its
own ``configfile:``, imports every rule (``module ... config: config`` + ``use rule *``) and plans
the demo grid with the caller's values; outputs land under the caller's directory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_cluster import FAKE
from test_workflow import job_counts

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

pytestmark = pytest.mark.workflow

CALLER = """\
import json

configfile: "config.yaml"

module snntopo:
    snakefile: "{snakefile}"
    config: config

use rule * from snntopo{prefix}

# what the caller's config looks like after the module used it
with open("caller-config.json", "w") as fh:
    json.dump(config, fh)
"""


def caller_dir(tmp_path: Path, cfg: dict, snakefile: str = "Snakefile", prefix: str = "") -> Path:
    work = tmp_path / "my-study"
    work.mkdir(exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "Snakefile").write_text(
        CALLER.format(snakefile=REPO / snakefile, prefix=f" as {prefix}*" if prefix else "")
    )
    return work


def dry_run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # no -s, no --directory: Snakemake finds the caller's Snakefile in the working directory
    return subprocess.run(
        [SNAKEMAKE, "-n", *args], cwd=work, capture_output=True, text=True, timeout=300
    )


def demo(**changes) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg.update(changes)
    return cfg


def test_a_callers_config_drives_the_module_and_its_command_line_overrides_it(tmp_path):
    """The demo's grid with the caller's `seeds: [0]`: 7 methods x 3 sparsities x 1 seed + 1 dense
    = 22 masks and trainings, 21 x 3 encodings = 63 graphs; the caller's `--config seeds=[0,1]`
    doubles them (44, 126)."""
    work = caller_dir(tmp_path, demo(seeds=[0]), prefix="snntopo_")
    res = dry_run(work)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert counts["snntopo_mask"] == counts["snntopo_train"] == 22, counts
    assert counts["snntopo_encode"] == 63 and counts["snntopo_metrics_ramanujan"] == 21
    assert counts["snntopo_report"] == counts["snntopo_all"] == 1
    assert not (set(counts) - {r for r in counts if r.startswith("snntopo_")})
    # outputs are relative to the caller's directory; nothing planned inside the checkout
    assert "results/digits/resnet20/erk/s0.9/seed0/mask.safetensors" in res.stdout
    assert str(REPO / "results") not in res.stdout
    assert (work / ".snakemake" / "snntopo" / "schema.yaml").is_file()
    # the caller's config dict is left as the caller wrote it (the module checks its own copy)
    assert json.loads((work / "caller-config.json").read_text()) == demo(seeds=[0])

    res = dry_run(work, "--config", "seeds=[0,1]")
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert counts["snntopo_mask"] == counts["snntopo_train"] == 44, counts
    assert counts["snntopo_encode"] == 126


def test_workflow_snakefile_without_prefix_and_schema_defaults(tmp_path):
    """`workflow/Snakefile` (the snakedeploy entry point), rules imported under their own names,
    and a caller config with only the grid's required keys and two small-grid settings: the
    schema's defaults fill the rest (dense baselines on: 2 methods x 2 sparsities + 1 dense = 5
    networks; the default encodings are the registry's three)."""
    cfg = {
        "datasets": ["digits"],
        "architectures": ["resnet20"],
        "methods": ["erk", "snip"],
        "sparsities": [0.6, 0.9],
        "seeds": [0],
        "analysis": {"n_splits": 2},
    }
    work = caller_dir(tmp_path, cfg, snakefile="workflow/Snakefile")
    res = dry_run(work)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert counts["mask"] == counts["train"] == 5, counts
    assert counts["encode"] == 4 * 3 and counts["all"] == 1


def test_a_bad_caller_config_is_one_line_naming_the_module_config(tmp_path):
    work = caller_dir(tmp_path, demo(seedz=[0]), prefix="snntopo_")
    res = dry_run(work)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr + res.stdout
    line = next(x for x in res.stderr.splitlines() if "seedz" in x)
    assert line.startswith("the config handed to the snntopo module: unknown key 'seedz'"), line


@pytest.mark.slow
def test_a_module_on_slurm_keeps_its_local_rules_local(tmp_path):
    """The caller's module with the rule prefix, through the real SLURM plugin and a stand-in
    sbatch: the layer spec (`localrule: True`) runs on the submitting machine (a `localrules:`
    list would not know `snntopo_spec`), the masks are submitted as the prefixed rules' group and
    the Snakemake of a submission reads the caller's Snakefile."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    cfg = demo(methods=["erk", "uniform"], sparsities=[0.9], seeds=[0], dense_baseline=False)
    cfg["model"] = {"width": 0.25, "input_size": {"digits": 8}}
    cfg["analysis"] = {"n_splits": 2}
    work = caller_dir(tmp_path, cfg, prefix="snntopo_")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in FAKE.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log)}
    spec = work / "results" / "digits" / "resnet20" / "layers.json"
    targets = [str(spec.relative_to(work))]
    targets += [
        f"results/digits/resnet20/{m}/s0.9/seed0/mask.safetensors" for m in ("erk", "uniform")
    ]
    proc = subprocess.Popen(
        [SNAKEMAKE, "--profile", str(REPO / "profiles" / "slurm"), *targets],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if spec.exists() and log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
    out = proc.stdout.read().decode(errors="replace")
    calls = log.read_text().splitlines() if log.exists() else []
    assert len(calls) >= 2, out[-3000:]
    # the layer spec ran here (a local rule), the masks were submitted
    assert spec.stat().st_size > 0, out[-3000:]
    for call in calls:
        assert "--comment rule_network_snntopo_mask" in call, call[:300]
        assert "snntopo_spec" not in call
        assert f"--snakefile '{work / 'Snakefile'}'" in call


# --------------------------------------------------------------------------- config/README.md
#: list-valued keys whose default is every registered name (snntopo.config fills them)
REGISTRY_DEFAULTS = {"encodings", "metrics.families"}


def _schema_keys(node: dict, prefix: str = "", required: frozenset = frozenset()):
    """(dotted key, default as config/README.md shows it) for every settable key of the schema:
    the properties of nested mappings that declare their own properties, else the key itself."""
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from _schema_keys(sub, f"{name}.", frozenset(sub.get("required", ())))
        elif "default" in sub:
            shown = yaml.safe_dump(sub["default"], default_flow_style=True, width=1000)
            yield name, f"`{shown.strip().removesuffix('...').strip()}`"
        elif name in REGISTRY_DEFAULTS:
            yield name, "every registered name"
        else:
            yield name, "required" if key in required else "—"


def test_config_readme_lists_every_schema_key_with_its_default():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    expected = dict(_schema_keys(schema, required=frozenset(schema["required"])))
    rows = re.findall(
        r"^\| `([\w.]+)` \| ([^|]+?) \| [^|]+ \|$",
        (REPO / "config" / "README.md").read_text(),
        re.M,
    )
    documented = dict(rows)
    assert len(rows) == len(documented), "a key is listed twice in config/README.md"
    missing = {k: v for k, v in expected.items() if k not in documented}
    assert not missing, f"config/README.md lacks rows for {missing} (key: default)"
    assert not set(documented) - set(expected), "config/README.md lists keys the schema lacks"
    assert documented == expected
    # the example `config:` keys the page's module snippet relies on are the required ones
    assert [k for k, v in expected.items() if v == "required"] == schema["required"]


# --------------------------------------------------------------------------- deployment files
def test_version_citation_changelog_and_catalog_agree():
    """pyproject's version is CITATION.cff's and has a CHANGELOG section; the catalog file names
    the entry points snakedeploy and the workflow catalog look for, and they exist."""
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert str(cff["version"]) == version and cff["cff-version"] == "1.2.0"
    assert cff["preferred-citation"]["year"] == 2024
    assert {a["family-names"] for a in cff["preferred-citation"]["authors"]} == {
        "Cunegatti",
        "Farina",
        "Bucur",
        "Iacca",
    }
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(version)}\]", changelog, re.M), version
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog["usage"]["software-stack-deployment"]) == {
        "conda",
        "singularity",
        "singularity+conda",
    }
    for path in ("workflow/Snakefile", "config/README.md", "config/config.yaml"):
        assert (REPO / path).is_file(), path
