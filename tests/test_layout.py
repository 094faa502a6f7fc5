"""The shape of the library, checked: packages follow the pipeline's layers, no import circles,
no overlong functions.

Read statically (``ast``), so lazy imports inside functions count too: a circle that only closes
at call time is still a circle for a reader.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "unisurg"

# Lower layers never import higher ones; packages of one layer never import each other (the four
# stage packages are independent: training does not know evaluation, curation does not know synth).
LAYERS: dict[str, int] = {
    "io": 0,
    "config": 0,
    "errors": -1,  # the user-mistake exception (exit code 2); below config, which uses it
    "runtime": 0,  # devices and process groups (torch only)
    "media": 1,  # video I/O, clip datasets, motion saliency
    "models": 1,  # encoders, predictor, checkpoints
    "benchmarks": 2,  # the registry: declarations + real-format loaders
    "synth": 3,
    "curation": 3,
    "training": 3,
    "evaluation": 3,
    "report": 4,
    "cluster": 4,  # Ray engines for curation and feature extraction
    "export": 5,  # to transformers / safetensors / vjepa2, with a model card from the report
    "cli": 6,
    "__main__": 7,  # `python -m unisurg` = the cli
}
MAX_FUNCTION_LINES = 80
# Functions allowed past the limit because they are declarative tables, not logic ("module:function").
DECLARATIVE: set[str] = set()


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its body (module level or inside functions)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule when one exists
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                found.add(sub if sub in known else mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_imports():
    for name in _modules():
        importlib.import_module(name)


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _modules()} - {None}
    assert packages == set(LAYERS), f"give these a layer in LAYERS: {sorted(packages ^ set(LAYERS))}"


def test_no_package_imports_a_higher_or_sibling_layer():
    bad = []
    for mod, deps in _graph().items():
        src = _package(mod)
        if src is None:
            continue
        for dep in deps:
            dst = _package(dep)
            if dst is None or dst == src:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{mod} -> {dep} ({src} layer {LAYERS[src]}, {dst} layer {LAYERS[dst]})")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize(("low", "high"), [("benchmarks", "evaluation"), ("media", "training"), ("models", "training")])
def test_named_boundaries(low, high):
    offenders = sorted(
        f"{m} -> {d}" for m, deps in _graph().items() if _package(m) == low for d in deps if _package(d) == high
    )
    assert not offenders, offenders


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-loops."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    # a package's __init__ re-exporting its submodules is not a circle of logic: leave it out
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in _graph().items()}
    assert not _cycles(graph), f"import circles: {_cycles(graph)}"


def test_cycle_finder_finds_a_planted_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _long_functions() -> list[str]:
    out = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{name}:{node.name}" not in DECLARATIVE:
                    out.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_over_the_limit():
    assert not _long_functions(), f"split these (over {MAX_FUNCTION_LINES} lines):\n" + "\n".join(_long_functions())
