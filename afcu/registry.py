"""Named registries filled by decorators in explicitly imported modules.

No auto-discovery: each kind's package imports its modules by name, so the
set of registered entries is visible in code.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from afcu.errors import AfcuError

T = TypeVar("T")


class Registry(Generic[T]):
    """A plain name -> object mapping; registering a name twice raises ``ValueError``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the entry; raises ``AfcuError`` listing the known names."""
        if name not in self._items:
            known = ", ".join(sorted(self._items))
            raise AfcuError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
