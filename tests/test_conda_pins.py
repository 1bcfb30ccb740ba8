"""The conda route's pins agree with pyproject.toml and with the environment the tests run in: every
package named in a conda file and in pyproject.toml has a conda pin that admits the version installed
here (``importlib.metadata``), and never admits a version below pyproject.toml's floor."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONDA_FILES = [ROOT / "environment.yml", *sorted((ROOT / "workflow" / "envs").glob("*.yaml"))]
#: conda-forge names whose PyPI distribution is named otherwise
PYPI_NAME = {
    "pytorch": "torch",
    "python-igraph": "igraph",
    "matplotlib-base": "matplotlib",
    "snakemake-minimal": "snakemake",
}
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?:\[(?P<brackets>[^\]]*)\])?\s*(?P<rest>.*)$")


def conda_specifier(entry: str) -> tuple[str, SpecifierSet]:
    """A conda match spec's package name and its version constraint as a PEP 440 specifier set:
    ``name``, ``name=1.2`` (conda's fuzzy 1.2.*), ``name=1.2.*=build``, ``name>=1,<2`` and
    ``name[version='>=1,<2', build='cpu*']``."""
    m = _SPEC.match(entry.strip())
    assert m, f"not a conda match spec: {entry!r}"
    version = m["rest"].strip()
    if m["brackets"]:
        assert not version, f"{entry!r}: a version both in and after the brackets"
        found = re.search(r"version\s*=\s*['\"]([^'\"]*)['\"]", m["brackets"])
        version = found[1] if found else ""
    if version.startswith("=") and not version.startswith("=="):
        version = version[1:].split("=")[0]  # drop a build string
        version = f"=={version if version.endswith('.*') else version + '.*'}"
    return m["name"], SpecifierSet(version.replace(" ", ""))


def _installed(pypi: str) -> str:
    return platform.python_version() if pypi == "python" else importlib.metadata.version(pypi)


def _pyproject() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out = {"python": SpecifierSet(project["requires-python"])}
    for text in reqs:
        req = Requirement(text)
        out[req.name.lower()] = req.specifier
    return out


def _floor(spec: SpecifierSet) -> Version | None:
    floors = [Version(s.version.rstrip(".*")) for s in spec if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def _pins() -> list[tuple[str, str, SpecifierSet]]:
    pins = []
    for path in CONDA_FILES:
        for entry in yaml.safe_load(path.read_text())["dependencies"]:
            if isinstance(entry, str):
                name, spec = conda_specifier(entry)
                pins.append((path.name, name, spec))
    return pins


def test_conda_spec_parser() -> None:
    # hand-checked readings of conda's match-spec forms
    assert conda_specifier("python=3.11")[1] == SpecifierSet("==3.11.*")
    assert conda_specifier("pytorch=2.5.*=cuda*") == ("pytorch", SpecifierSet("==2.5.*"))
    assert conda_specifier("pandas>=2.2,<4")[1] == SpecifierSet(">=2.2,<4")
    name, spec = conda_specifier("pytorch[version='>=2.2,<3', build='cpu*']")
    assert (name, spec) == ("pytorch", SpecifierSet(">=2.2,<3"))
    assert conda_specifier("pip") == ("pip", SpecifierSet(""))
    # the old pins did not admit the tested versions
    assert "3.1.1" not in conda_specifier("pandas=2.2")[1]
    assert "0.8.0" not in conda_specifier("safetensors=0.4")[1]


@pytest.mark.parametrize("path", CONDA_FILES, ids=lambda p: p.name)
def test_conda_pins_admit_the_tested_versions(path: Path) -> None:
    pyproject = _pyproject()
    problems = []
    for file, name, spec in _pins():
        if file != path.name:
            continue
        pypi = PYPI_NAME.get(name, name).lower()
        if pypi not in pyproject:
            continue
        installed = _installed(pypi)
        if not spec.contains(installed, prereleases=True):
            problems.append(f"{name}: pin {spec} excludes the tested {installed}")
        floor, conda_floor = _floor(pyproject[pypi]), _floor(spec)
        if floor is not None and (conda_floor is None or conda_floor < floor):
            problems.append(f"{name}: pin {spec} admits versions below pyproject's {floor}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_full_environment_names_every_dependency() -> None:
    named = {PYPI_NAME.get(n, n).lower() for f, n, _ in _pins() if f == "environment.yml"}
    missing = sorted(set(_pyproject()) - named)
    assert not missing, f"environment.yml lacks {missing}"
