"""The benchmark registry: benchmarks by name, the UniSurg-17 suite in the paper's order.

The registry collects the declarations of the loader modules (each lists its ``BENCHMARKS``);
the loaders never import the registry back. :func:`get_benchmark` and :func:`list_benchmarks`
read the active registry: the suite, unless a caller swaps in another with :func:`using` (a test
adding a toy benchmark does so without touching what other code sees).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from ..errors import UnknownName
from .benchmark import Benchmark


class Registry:
    """Benchmarks by name (case-insensitive); listed by their number in the suite, then by name."""

    def __init__(self, benchmarks: Iterable[Benchmark] = ()) -> None:
        self._by_name: dict[str, Benchmark] = {}
        for b in benchmarks:
            self.register(b)

    def register(self, bench: Benchmark) -> Benchmark:
        key = bench.name.lower()
        if key in self._by_name:
            raise ValueError(f"benchmark {bench.name!r} registered twice")
        numbered = {b.number: b.name for b in self._by_name.values() if b.number is not None}
        if bench.number is not None and bench.number in numbered:
            raise ValueError(f"benchmark {bench.name!r}: number {bench.number} is taken by {numbered[bench.number]!r}")
        self._by_name[key] = bench
        return bench

    def get(self, name: str) -> Benchmark:
        try:
            return self._by_name[name.lower()]
        except KeyError:
            known = ", ".join(b.name for b in self.list())
            raise UnknownName(f"unknown benchmark {name!r}; known: {known}") from None

    def list(self) -> list[Benchmark]:
        """Numbered benchmarks in their order (the paper's tables), then the others by name."""
        return sorted(self._by_name.values(), key=lambda b: (b.number is None, b.number or 0, b.name))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)


@cache
def _suite_benchmarks() -> tuple[Benchmark, ...]:
    # Imported here, not at package import: `import unisurg.benchmarks` stays cheap (no cv2).
    from . import clips, dense, phase, triplets

    return (*phase.BENCHMARKS, *clips.BENCHMARKS, *triplets.BENCHMARKS, *dense.BENCHMARKS)


def suite() -> Registry:
    """A new registry holding the 17 benchmarks of the UniSurg suite."""
    return Registry(_suite_benchmarks())


# The registry swapped in by `using` (None: the suite). A ContextVar, so a swap stays inside its block.
_ACTIVE: ContextVar[Registry | None] = ContextVar("unisurg_benchmarks", default=None)


def active() -> Registry:
    """The registry :func:`get_benchmark` reads: the one :func:`using` set, else (a new copy of) the suite."""
    reg = _ACTIVE.get()
    return reg if reg is not None else suite()


@contextmanager
def using(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the active one inside the ``with`` block (this thread/context only)."""
    token = _ACTIVE.set(registry)
    try:
        yield registry
    finally:
        _ACTIVE.reset(token)


def get_benchmark(name: str) -> Benchmark:
    return active().get(name)


def list_benchmarks() -> list[Benchmark]:
    """Registered benchmarks, the 17 of the suite first in the paper's order."""
    return active().list()
