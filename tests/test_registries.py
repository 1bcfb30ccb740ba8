"""One source of truth: the registries' facts drive the schema, the plan and the resources;
planning imports no torch; rule code digests follow the code each job runs."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snntopo import workflow as W
from snntopo.codedigest import closure, code_digest
from snntopo.config import check_config, load_config, registry, training_settings
from snntopo.encode import ENCODINGS, estimate_edges
from snntopo.metrics import FAMILIES, family_encoding_names
from snntopo.models import MODELS
from snntopo.pai import METHODS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _no_torch_path(tmp_path: Path) -> str:
    """A PYTHONPATH entry whose ``torch`` and ``torchvision`` raise on import."""
    for name in ("torch", "torchvision"):
        pkg = tmp_path / "blocked" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f'raise ImportError("{name} imported while planning")\n')
    return os.pathsep.join([str(tmp_path / "blocked"), str(REPO / "src")])


def test_config_check_and_planning_facts_import_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from snntopo.config import load_config\n"
        "from snntopo import workflow as W\n"
        "cfg = load_config('config/config.yaml')\n"
        "nets = W.sparse_grid(cfg)\n"
        "assert len(nets) == 1260, len(nets)\n"
        "W.encode_mem_mb('x/layers.json', nets[0].path('r') + '/init.safetensors', 'mge', 1, cfg)\n"
        "[W.stage_code('mask', arch=n.arch, method=n.method) for n in nets[:50]]\n"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": _no_torch_path(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.workflow
def test_paper_grid_dry_run_imports_no_torch(tmp_path):
    env = {**os.environ, "PYTHONPATH": _no_torch_path(tmp_path)}
    res = subprocess.run(
        [SNAKEMAKE, "-n", "--quiet", "rules", "--directory", str(tmp_path / "work")]
        + ["-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config" / "config.yaml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "train" in res.stdout


# --------------------------------------------------------------------------- facts -> plan
def test_schema_enums_and_pai_settings_come_from_the_registries(monkeypatch):
    base = load_config(REPO / "config" / "demo.yaml")
    raw = {k: base[k] for k in ("datasets", "architectures", "methods", "sparsities", "seeds")}
    # a newly registered architecture is accepted everywhere an architecture is named
    monkeypatch.setitem(MODELS._items, "tinynet", "snntopo.models.conv6:Conv6")
    monkeypatch.setitem(
        MODELS._meta, "tinynet", MODELS.make_facts("tinynet", training={"weight_decay": 3e-4})
    )
    cfg = check_config(
        {
            **raw,
            "architectures": ["tinynet"],
            "training": {"overrides": [{"match": {"arch": "tinynet"}, "set": {"lr": 0.05}}]},
            "resources": {"train_runtime_min_per_epoch": {"tinynet": 0.1}},
        }
    )
    recipe = training_settings(cfg, "digits", "tinynet")
    assert recipe["weight_decay"] == 3e-4  # the architecture's registered recipe
    assert recipe["lr"] == 0.05  # the config's override has the last word
    # a PaI method's settings are checked against its registered schema
    with pytest.raises(Exception, match="rounds"):
        check_config({**raw, "pai": {"synflow": {"rounds": 0}}})
    with pytest.raises(Exception, match="bogus"):
        check_config({**raw, "pai": {"snip": {"bogus": 1}}})
    # defaults that mean "every registered name"
    assert cfg["encodings"] == ENCODINGS.names()
    assert cfg["metrics"]["families"] == FAMILIES.names()


def test_paper_recipe_follows_the_registered_architecture_recipe():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert training_settings(cfg, "cifar10", "wrn28_2")["weight_decay"] == 5e-4
    assert training_settings(cfg, "cifar10", "resnet20")["weight_decay"] == 1e-4
    assert training_settings(cfg, "tinyimagenet", "conv6")["milestones"] == [20, 60, 80]


def test_resources_follow_method_facts(monkeypatch):
    for m in METHODS.names():
        assert W.wants_gpu(m) == bool(METHODS.fact(m, "wants_gpu"))
    monkeypatch.setitem(METHODS._items, "newpai", "snntopo.pai.uniform:compute")
    monkeypatch.setitem(
        METHODS._meta, "newpai", METHODS.make_facts("newpai", needs_data=True, wants_gpu=True)
    )
    assert W.wants_gpu("newpai") and W.needs_data("newpai")
    assert not W.wants_gpu("dense")


def test_family_encodings_follow_encoding_kinds(monkeypatch):
    assert family_encoding_names("ramanujan") == registry("encodings").where(kind="bipartite")
    monkeypatch.setitem(ENCODINGS._items, "newenc", "snntopo.encode.rolled:build")
    monkeypatch.setitem(ENCODINGS._meta, "newenc", ENCODINGS.make_facts("newenc", kind="bipartite"))
    assert "newenc" in family_encoding_names("ramanujan")
    assert "newenc" in family_encoding_names("local")
    assert "newenc" in W.table_names()


@pytest.fixture
def scratch(monkeypatch):
    """Register members for one test: every registry is restored afterwards."""
    for reg in (MODELS, METHODS, ENCODINGS, FAMILIES, registry("datasets")):
        monkeypatch.setattr(reg, "_items", dict(reg._items))
        monkeypatch.setattr(reg, "_meta", dict(reg._meta))


@pytest.mark.parametrize(
    "reg,facts,needle",
    [
        (MODELS, {"runtime_min_per_epoch": "fast"}, "fact 'runtime_min_per_epoch' must be float"),
        (MODELS, {"trainig": {}}, "unknown fact 'trainig' (did you mean 'training'?)"),
        (METHODS, {"needs_data": 1}, "fact 'needs_data' must be bool, got 1"),
        (METHODS, {"wants_gpu": True, "gpu": True}, "unknown fact 'gpu'"),
        (ENCODINGS, {"kind": "tripartite"}, "fact 'kind' must be Literal"),
        (ENCODINGS, {"edge_model": "weights"}, "missing fact(s) kind"),
        (FAMILIES, {"kinds": ["bipartite"]}, "fact 'kinds' must be tuple"),
        (FAMILIES, {"normalisers": {"x": "layers"}}, "fact 'normalisers' must be dict"),
        (FAMILIES, {"threads": 2.0}, "fact 'threads' must be int"),
        (registry("datasets"), {"index_fle": "x"}, "unknown fact 'index_fle'"),
    ],
)
def test_a_wrong_or_unknown_fact_is_refused_at_registration_in_one_line(
    scratch, reg, facts, needle
):
    before = reg.names()
    with pytest.raises(ValueError) as err:
        reg.register("newmember", "snntopo.pai.uniform:compute", **facts)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    assert msg.startswith(f"{reg.family} 'newmember': ")
    assert reg.names() == before  # nothing half-registered


def test_a_family_registered_with_encodings_or_with_kinds_resolves(scratch):
    from snntopo.analysis.features import _mge_families
    from snntopo.metrics import applicable_families

    FAMILIES.register("by_names", "snntopo.metrics.local:local_metrics", encodings=("mge",))
    FAMILIES.register(
        "by_kinds", "snntopo.metrics.local:local_metrics", kinds=("bipartite",), metrics=("bk",)
    )
    FAMILIES.register("by_default", "snntopo.metrics.local:local_metrics", metrics=("bd",))
    # the registered encodings by hand: mge is multipartite, the two rolled ones bipartite
    assert family_encoding_names("by_names") == ["mge"]
    assert family_encoding_names("by_kinds") == ["rolled", "rolled-channel"]
    assert family_encoding_names("by_default") == ["mge", "rolled", "rolled-channel"]
    mge, rolled = applicable_families("mge"), applicable_families("rolled")
    assert "by_names" in mge and "by_names" not in rolled
    assert "by_kinds" in rolled and "by_kinds" not in mge
    assert "by_default" in mge and "by_default" in rolled
    mge_metrics = _mge_families()
    assert mge_metrics.get("bd") == "by_default" and "bk" not in mge_metrics
    # the defaults a family gets: one each, the same wherever they are read
    facts = FAMILIES.meta("by_names")
    assert (facts.kinds, facts.layered, facts.threads) == (("multipartite", "bipartite"), False, 1)
    assert W.family_threads("by_names") == 1 and facts.normalisers == {}


def test_member_digest_follows_the_facts_not_how_they_were_written(scratch):
    from snntopo.codedigest import stage_modules

    ref = "snntopo.metrics.local:local_metrics"
    FAMILIES.register("a1", ref, metrics=("x", "y"), normalisers={"x": "nodes", "y": "edges"})
    # the same facts in another order, with a default spelled out
    FAMILIES.register(
        "a2", ref, normalisers={"y": "edges", "x": "nodes"}, threads=1, metrics=("x", "y")
    )
    FAMILIES.register(
        "a3", ref, metrics=("x", "y"), normalisers={"x": "nodes", "y": "edges"}, threads=2
    )

    def entry(name):
        return stage_modules("metrics", family=name)[1]

    assert entry("a1") == entry("a2")
    assert entry("a1") != entry("a3")  # one changed fact changes the member's digest
    assert list(FAMILIES.facts_dict("a1")) == sorted(FAMILIES.facts_dict("a1"))


def test_dense_edge_facts_match_the_real_layer_specs():
    """The planner's torch-free edge facts equal the edge estimate from each bundled model's
    actual layer spec (width 1, 32x32, every weight kept), and the planned estimate tracks the
    spec-based one at other widths and input sizes."""
    from snntopo.encode.layers import layer_spec
    from snntopo.models import build_model

    for arch in MODELS.names():
        facts = MODELS.fact(arch, "dense_edges")
        assert facts, arch
        for width, side in ((1.0, 32), (0.5, 16)):
            model = build_model(arch, 10, 3, side, width, seed=0)
            spec = layer_spec(model, (3, side, side))
            nnz = {lay["param"]: float(math.prod(lay["weight_shape"])) for lay in spec["layers"]}
            for enc in ENCODINGS.names():
                truth = estimate_edges(spec, nnz, enc)
                planned = W.planned_edges(arch, enc, 1.0, width, side)
                if width == 1.0:
                    assert planned == truth, (arch, enc)
                else:  # first/last layers do not scale with width squared: a close estimate
                    assert 0.5 < planned / truth < 2.0, (arch, enc, planned, truth)


# --------------------------------------------------------------------------- code digests
def test_code_digest_ignores_docstrings_and_follows_imports(tmp_path, monkeypatch):
    import snntopo.codedigest as cd

    pkg = tmp_path / "snntopo"
    (pkg / "fam").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0"\n')
    (pkg / "fam" / "__init__.py").write_text('REG = {"a": "snntopo.fam.a:f", "b": "x"}\n')
    (pkg / "util.py").write_text("def helper():\n    return 1\n")
    (pkg / "fam" / "a.py").write_text(
        '"""Doc."""\nfrom ..util import helper\n\n\ndef f():\n    """Doc."""\n    return helper()\n'
    )
    (pkg / "fam" / "b.py").write_text("def g():\n    return 2\n")
    monkeypatch.setattr(cd, "ROOT", pkg)
    cd._parsed.cache_clear()
    try:
        assert closure(["snntopo.fam.a"]) == ["snntopo.fam", "snntopo.fam.a", "snntopo.util"]
        before = code_digest("snntopo.fam.a")
        b_before = code_digest("snntopo.fam.b")
        (pkg / "fam" / "a.py").write_text(
            '"""Other doc."""\n# a comment\nfrom ..util import helper\n\n\ndef f():\n'
            '    """Changed."""\n    return helper()\n'
        )
        cd._parsed.cache_clear()
        assert code_digest("snntopo.fam.a") == before  # docstrings and comments do not count
        (pkg / "util.py").write_text("def helper():\n    return 2\n")
        cd._parsed.cache_clear()
        assert code_digest("snntopo.fam.a") != before  # an imported module's code does
        assert code_digest("snntopo.fam.b") == b_before  # a sibling that does not import it
    finally:
        cd._parsed.cache_clear()


def test_stage_digests_cover_only_the_member_a_job_runs():
    metrics_mods = closure(["snntopo.stages.metrics", FAMILIES.module_of("expansion")])
    assert "snntopo.metrics.expansion" in metrics_mods
    for other in ("local", "neighbourhood", "ramanujan"):
        assert FAMILIES.module_of(other) not in metrics_mods
    analysis_mods = closure(["snntopo.stages.analysis"])
    implementations = [FAMILIES.module_of(f) for f in FAMILIES.names()]
    implementations += [METHODS.module_of(m) for m in METHODS.names()]
    implementations += [ENCODINGS.module_of(e) for e in ENCODINGS.names()]
    implementations += [MODELS.module_of(a) for a in MODELS.names()]
    assert not set(implementations) & set(analysis_mods)
    assert not any(m.startswith(("snntopo.train", "snntopo.stages.metrics")) for m in analysis_mods)
    mask_mods = closure(["snntopo.stages.mask", METHODS.module_of("snip")])
    assert METHODS.module_of("grasp") not in mask_mods
    assert W.stage_code("metrics", family="local") != W.stage_code("metrics", family="global")


# --------------------------------------------------------------------------- no stray lists
def _source_files() -> list[Path]:
    files = sorted((REPO / "src" / "snntopo").rglob("*.py"))
    files += sorted((REPO / "workflow" / "scripts").glob("*.py"))
    return files


#: the modules that *are* the registries
REGISTRY_MODULES = {
    REPO / "src" / "snntopo" / rel
    for rel in (
        "models/__init__.py",
        "pai/__init__.py",
        "encode/__init__.py",
        "metrics/__init__.py",
        "data/__init__.py",
    )
}


def test_no_list_of_registered_names_outside_the_registries():
    """No tuple/list/set literal of two or more names of one registry (architectures, data sets,
    PaI methods, encodings, metric families) appears outside the registry modules, in the package,
    the rule scripts, the rules or the Snakefile."""
    families = {
        kind: set(registry(kind).names())
        for kind in ("architectures", "datasets", "methods", "encodings", "families")
    }
    offenders = []
    for path in _source_files():
        if path in REGISTRY_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Tuple | ast.List | ast.Set):
                continue
            strings = {
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
            for kind, names in families.items():
                hits = strings & names
                if len(hits) >= 2:
                    offenders.append(
                        f"{path.relative_to(REPO)}:{node.lineno}: {kind} {sorted(hits)}"
                    )
    smk = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    for path in smk:
        text = path.read_text()
        for kind, names in families.items():
            for line_no, line in enumerate(text.splitlines(), 1):
                quoted = {n for n in names if f'"{n}"' in line or f"'{n}'" in line}
                if len(quoted) >= 2:
                    offenders.append(f"{path.relative_to(REPO)}:{line_no}: {kind} {sorted(quoted)}")
    assert not offenders, "\n".join(offenders)


def test_every_rule_that_runs_package_code_carries_its_code_digest():
    """Each rule with a script has a ``code`` param (its stage's digest), so package edits rerun
    it; and the stage module the digest names exists."""
    import re

    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        for block in re.split(r"\n(?=\s*rule\b)", text):
            if "script:" not in block:
                continue
            m = re.search(r'code=(?:lambda wc: )?W\.stage_code\(\s*"(\w+)"', block)
            assert m, f"{path.name}: a rule without code=W.stage_code(...):\n{block[:200]}"
            assert (REPO / "src" / "snntopo" / "stages" / f"{m.group(1)}.py").exists(), m.group(1)


def test_architecture_recipes_name_every_config_key_the_registries_fill():
    """docs/architecture.md's recipes list each config key whose names come from a registry (the
    schema's enums and "every registered name" defaults), and each registry's facts dataclass."""
    from snntopo import config as C

    text = (REPO / "docs" / "architecture.md").read_text()
    recipes = text[text.index("## Extending snntopo") : text.index("## Stage code map")]
    schema_words = {"properties", "items", "propertyNames", "additionalProperties"}
    for loc in [*C._REGISTRY_ENUMS, *C._REGISTRY_DEFAULTS]:
        key = ".".join(p for p in loc if p not in schema_words)
        key = key.removesuffix(".match.dataset").removesuffix(".match.arch")
        assert f"`{key}" in recipes, key
    for reg in (MODELS, METHODS, ENCODINGS, FAMILIES, registry("datasets")):
        assert f"`{reg.facts.__name__}`" in recipes, reg.facts.__name__


@pytest.mark.parametrize(("side", "pooled"), [(1, 7), (2, 3), (5, 3), (6, 3)])
def test_edge_estimate_bounds_graphs_with_adaptive_pools(side, pooled):
    """The encode jobs' edge estimate (their memory request and pre-flight check) reads torch's
    adaptive windows too (VGG's 7x7 pool of a 1x1 map at 32x32 has no kernel; the estimate
    raised KeyError there): it is an upper bound of the built MGE's edges (loose where padding
    taps fall outside small maps or upsampled copies merge into one edge)."""
    import numpy as np
    import torch
    from torch import nn

    from snntopo.encode import build_graph
    from snntopo.encode.layers import layer_spec

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.AdaptiveAvgPool2d(pooled),
        nn.Flatten(),
        nn.Linear(3 * pooled * pooled, 4),
    )
    spec = layer_spec(model, (2, side, side))
    weights = {
        lay["param"]: np.ones(lay["weight_shape"], dtype=np.float32) for lay in spec["layers"]
    }
    nnz = {k: float(v.size) for k, v in weights.items()}
    edges = build_graph("mge", spec, weights).n_edges
    estimate = estimate_edges(spec, nnz, "mge")
    assert estimate >= edges > 0
