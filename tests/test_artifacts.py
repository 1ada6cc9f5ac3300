"""The artifacts tracekit writes and reads (manifest.json, compare.json, the attribute document): each is read
and written by its one typed class, and nothing else parses them (issue #21)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from tracekit.analyzers.report_types import AttributeReport

from tracekit.artifacts.compare import CompareResult
from tracekit.artifacts.manifest import Manifest, find_for_trace

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
LIBRARY = [ROOT / "tracekit", ROOT / "analyzers", ROOT / "reports", ROOT / "collectors"]
# The homes of the artifact types: the only modules that may parse an artifact.
HOMES = {ROOT / "tracekit" / "artifacts", ROOT / "analyzers" / "report_types.py"}
# Words that name an artifact in the code around a parse (the enclosing function's source).
ARTIFACT_WORDS = ("manifest", "compare", "attribut", "plan")


def _raw_artifact_parses(path: Path) -> list[str]:
    """`json.load`/`json.loads` calls in functions of `path` that speak of an artifact."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [
            n
            for n in ast.walk(fn)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("load", "loads")
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "json"
        ]
        text = (ast.get_source_segment(source, fn) or "").lower()
        if calls and any(w in text for w in ARTIFACT_WORDS):
            out += [f"{path.relative_to(ROOT)}:{c.lineno} in {fn.name}()" for c in calls]
    return out


def _library_files() -> list[Path]:
    files = [f for d in LIBRARY for f in sorted(d.rglob("*.py"))]
    return [f for f in files if not any(f == h or h in f.parents for h in HOMES)]


def test_no_raw_parse_of_an_artifact_outside_its_type() -> None:
    bad = [hit for f in _library_files() for hit in _raw_artifact_parses(f)]
    assert not bad, "parse these through tracekit.artifacts / AttributeReport.from_json:\n" + "\n".join(bad)


def test_the_scan_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "x.py"
    f.write_text(
        "import json\ndef points(run):\n    return json.loads((run / 'manifest.json').read_text())['points']\n"
    )
    monkeypatch.setattr("tests.test_artifacts.ROOT", tmp_path)
    assert _raw_artifact_parses(f) == ["x.py:3 in points()"]


@pytest.mark.parametrize("golden", sorted((DATA / "golden").glob("attribute_*.json")), ids=lambda p: p.stem)
def test_attribute_document_round_trips(golden: Path) -> None:
    """from_json → to_json gives back the document byte for byte (the CLI's JSON, from tests/data/golden)."""
    text = golden.read_text()
    docs = json.loads(text)
    again = [AttributeReport.from_json(d).to_json() for d in (docs if isinstance(docs, list) else [docs])]
    assert json.dumps(again if isinstance(docs, list) else again[0], indent=2) + "\n" == text


def test_manifest_and_compare_round_trip() -> None:
    for path in [*DATA.glob("h200_*/*/manifest.json")]:
        doc = json.loads(path.read_text())
        m = Manifest.read(path.parent)
        assert m.to_json() == doc and len(m.points) == len(doc["points"]) and m.device == doc["device"]
    for path in (ROOT / "benchmarks" / "results").glob("*prune_compare*/**/compare.json"):
        doc = json.loads(path.read_text())
        # results from before `component_diff` and `state_kernel` existed read them as null
        assert CompareResult.read(path.parent).to_json() == {"component_diff": None, "state_kernel": None, **doc}


def test_a_trace_finds_its_point() -> None:
    """The point a trace came from, with its recorded timing (what `tracekit diff` shows as p10–p90)."""
    trace = DATA / "h200_state_kernel" / "tracekit" / "mamba2_decode_b64_l64_cg.json.gz"
    item = find_for_trace(trace)
    assert item is not None and item.manifest_point is not None
    assert item.manifest_point.key == ("mamba2", "decode", 64, 64, True)
    assert item.manifest_point.timing_ms("p10_ms") == pytest.approx(0.9771648)
    assert item.point.mode == "decode" and item.point.device == "NVIDIA H200"
