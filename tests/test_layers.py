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
BASE = {"errors", "model_config", "progress", "root"}
LAYERS: dict[str, tuple[list[Path], set[str]]] = {
    "errors": ([ROOT / "tracekit/errors.py"], set()),
    "progress": ([ROOT / "tracekit/progress.py"], set()),
    # the one formatter of text for people (stdlib only): renderers and the claims' measured values use it
    "units": ([ROOT / "reports/units.py"], set()),
    "model_config": ([ROOT / "tracekit/model_config.py"], {"errors"}),
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


def test_the_check_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from tracekit.cli.main import cli\n")
    assert _imports(f) == [(2, "tracekit.cli.main")] and _layer("tracekit.cli.main") not in LAYERS["store"][1]
