"""The package's imports against the layers docs/architecture.md states: every import (inside
functions too) goes to the importer's layer or one below, except the listed upward reads; no
circle among the modules; every module belongs to a layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DOC = REPO / "docs" / "architecture.md"


def _block(name: str) -> list[list[str]]:
    m = re.search(rf"```{name}\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"docs/architecture.md has no ```{name} block"
    return [line.split() for line in m.group(1).splitlines() if line.strip()]


def _layers() -> tuple[list[str], dict[str, str]]:
    order, owner = [], {}
    for name, *prefixes in _block("layers"):
        order.append(name)
        for p in prefixes:
            assert p not in owner, f"{p} is in two layers"
            owner[p] = name
    return order[::-1], owner  # bottom first


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in (SRC / "snntopo").rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        is_pkg = rel.name == "__init__"
        mods[".".join(rel.parts[:-1] if is_pkg else rel.parts)] = (path, is_pkg)
    return mods


def _imports(mods: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """module -> the package modules it imports (``from pkg import sub`` counts ``pkg.sub``)."""
    edges: dict[str, set[str]] = {}
    for mod, (path, is_pkg) in mods.items():
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                if node.level:
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, node.module] if node.module else parts)
                else:
                    base = node.module or ""
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
        edges[mod] = {t for t in out if t in mods and t != mod}
    return edges


def _layer_of(mod: str, owner: dict[str, str]) -> str | None:
    best = max((p for p in owner if mod == p or mod.startswith(p + ".")), key=len, default=None)
    return owner.get(best) if best else None


def test_every_module_belongs_to_a_layer():
    _, owner = _layers()
    assert not [m for m in _modules() if _layer_of(m, owner) is None]


def test_imports_point_down_except_the_listed_reads():
    order, owner = _layers()
    rank = {name: i for i, name in enumerate(order)}
    allowed = {(a, b) for a, *targets in _block("allowed") for b in targets}
    up = []
    for mod, targets in _imports(_modules()).items():
        for t in targets:
            if rank[_layer_of(t, owner)] > rank[_layer_of(mod, owner)] and (mod, t) not in allowed:
                up.append(f"{mod} ({_layer_of(mod, owner)}) -> {t} ({_layer_of(t, owner)})")
    assert not up, "\n".join(up)


def test_no_import_circle():
    """Among the plain modules (a package's ``__init__`` runs on import of any of its modules, so
    a registry's own package does not count as a circle with its members)."""
    mods = _modules()
    edges = {m: {t for t in ts if not mods[t][1]} for m, ts in _imports(mods).items()}
    edges = {m: ts for m, ts in edges.items() if not mods[m][1]}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a domain module importing a stage is reported."""
    fake = tmp_path / "snntopo"
    (fake / "stages").mkdir(parents=True)
    (fake / "metrics").mkdir()
    for f in ("__init__.py", "stages/__init__.py", "stages/x.py", "metrics/__init__.py"):
        (fake / f).write_text("")
    (fake / "metrics" / "bad.py").write_text("def f():\n    from ..stages import x\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    edges = _imports(_modules())
    assert "snntopo.stages.x" in edges["snntopo.metrics.bad"]
    _, owner = _layers()
    assert _layer_of("snntopo.metrics.bad", owner) == "domain"
    assert _layer_of("snntopo.stages.x", owner) == "stages"
