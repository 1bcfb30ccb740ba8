"""The workflow reused as a Snakemake module: a user's own Snakefile in another directory, with its
own ``configfile:``, imports every rule (``module ... config: config`` + ``use rule *``) and plans
the demo grid with the caller's values; outputs land under the caller's directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

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


def job_counts(text: str) -> Counter[str]:
    """Jobs per rule in the first job-stats table of a dry run."""
    counts: Counter[str] = Counter()
    lines = iter(text.splitlines())
    for line in lines:
        if re.match(r"^job\s+count", line.strip()):
            break
    for line in lines:
        m = re.match(r"^([A-Za-z_]\w*)\s+(\d+)$", line.strip())
        if m and m.group(1) == "total":
            break
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


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
