"""A tiny name -> object registry, one per family (architectures, data sets, PaI methods,
encodings, metric families).

Why it looks like this:

- **One source of truth.** Every fact about a registered thing (a PaI method's ``needs_data`` and
  ``wants_gpu``, an encoding's kind and edge-count model, a metric family's encodings and
  normalisers, an architecture's training defaults) is metadata on its registry entry. The config
  schema, the CLI choices, the Snakemake rules, the tables, the analysis feature sets and the
  resource estimates all read it from here, so adding a member is one module plus one
  ``register`` line and nothing can drift.
- **Typed facts.** Each registry has a frozen dataclass of its facts (``ModelFacts``,
  ``DatasetFacts``, ``MethodFacts``, ``EncodingFacts``, ``FamilyFacts``, next to the registry), so
  every fact has exactly one default, written once; :meth:`Registry.register` refuses an unknown
  fact or a value of the wrong type in one line, and :meth:`Registry.meta` returns the dataclass
  (read ``REG.meta(name).fact`` or ``REG.fact(name, "fact")``).
- **Lazy implementations.** An entry may be registered with a ``"package.module:attribute"``
  string instead of the object. The implementation is imported on first :meth:`Registry.get`;
  :meth:`names` and :meth:`meta` never import it. That keeps planning (``snakemake -n``, the config
  check) free of torch, and lets the code digest of a job (:mod:`snntopo.codedigest`) include only
  the member it really runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar, Union

from .errors import ConfigError

T = TypeVar("T")


def load_ref(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<where[name]>`` on first
    access of ``name``: the torch-using parts of a package load only when used, so importing the
    package (its registry) stays cheap and torch-free."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def _type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits the (resolved) annotation ``tp``: ``Any``, ``None``, unions,
    ``Literal``, ``bool``/``int``/``float``/``str``, ``tuple[X, ...]`` and ``dict``/``Mapping``
    of ``[K, V]`` — the types registry facts use."""
    if tp is Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        return any(_type_ok(value, a) for a in args)
    if origin is Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(
            _type_ok(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        if not args:
            return True
        return all(_type_ok(k, args[0]) and _type_ok(v, args[1]) for k, v in value.items())
    if isinstance(tp, type):
        return isinstance(value, tp)
    raise TypeError(f"registry facts: unsupported annotation {tp!r}")  # pragma: no cover


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace("typing.", "")


@dataclasses.dataclass(frozen=True)
class NoFacts:
    """The facts of a registry that has none."""


class Registry(Generic[T]):
    """Ordered mapping of names to objects (or lazy references) with their facts (one frozen
    dataclass instance of ``facts`` per entry)."""

    def __init__(self, family: str, facts: type = NoFacts) -> None:
        if not dataclasses.is_dataclass(facts):
            raise TypeError("Registry: facts must be a dataclass")
        self.family = family
        self.facts = facts
        self._items: dict[str, T | str] = {}
        self._meta: dict[str, Any] = {}

    def make_facts(self, name: str, **facts: Any) -> Any:
        """The facts dataclass of entry ``name`` from keyword arguments; ``ValueError`` in one line
        on an unknown fact, a missing required one or a value of the wrong type."""
        fields = {f.name: f for f in dataclasses.fields(self.facts)}
        hints = typing.get_type_hints(self.facts)
        where = f"{self.family} {name!r}"
        for key, value in facts.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{where}: unknown fact {key!r}{hint}; known: {', '.join(fields)}")
            if not _type_ok(value, hints[key]):
                raise ValueError(
                    f"{where}: fact {key!r} must be {_type_name(hints[key])}, got {value!r}"
                )
        missing = [
            f.name
            for f in fields.values()
            if f.name not in facts
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"{where}: missing fact(s) {', '.join(missing)}")
        return self.facts(**facts)

    def register(self, name: str, obj: T | str | None = None, **meta: Any) -> Any:
        """Register ``obj`` under ``name``; ``obj`` may be a ``"module:attr"`` reference (imported
        on first use); ``meta`` are the entry's facts (fields of the registry's ``facts``
        dataclass, checked now). Usable as ``reg.register("x", f, **facts)`` or as a decorator."""
        facts = self.make_facts(name, **meta)

        def add(o: T | str) -> T | str:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._items[name] = o
            self._meta[name] = facts
            return o

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        """The implementation of ``name`` (imported now if it was registered by reference)."""
        try:
            obj = self._items[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None
        if isinstance(obj, str):
            obj = load_ref(obj)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def ref(self, name: str) -> str | None:
        """The ``"module:attr"`` reference of ``name``, or ``None`` if it was registered as an
        object (used for code digests without importing the implementation)."""
        self._check(name)
        obj = self._items[name]
        if isinstance(obj, str):
            return obj
        module = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None)
        return f"{module}:{qual}" if module and qual else None

    def module_of(self, name: str) -> str | None:
        """The module that implements ``name`` (no import)."""
        ref = self.ref(name)
        return ref.partition(":")[0] if ref else None

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a member for a while)."""
        self._check(name)
        del self._items[name]
        del self._meta[name]

    def meta(self, name: str) -> Any:
        """The facts of ``name``: an instance of the registry's ``facts`` dataclass (never imports
        the implementation)."""
        self._check(name)
        return self._meta[name]

    def fact(self, name: str, key: str) -> Any:
        """One fact of ``name`` (its registered value or the dataclass's default)."""
        return getattr(self.meta(name), key)

    def defaults(self) -> Any:
        """The facts of an entry registered with none (for names outside the registry, e.g. an
        external architecture; raises if a fact has no default)."""
        return self.facts()

    def facts_dict(self, name: str) -> dict[str, Any]:
        """Every fact of ``name`` as plain data with sorted keys (code digests)."""
        return dict(sorted(dataclasses.asdict(self.meta(name)).items()))

    def where(self, **facts: Any) -> list[str]:
        """Names whose facts have every ``key == value`` in ``facts``."""
        return [
            n for n in self._items if all(getattr(self._meta[n], k) == v for k, v in facts.items())
        ]

    def _check(self, name: str) -> None:
        if name not in self._items:
            raise ConfigError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.family} {name!r}{hint}; allowed: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in list(self._items):
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
