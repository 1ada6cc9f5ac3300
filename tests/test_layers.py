"""The dependency direction of docs/architecture.md, checked on every import (lazy ones included).

store ← collectors / analyzers ← reports ← cli, with prune, the pipeline and the facade on top. Imports
under `if TYPE_CHECKING:` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# layer -> (its source folders or files, the tracekit layers it may import)
BASE = {"errors", "model_config", "progress", "root", "artifacts"}
LAYERS: dict[str, tuple[list[Path], set[str]]] = {
    "errors": ([ROOT / "tracekit/errors.py"], set()),
    "progress": ([ROOT / "tracekit/progress.py"], set()),
    # the one formatter of text for people (stdlib only): renderers and the claims' measured values use it
    "units": ([ROOT / "reports/units.py"], set()),
    "model_config": ([ROOT / "tracekit/model_config.py"], {"errors"}),
    # the files tracekit writes and reads (manifest.json, compare.json), typed; standard library only
    "artifacts": ([ROOT / "tracekit/artifacts"], {"errors", "model_config", "root"}),
    "store": ([ROOT / "tracekit/store", ROOT / "tracekit/schema"], BASE | {"store"}),
    # GPU kernels (torch/triton only), used by collect (--state-kernel) and prune, usable on any model
    "kernels": ([ROOT / "tracekit/kernels"], BASE),
    "collectors": ([ROOT / "collectors"], BASE | {"collectors", "kernels"}),
    "analyzers": ([ROOT / "analyzers"], BASE | {"store", "analyzers", "units"}),
    "reports": ([ROOT / "reports"], BASE | {"store", "collectors", "analyzers", "reports", "units"}),
    "prune": (
        [ROOT / "tracekit/prune"],
        BASE | {"store", "collectors", "kernels", "analyzers", "reports", "units", "prune", "pipeline"},
    ),
    # the top layer (pipeline, facade, prune) may use each other; prune's score files feed the report
    "pipeline": ([ROOT / "tracekit/pipeline.py"], BASE | {"store", "collectors", "analyzers", "prune"}),
    "api": ([ROOT / "tracekit/api.py"], BASE | {"store", "analyzers", "pipeline"}),
}


def _layer(module: str) -> str:
    """The layer of a `tracekit...` module name."""
    if module == "tracekit.reports.units":
        return "units"
    parts = module.split(".")
    if len(parts) == 1:
        return "root"  # `from tracekit import __version__`
    head = parts[1]
    return {"schema": "store", "cli": "cli"}.get(head, head)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):  # annotation-only imports
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(n, m) for n, m in out if m == "tracekit" or m.startswith("tracekit.")]


def _files(paths: list[Path]) -> list[Path]:
    return [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]


@pytest.mark.parametrize("layer", list(LAYERS))
def test_imports_follow_the_layers(layer: str) -> None:
    paths, allowed = LAYERS[layer]
    bad = [
        f"{f.relative_to(ROOT)}:{line} imports {mod}"
        for f in _files(paths)
        for line, mod in _imports(f)
        if _layer(mod) not in allowed | {layer}
    ]
    assert not bad, "\n".join(bad)


def test_artifacts_need_only_the_standard_library() -> None:
    """Collectors read and write the artifacts on GPU machines without duckdb/polars."""
    import sys

    bad = []
    for f in _files(LAYERS["artifacts"][0]):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [
                f"{f.name} imports {n}" for n in names if n.split(".")[0] not in {*sys.stdlib_module_names, "tracekit"}
            ]
    assert not bad, bad


def test_the_check_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from tracekit.cli.main import cli\n")
    assert _imports(f) == [(2, "tracekit.cli.main")] and _layer("tracekit.cli.main") not in LAYERS["store"][1]


# ---- no import cycle ------------------------------------------------------------------------------
# where each installed package's modules live (pyproject's package-dir mapping)
PACKAGES = {
    "tracekit": ROOT / "tracekit",
    "tracekit.collectors": ROOT / "collectors",
    "tracekit.analyzers": ROOT / "analyzers",
    "tracekit.reports": ROOT / "reports",
}


def _modules() -> dict[str, Path]:
    """Every tracekit module name -> its file."""
    out: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for f in sorted(folder.rglob("*.py")):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.setdefault(".".join([package, *parts]), f)
    return out


# names the root package defines itself (no import behind them): `from tracekit import __version__` reaches no
# module, whereas `import tracekit` + `tracekit.open(...)` reaches the facade through the root's lazy names
ROOT_CONSTANTS = {"__version__"}


def _edges(path: Path, modules: set[str]) -> set[str]:
    """The tracekit modules `path` imports (lazy imports included, annotation-only ones not): `from P import m`
    counts as an import of the module P.m where m is one, else of P (the root's constants: of nothing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    out.add(sub)
                elif not (node.module == "tracekit" and alias.name in ROOT_CONSTANTS):
                    out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path a -> ... -> a) per strongly connected group of modules (those that reach each other)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_in(graph, g) for g in groups]


def _path_in(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A cycle through the group's first module, by breadth-first search inside the group."""
    start, members = group[0], set(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return group


def test_no_import_cycle() -> None:
    """No tracekit module imports itself through others, lazily or not (docs/architecture.md): each can be
    read, tested and replaced without the ones that import it."""
    files = _modules()
    graph = {m: _edges(f, set(files)) - {m} for m, f in files.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (one per group of modules that import each other):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_the_cycle_check_can_fail() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
