"""A tiny name -> object registry, one per family (models, data sets, PaI methods, encodings,
metric families).

Why: adding a member of a family must be one new module plus one ``register`` line; the config
schema, the CLI choices and the Snakemake DAG all read the names from here, so they can never drift.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Ordered mapping of names to objects with helpful errors on unknown names."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, **meta: Any) -> Any:
        """Register ``obj`` under ``name``; usable as ``reg.register("x", f)`` or as a decorator."""

        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._items[name] = o
            self._meta[name] = dict(meta)
            return o

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.family} {name!r}{hint}; allowed: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
