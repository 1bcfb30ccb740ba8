"""Digests of the package code a job runs, so that editing a module reruns exactly its jobs.

Why: Snakemake's ``code`` rerun trigger sees the rule's script, not the ``snntopo`` modules the
script calls. Each rule therefore carries, in its ``params``, a digest of the modules its stage
executes (:func:`stage_code`): the stage module, the implementation of each registry member the
job runs (its architecture, PaI method, encoding or metric family) and, transitively, every
``snntopo`` module those import — imports inside functions included (that is how the stages load
their dependencies), and the package-level lazy exports resolved: ``from ..train import
train_masked`` runs :mod:`snntopo.train.loop`, because ``snntopo.train``'s ``__getattr__`` (made by
:func:`snntopo.registry.lazy_attributes`) imports it on first access; the digest follows the same
table, read from the package's source. A change to one of those modules changes the params and
Snakemake reruns the job (trigger ``params``); nothing else reruns. No planning module
(``workflow``, ``config``, ``jobs``, the CLI) is imported by a stage, so none is in a digest:
editing the planner reruns nothing. ``tests/test_codedigest.py`` checks each stage's closure
against the ``snntopo`` modules a real job of that stage has loaded when it ends.

What counts as a change: the digest is taken over each module's syntax tree with docstrings
removed, so editing a comment, a docstring or the formatting reruns nothing; editing code does.
Registries reference implementations lazily (``"module:attr"`` strings, :mod:`snntopo.registry`),
so a registry module does not pull every member into the digest of every job; and its top-level
``REGISTRY.register(...)`` lines are left out of the module's digest — a job's digest includes
instead the entry (reference and facts) of each member it runs (:func:`member_digest`), so
registering a new member, or changing one member's facts, reruns only that member's jobs. This
module uses only the standard library and the (torch-free) registries: planning stays free of
torch.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE = "snntopo"
ROOT = Path(__file__).resolve().parent


def _module_path(module: str) -> Path | None:
    """Source file of a ``snntopo`` module (package ``__init__`` or plain module), if it exists."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rel = module.split(".")[1:]
    base = ROOT.joinpath(*rel)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _resolve(current: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute module name of a relative import ``from .{level}{name} import ...``."""
    if level == 0:
        return name or ""
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


@functools.cache
def lazy_exports(package: str) -> dict[str, str]:
    """``name -> submodule`` of a package whose ``__init__`` sets ``__getattr__ =
    lazy_attributes(__name__, MAPPING)``, read from its source (``MAPPING`` may be a dict
    literal, a module-level name bound to one, or ``dict.fromkeys(NAMES, "submodule")``)."""
    path = _module_path(package)
    if path is None or path.name != "__init__.py":
        return {}
    tree = ast.parse(path.read_text(), filename=str(path))
    literals: dict[str, Any] = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign | ast.AnnAssign)
            and isinstance(
                target := (stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target),
                ast.Name,
            )
            and stmt.value is not None
        ):
            if target.id == "__getattr__" and _is_lazy_call(stmt.value):
                expr = ast.Expression(stmt.value.args[1])
                mapping = eval(
                    compile(expr, str(path), "eval"), {"__builtins__": {"dict": dict}}, literals
                )
                return {str(k): f"{package}.{v}" for k, v in dict(mapping).items()}
            with contextlib.suppress(ValueError):
                literals[target.id] = ast.literal_eval(stmt.value)
    return {}


def _is_lazy_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "lazy_attributes"
        and len(node.args) == 2
    )


@functools.cache
def _parsed(module: str) -> tuple[str, tuple[str, ...]]:
    """(digest of the module's code without docstrings, the snntopo modules it imports)."""
    path = _module_path(module)
    if path is None:
        return "", ()
    tree = ast.parse(path.read_text(), filename=str(path))
    deps: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            deps.add(base)
            # ``from pkg import sub`` imports the submodule when ``sub`` is one, and the module
            # behind a lazy export of ``pkg`` when ``sub`` is one of those
            deps.update(f"{base}.{a.name}" for a in node.names)
            lazy = lazy_exports(base)
            deps.update(lazy[a.name] for a in node.names if a.name in lazy)
        elif isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module
        ) and (
            node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)
        ):
            node.body[0].value.value = ""  # docstrings do not count
    # registration lines are per-member facts, digested per job (member_digest)
    tree.body = [stmt for stmt in tree.body if not _is_registration(stmt)]
    own = tuple(
        sorted(d for d in deps if d != PACKAGE and _module_path(d) is not None and d != module)
    )
    digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
    return digest, own


def _is_registration(stmt: ast.stmt) -> bool:
    """A top-level ``NAME.register(...)`` call statement."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr == "register"
        and isinstance(stmt.value.func.value, ast.Name)
    )


def member_digest(ref: str | None, facts: Mapping[str, Any]) -> str:
    """Digest of one registry entry: its implementation reference and its facts."""
    text = json.dumps({"ref": ref, "facts": facts}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def closure(modules: Iterable[str]) -> list[str]:
    """The given ``snntopo`` modules and every ``snntopo`` module they import, transitively
    (including the packages whose ``__init__`` an import runs)."""
    seen: set[str] = set()
    todo = [m for m in modules if m]
    while todo:
        mod = todo.pop()
        if mod in seen or _module_path(mod) is None:
            continue
        seen.add(mod)
        parts = mod.split(".")
        # parent packages (their ``__init__`` runs on import), except the root one, which only
        # holds the version string
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))
        todo.extend(_parsed(mod)[1])
    return sorted(seen)


def code_digest(*modules: str | None, extra: Iterable[str] = ()) -> str:
    """A short digest of the code of ``modules`` and everything they import from the package,
    plus the strings in ``extra`` (e.g. :func:`member_digest` of the registry entries used)."""
    h = hashlib.sha256()
    for mod in closure(m for m in modules if m):
        h.update(f"{mod}:{_parsed(mod)[0]};".encode())
    for item in extra:
        h.update(f"+{item};".encode())
    return h.hexdigest()[:16]


#: the registries a job's members come from, by the keyword :func:`stage_code` takes
MEMBER_KINDS = {
    "dataset": "datasets",
    "arch": "architectures",
    "method": "methods",
    "encoding": "encodings",
    "family": "families",
}


def stage_modules(stage: str, **members: str | None) -> tuple[list[str], list[str]]:
    """(the root modules of one job of ``stage`` — the stage module and each member's
    implementation —, the :func:`member_digest` of each member's registry entry). ``members``:
    ``dataset``, ``arch``, ``method``, ``encoding``, ``family`` (a name that is not registered,
    e.g. an external architecture or the dense baseline, adds nothing)."""
    from .names import registry

    modules = [f"snntopo.stages.{stage}"]
    entries: list[str] = []
    for key, name in members.items():
        if key not in MEMBER_KINDS:
            raise TypeError(f"stage_code: unknown member kind {key!r}")
        reg = registry(MEMBER_KINDS[key])
        if name is None or name not in reg:
            continue
        module = reg.module_of(name)
        if module and _module_path(module) is not None:
            modules.append(module)
        ref = reg.ref(name)
        # an entry registered as a plain record (a data set's DatasetInfo) is its own fact
        record = None if ref is not None else repr(reg.get(name))
        entries.append(member_digest(ref, {**reg.facts_dict(name), "record": record}))
    return modules, entries


def stage_closure(stage: str, **members: str | None) -> list[str]:
    """Every ``snntopo`` module one job of ``stage`` may execute (what :func:`stage_code`
    digests)."""
    return closure(stage_modules(stage, **members)[0])


@functools.lru_cache(maxsize=4096)
def stage_code(stage: str, **members: str | None) -> str:
    """Digest of the package code one job of ``stage`` runs (a rule ``param``): the modules of
    :func:`stage_closure` plus the registry entry of each member the job uses."""
    modules, entries = stage_modules(stage, **members)
    return code_digest(*modules, extra=entries)
