"""Every machine output (JSON, CSV, compare.json, report.md) byte-for-byte against golden files (issue #21).

Each command that prints JSON or CSV runs through click's CliRunner, in this process, on every trace fixture
under tests/data (the conformance suite, the serving traces, the real H100/H200 traces, collect run folders,
a prune-compare folder) and its output is compared with `tests/data/golden/NAME`. A refactor that keeps what
users and scripts read must keep these files unchanged.

Regenerate the goldens (only when a change of output is intended, and say so in the commit):

    TRACEKIT_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q tests/e2e/test_outputs_stable.py

Only what is really nondeterministic is normalised (see `_normalise` and `_zero_wall_clock`): the absolute
paths of the checkout and of pytest's temporary folder (compare.json names its traces and folder), the host
name compare.md names, and the wall-clock columns of the ingest summary (seconds, MB/s, parse time).
Everything else (trace ids, nanoseconds, float digits, key order, CSV quoting) is compared as printed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracekit.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
GOLDEN = DATA / "golden"
RESULTS = REPO / "benchmarks" / "results"
REGEN = os.environ.get("TRACEKIT_REGEN_GOLDEN") == "1"

# Fixture sets: each is attributed in one `tracekit attribute` call (several --trace, or a --run).
SETS: dict[str, list[str]] = {
    "conformance": [f"--trace={p}" for p in sorted((DATA / "conformance").glob("*.json"))],
    "serving": [f"--trace={p}" for p in sorted((DATA / "serving").glob("*.json"))],
    "h100": [f"--trace={p}" for p in sorted((DATA / "h100").glob("*.json.gz"))]
    + [f"--trace={DATA / 'h100_mamba2-130m_decode_b64_l2048_cg.json.gz'}"],
    # a collect run folder (--run), and traces found inside run folders (their manifests give the config)
    "runs": [f"--run={DATA / 'h200_graph' / 'b8'}"]
    + [f"--trace={p}" for p in sorted((DATA / "h200_graph" / "b64").glob("*.json.gz"))]
    + [f"--trace={p}" for p in sorted((DATA / "h200_state_kernel").glob("*/*.json.gz"))],
}
ALL_TRACES = [a.split("=", 1)[1] for k in ("conformance", "serving", "h100") for a in SETS[k]] + [
    str(p) for p in sorted((DATA / "h200_graph").glob("*/*.json.gz")) + sorted(DATA.glob("h200_state_kernel/*/*.gz"))
]
WALL_CLOCK = ("seconds", "mb_per_s", "time_parse")  # the ingest summary's timings


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder and one database for the module; every fixture trace is ingested first, in a fixed order,
    so trace ids do not depend on which test runs first."""
    tmp = tmp_path_factory.mktemp("golden")
    out = _run(tmp, "ingest", *ALL_TRACES, "--db", str(tmp / "t.duckdb"), "--format", "json")
    _check("ingest.json", _zero_wall_clock(out, "json"), tmp)
    # the store as ingest left it, before any attribution fills kernel_components: what the store outputs see,
    # whichever tests ran first
    shutil.copy(tmp / "t.duckdb", tmp / "ingested.duckdb")
    return tmp


def _run(tmp: Path, *args: str) -> str:
    """`tracekit ARGS` in this process; its stdout (exit 0 asserted, stderr shown on failure)."""
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "120"})
    assert r.exit_code == 0, f"tracekit {' '.join(args)}: exit {r.exit_code}\n{r.stderr[-2000:]}"
    return r.stdout


def _normalise(text: str, tmp: Path) -> str:
    """Absolute paths of this checkout and of the temporary folder, and the host name, as placeholders."""
    for path, name in ((tmp.resolve(), "<TMP>"), (tmp, "<TMP>"), (REPO, "<REPO>")):
        text = text.replace(str(path), name)
    return text.replace(platform.node(), "<HOST>")


def _zero_wall_clock(text: str, fmt: str) -> str:
    """The ingest summary with its wall-clock columns set to 0 (all else as printed)."""
    if fmt == "json":
        rows = json.loads(text)
        return json.dumps([{k: (0 if k in WALL_CLOCK else v) for k, v in r.items()} for r in rows], indent=2)
    rows = list(csv.reader(io.StringIO(text)))
    cols = [i for i, name in enumerate(rows[0]) if name in WALL_CLOCK]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [rows[0]] + [[("0" if i in cols else v) for i, v in enumerate(r)] for r in rows[1:]]
    )
    return buf.getvalue()


def _check(name: str, text: str, tmp: Path) -> None:
    """`text` (normalised) equals tests/data/golden/NAME; with TRACEKIT_REGEN_GOLDEN=1 it becomes it."""
    text = _normalise(text, tmp)
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path}: no golden file (TRACEKIT_REGEN_GOLDEN=1 writes it)"
    want = path.read_text()
    if text != want:
        at = next((i for i, (x, y) in enumerate(zip(text, want, strict=False)) if x != y), min(len(text), len(want)))
        lo = max(0, at - 200)
        pytest.fail(
            f"{name}: output changed at character {at}:\n got: {text[lo : at + 200]!r}\nwant: {want[lo : at + 200]!r}"
        )


@pytest.mark.parametrize("by", ["component", "layer", "kernel", "category", "stream"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("fixtures", list(SETS))
def test_attribute(work: Path, fixtures: str, by: str, fmt: str) -> None:
    out = _run(work, "attribute", *SETS[fixtures], "--db", str(work / "t.duckdb"), "--by", by, "--format", fmt)
    _check(f"attribute_{fixtures}_{by}.{fmt}", out, work)


M1 = DATA / "h100" / "mamba1-tiny_2layer_b2_l512_h100.json.gz"
M2 = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
DIFFS: dict[str, tuple[str, str]] = {
    "traces": (str(M2), str(M1)),
    "trace_ids": ("2", "1"),
    "runs": (str(DATA / "h200_state_kernel" / "mamba-ssm"), str(DATA / "h200_state_kernel" / "tracekit")),
    "compare_rows": (
        f"{RESULTS / 'h100_prune_compare' / 'decode_b64'}#dense",
        f"{RESULTS / 'h100_prune_compare' / 'decode_b64'}#physical_r0.5",
    ),
}


@pytest.mark.parametrize("kind", list(DIFFS))
def test_diff(work: Path, kind: str) -> None:
    a, b = DIFFS[kind]
    db = ("--db", str(work / "t.duckdb"))
    _check(f"diff_{kind}.json", _run(work, "diff", a, b, *db, "--format", "json"), work)
    for by in ("component", "layer", "kernel"):
        _check(f"diff_{kind}_{by}.csv", _run(work, "diff", a, b, *db, "--by", by, "--format", "csv"), work)
    _check(f"diff_{kind}_component.md", _run(work, "diff", a, b, *db, "--format", "markdown"), work)


def test_store_outputs(work: Path) -> None:
    db = ("--db", str(work / "ingested.duckdb"))
    again = _run(work, "ingest", str(M1), str(M2), *db, "--format", "csv")
    _check("ingest_again.csv", _zero_wall_clock(again, "csv"), work)
    for fmt in ("json", "csv"):
        _check(f"tables.{fmt}", _run(work, "tables", *db, "--format", fmt), work)
        sql = "select trace_id, name, count(*) n, sum(dur_ns) ns from kernels group by all order by all limit 50"
        _check(f"query.{fmt}", _run(work, "query", sql, *db, "--format", fmt), work)


@pytest.fixture(scope="module")
def compare_dir(work: Path) -> Path:
    """A `prune compare --phase collect` folder made of committed runs: the mamba-ssm state-kernel run as
    `dense`, the tracekit one as `physical_r0.5` (the outputs only need two attributed runs to compare)."""
    out = work / "cmp"
    for label, src in (("dense", "mamba-ssm"), ("physical_r0.5", "tracekit")):
        shutil.copytree(DATA / "h200_state_kernel" / src, out / "runs" / label)
    plan = json.loads((RESULTS / "h100_prune_compare" / "decode_b64" / "compare_plan.json").read_text())
    plan["variants"] = [
        {"label": "dense", "variant": "dense", "ratio": 0.0, "d_state": 128, "k": 128},
        {"label": "physical_r0.5", "variant": "physical", "ratio": 0.5, "d_state": 64, "k": 64},
    ]
    (out / "compare_plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return out


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_prune_compare_analyze(work: Path, compare_dir: Path, fmt: str) -> None:
    out = _run(work, "prune", "compare", "--phase", "analyze", "--out", str(compare_dir), "--format", fmt)
    _check(f"prune_compare.{fmt}", out, work)
    _check("prune_compare_compare.json", (compare_dir / "compare.json").read_text(), work)
    _check("prune_compare_compare.md", (compare_dir / "compare.md").read_text(), work)


def test_report_markdown(work: Path, compare_dir: Path) -> None:
    """`tracekit report`'s machine-readable output, report.md, over a run, compare folders and accuracy."""
    if not (compare_dir / "compare.json").is_file():
        _run(work, "prune", "compare", "--phase", "analyze", "--out", str(compare_dir), "--format", "json")
    rep = work / "rep"
    inputs = [DATA / "h200_graph" / "b8", compare_dir, RESULTS / "h100_prune_compare"]
    inputs.append(RESULTS / "prune_accuracy_mqar_mamba2.json")
    _run(work, "report", *map(str, inputs), "--out", str(rep), "--db", str(work / "t.duckdb"))
    _check("report.md", (rep / "report.md").read_text(), work)
