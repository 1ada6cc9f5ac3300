"""Every Kineto generation's categories and arg spellings reach the typed views, the links and `attribute`.

The fixtures in tests/data/conformance/kineto_*.json follow what each exporter writes (docs/schema.md#categories
names the sources): PyTorch 1.8 ("Operator", "Runtime", "Kernel", "Memcpy", "Memset", "User", lowercase
"external id" on runtime calls and GPU events, integer µs), PyTorch 1.10 (lowercase CPU categories, capitalised
CUPTI ones), ROCm/HIP (HIP calls under cuda_runtime, "cid"), Intel XPU ("xpu_runtime"/"xpu_driver", "sycl queue"
instead of "stream", deviceProperties and computeProperties), MTIA ("mtia_runtime", "mtia_ccp_events") and a
PrivateUse1 backend ("privateuse1_runtime"/"privateuse1_driver", only computeProperties).
Expectations come from a plain `json` reading of each file, with the spellings of the alias table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import tracekit
from tests import plain_reader
from tracekit.errors import TracekitError
from tracekit.schema import SCHEMA_VERSION

DATA = Path(__file__).parents[1] / "data"
CONFORMANCE = DATA / "conformance"
GENERATIONS = [
    "kineto_pt1.8_cuda.json",
    "kineto_pt1.10_cuda.json",
    "kineto_rocm_hip.json",
    "kineto_rocm_pt1.10_hip.json",
    "kineto_xpu.json",
    "kineto_mtia.json",
    "kineto_privateuse1.json",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path):
    d = tracekit.open(tmp_path / "t.duckdb")
    yield d
    d.close()


def _aliases(db) -> dict[str, str]:
    return dict(db.sql("select alias, category from category_aliases").rows())


def _canon(aliases: dict[str, str], cat: object) -> str | None:
    return None if cat is None else aliases.get(str(cat).lower(), str(cat).lower())


def _spellings(aliases: dict[str, str], *categories: str) -> set[str]:
    return {a for a, c in aliases.items() if c in categories} | set(categories)


def _x(doc: dict) -> list[tuple[int, dict]]:
    """The complete events with a 'dur' (one without is unfinished: no slice, docs/schema.md)."""
    return [
        (i, e)
        for i, e in enumerate(doc["traceEvents"])
        if isinstance(e, dict) and e.get("ph") == "X" and e.get("dur") is not None
    ]


def _ext(e: dict) -> int | None:
    args = e.get("args") or {}
    v = args.get("External id", args.get("external id"))
    return int(v) if v is not None else None


def _int(v: object) -> int | None:
    """An int, or a hex handle such as older ROCm's quoted stream pointer "0x5581a2b3c4d0" (DuckDB casts it too)."""
    try:
        return int(v, 0) if isinstance(v, str) else int(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _correlation(doc: dict, i: int, flow_ph: str) -> int | None:
    """args.correlation, else the id of the launch flow event (flow_ph 's' or 'f') bound to event i."""
    e = doc["traceEvents"][i]
    if "correlation" in (e.get("args") or {}):
        return int(e["args"]["correlation"])
    ids = [
        int(f["id"])
        for f in doc["traceEvents"]
        if f.get("ph") == flow_ph
        and str(f.get("pid")) == str(e.get("pid"))
        and str(f.get("tid")) == str(e.get("tid"))
        and plain_reader.ns(f["ts"]) == plain_reader.ns(e["ts"])
    ]
    return min(ids) if ids else None


def _enclosing(doc: dict, i: int) -> int | None:
    """The innermost X event on event i's track that contains it (plain: latest start, then shortest)."""
    e = doc["traceEvents"][i]
    lo, hi = plain_reader.ns(e["ts"]), plain_reader.ns(e["ts"]) + plain_reader.ns(e["dur"])
    cands = [
        (plain_reader.ns(p["ts"]), -plain_reader.ns(p["dur"]), j)
        for j, p in _x(doc)
        if j != i
        and str(p.get("pid")) == str(e.get("pid"))
        and str(p.get("tid")) == str(e.get("tid"))
        and plain_reader.ns(p["ts"]) <= lo
        and plain_reader.ns(p["ts"]) + plain_reader.ns(p["dur"]) >= hi
    ]
    return max(cands)[2] if cands else None


# ---------------------------------------------------------------------------------------------- alias table
def test_alias_table_is_lowercase_and_closed(db) -> None:
    aliases = _aliases(db)
    assert all(a == a.lower() for a in aliases)
    canon = set(aliases.values())
    assert all(aliases.get(c) == c for c in canon), "every canonical category is its own alias"
    for legacy, want in {
        "kernel": "kernel",
        "runtime": "cuda_runtime",
        "memcpy": "gpu_memcpy",
        "memset": "gpu_memset",
        "operator": "cpu_op",
        "python": "python_function",
        "mtia_ccp_events": "kernel",
        "xpu_runtime": "cuda_runtime",
        "privateuse1_driver": "cuda_driver",
    }.items():
        assert aliases[legacy] == want


# ------------------------------------------------------------------- every fixture: kernels in any spelling
def _all_fixtures() -> list[Path]:
    return sorted(p for p in CONFORMANCE.glob("*") if p.is_file() and ".json" in p.name)


@pytest.mark.parametrize("trace", _all_fixtures(), ids=lambda p: p.name)
def test_kernels_view_holds_every_kernel_spelling(db, trace: Path) -> None:
    """For every conformance fixture that ingests: `kernels` = the X events whose category is a kernel one."""
    try:
        doc = plain_reader.load(trace)
    except Exception as exc:  # a fixture meant to be refused, or a container the plain reader does not open
        pytest.skip(f"plain reader cannot read it: {exc}")
    (r,) = db.ingest([trace])
    if r.error:
        pytest.skip(f"refused by design: {r.error}")
    spell = _spellings(_aliases(db), "kernel")
    legacy = {"CUDA functions": "(cuda functions)", "CPU functions": "(cpu functions)"}  # no cat: the pid says
    kern = [e for _, e in _x(doc) if str(e["cat"] if "cat" in e else legacy.get(e.get("pid"))).lower() in spell]
    got = db.sql("select ts_ns, dur_ns from kernels where trace_id = ? order by ts_ns, dur_ns", [r.trace_id]).rows()
    assert got == sorted((plain_reader.ns(e["ts"]), plain_reader.ns(e["dur"])) for e in kern)
    assert r.kernels == len(kern)


# ------------------------------------------------------------------------------------ per generation
@pytest.mark.parametrize("name", GENERATIONS)
def test_generation_views_and_categories(db, name: str) -> None:
    trace = CONFORMANCE / name
    doc = plain_reader.load(trace)
    (r,) = db.ingest([trace])
    assert r.error is None
    tid = r.trace_id
    aliases = _aliases(db)
    xs = _x(doc)
    # raw cat kept, category canonical, for every event
    rows = dict(
        (
            (i, (c, g))
            for i, c, g in db.sql("select event_id, cat, category from events where trace_id = ?", [tid]).rows()
        )
    )
    assert rows == {i: (e.get("cat"), _canon(aliases, e.get("cat"))) for i, e in xs}
    kern = [e for _, e in xs if _canon(aliases, e.get("cat")) == "kernel"]
    assert kern, "every generation fixture has kernels"
    k = db.sql("select count(*), sum(dur_ns)::BIGINT from kernels where trace_id = ?", [tid]).row(0)
    assert k == (len(kern), sum(plain_reader.ns(e["dur"]) for e in kern))
    gpu = [e for _, e in xs if _canon(aliases, e.get("cat")) in ("kernel", "gpu_memcpy", "gpu_memset")]
    assert db.sql("select count(*) from gpu_events where trace_id = ?", [tid]).item() == len(gpu)
    rt = [e for _, e in xs if _canon(aliases, e.get("cat")) in ("cuda_runtime", "cuda_driver")]
    assert db.sql("select count(*) from runtime where trace_id = ?", [tid]).item() == len(rt) > 0
    ops = [e for _, e in xs if _canon(aliases, e.get("cat")) == "cpu_op"]
    assert db.sql("select count(*) from cpu_ops where trace_id = ?", [tid]).item() == len(ops) > 0
    # every track holding device work is a 'gpu' track
    tracks = {(str(e["pid"]), str(e["tid"])) for e in gpu}
    kinds = dict(
        ((p, t), k) for p, t, k in db.sql("select pid, tid, kind from tracks where trace_id = ?", [tid]).rows()
    )
    assert {kinds[t] for t in tracks} == {"gpu"}
    # stream: "stream", or XPU's "sycl queue"
    want_streams = sorted((_int(e["args"].get("stream", e["args"].get("sycl queue"))) for e in kern), key=str)
    got_streams = db.sql("select stream from kernels where trace_id = ?", [tid])["stream"].to_list()
    assert sorted(got_streams, key=str) == want_streams


@pytest.mark.parametrize("name", GENERATIONS)
def test_generation_links(db, name: str) -> None:
    """launch_id: the runtime/driver call with the same correlation (args, else the launch flow's id);
    op_id: the CPU op with the same External id, else the event enclosing the launch."""
    trace = CONFORMANCE / name
    doc = plain_reader.load(trace)
    (r,) = db.ingest([trace])
    aliases = _aliases(db)
    xs = _x(doc)
    runtime = _spellings(aliases, "cuda_runtime", "cuda_driver")
    cpu = _spellings(aliases, "cpu_op", "user_annotation")
    launch_of: dict[int, int] = {}
    for i, e in xs:
        if str(e.get("cat")).lower() in runtime and (c := _correlation(doc, i, "s")) is not None:
            launch_of.setdefault(c, i)
    op_of = {_ext(e): i for i, e in xs if str(e.get("cat")).lower() in cpu and _ext(e)}
    links = {
        i: (corr, ext, lid, oid)
        for i, corr, ext, lid, oid in db.sql(
            "select event_id, correlation, external_id, launch_id, op_id from gpu_events where trace_id = ?",
            [r.trace_id],
        ).rows()
    }
    assert links
    for i, e in xs:
        if i in links:
            corr = _correlation(doc, i, "f")
            launch = launch_of[corr]
            op = op_of.get(_ext(e), _enclosing(doc, launch))
            assert op is not None and links[i] == (corr, _ext(e), launch, op), (i, e["name"])
    # runtime calls link to their op too
    for i, oid in db.sql("select event_id, op_id from runtime where trace_id = ?", [r.trace_id]).rows():
        assert oid == op_of.get(_ext(doc["traceEvents"][i]), _enclosing(doc, i))


@pytest.mark.parametrize("name", GENERATIONS)
def test_generation_device_properties(db, name: str) -> None:
    doc = plain_reader.load(CONFORMANCE / name)
    (r,) = db.ingest([CONFORMANCE / name])
    props, meta = db.sql(
        "select device_properties::VARCHAR, metadata::VARCHAR from traces where trace_id = ?", [r.trace_id]
    ).row(0)
    want = doc.get("deviceProperties", doc.get("computeProperties"))
    assert (json.loads(props) if props else None) == (json.loads(json.dumps(want, default=str)) if want else None)
    meta = json.loads(meta)
    assert "deviceProperties" not in meta
    assert ("computeProperties" in meta) == ("deviceProperties" in doc and "computeProperties" in doc)


@pytest.mark.parametrize("name", GENERATIONS)
def test_attribute_cli_reports_the_kernel_total(tmp_path: Path, name: str) -> None:
    """`tracekit attribute --format json` sees the GPU kernels, not a "CPU-only trace" with 0 ns."""
    trace = CONFORMANCE / name
    doc = plain_reader.load(trace)
    spell = {"kernel", "mtia_ccp_events"}
    legacy = {"CUDA functions": "(cuda functions)", "CPU functions": "(cpu functions)"}  # no cat: the pid says
    kern = [e for _, e in _x(doc) if str(e["cat"] if "cat" in e else legacy.get(e.get("pid"))).lower() in spell]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekit.cli.main",
            "attribute",
            "--trace",
            str(trace),
            "--format",
            "json",
            "--db",
            str(tmp_path / "a.duckdb"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    res = res[0] if isinstance(res, list) else res
    assert res["time_source"] == "gpu"
    assert res["total"]["kernels"] == len(kern)
    assert res["total"]["gpu_time_ns"] == sum(plain_reader.ns(e["dur"]) for e in kern) > 0


# --------------------------------------------------------------------------------------------- migration
def _make_v1(path: Path, source: Path) -> None:
    """A schema-v1 database (the v1 DDL as shipped, tests/data/schema_v1) holding `source`'s rows as v1 left them:
    no category, correlation only from args, External ids only from "External id", stream only from "stream",
    no links, no 'gpu' tracks,
    computeProperties only in metadata."""
    con = duckdb.connect(str(path))
    for f in sorted((DATA / "schema_v1").glob("*.sql")):
        con.execute(f.read_text())
    con.execute("INSERT INTO tracekit_meta VALUES ('schema_version', '1')")
    con.execute(f"ATTACH '{source}' AS s (READ_ONLY)")
    for t in ("traces", "events", "instants", "memory", "flows", "tracks", "other_events"):
        cols = [
            c
            for (c,) in con.execute(
                "select column_name from information_schema.columns where table_catalog = current_database() "
                "and table_name = ? order by ordinal_position",
                [t],
            ).fetchall()
        ]
        con.execute(f"INSERT INTO {t} SELECT {', '.join(cols)} FROM s.{t}")
    con.execute("SELECT setval('trace_id_seq', (SELECT max(trace_id) FROM traces))")
    con.execute("""UPDATE events SET launch_id = NULL, op_id = NULL,
                   correlation = TRY_CAST(args->>'$.correlation' AS BIGINT),
                   external_id = TRY_CAST(args->>'$."External id"' AS BIGINT),
                   stream = TRY_CAST(args->>'$.stream' AS BIGINT)""")
    con.execute("UPDATE tracks SET kind = 'cpu' WHERE kind = 'gpu'")
    con.execute("""UPDATE traces SET metadata = json_merge_patch(metadata,
                       json_object('computeProperties', device_properties)), device_properties = NULL
                   WHERE json_extract(metadata, '$.computeProperties') IS NULL AND name LIKE '%privateuse1%'""")
    con.execute("DETACH s")
    con.close()


def test_v1_database_is_migrated_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = tmp_path / "v2.duckdb"
    with tracekit.open(fresh) as d:
        assert all(r.error is None for r in d.ingest([CONFORMANCE / n for n in GENERATIONS]))
    old = tmp_path / "v1.duckdb"
    _make_v1(old, fresh)
    with duckdb.connect(str(fresh), read_only=True) as c:
        n_kernels = c.execute("select count(*) from kernels").fetchone()[0]
    with duckdb.connect(str(old), read_only=True) as c:  # v1's views matched the raw cat: most kernels missing
        assert c.execute("select count(*) from kernels").fetchone()[0] < n_kernels

    with pytest.raises(TracekitError, match=r"schema v1 is older than this tracekit .* --write"):
        _ro(old)
    with pytest.raises(SystemExit) as e:
        _main()(["query", "--db", str(old), "select count(*) from kernels"])
    err = capsys.readouterr().err
    assert e.value.code != 0 and len(err.strip().splitlines()) == 1 and "older than this tracekit" in err

    with tracekit.open(old) as d:  # a writable open upgrades
        assert d.sql("select value from tracekit_meta where key = 'schema_version'").item() == str(SCHEMA_VERSION)
    con = duckdb.connect()
    con.execute(f"ATTACH '{old}' AS a (READ_ONLY); ATTACH '{fresh}' AS b (READ_ONLY)")
    for t in ("events", "tracks", "memory", "instants", "flows", "other_events", "category_aliases"):
        ca = con.execute(
            f"select column_name from information_schema.columns where table_catalog = 'a' "
            f"and table_name = '{t}' order by ordinal_position"
        ).fetchall()
        cb = con.execute(
            f"select column_name from information_schema.columns where table_catalog = 'b' "
            f"and table_name = '{t}' order by ordinal_position"
        ).fetchall()
        assert ca == cb, t
        for x, y in (("a", "b"), ("b", "a")):
            assert con.execute(f"select count(*) from (from {x}.{t} except all from {y}.{t})").fetchone()[0] == 0, t
    props = "select trace_id, device_properties::VARCHAR from {}.traces order by 1"
    parsed = [[(i, json.loads(p) if p else None) for i, p in con.execute(props.format(x)).fetchall()] for x in "ab"]
    assert parsed[0] == parsed[1]
    assert con.execute("select count(*) from a.kernels").fetchone()[0] == n_kernels
    con.close()
    # and it stays usable: ingest more into the migrated store
    with tracekit.open(old) as d:
        (r,) = d.ingest([plain_copy(tmp_path)])
        assert r.error is None and r.kernels == 2


def plain_copy(tmp_path: Path) -> Path:
    p = tmp_path / "again.json"
    doc = json.loads((CONFORMANCE / "kineto_pt1.8_cuda.json").read_text())
    doc["traceEvents"].append({"ph": "i", "s": "g", "name": "copy", "pid": "", "tid": "", "ts": 1601})
    p.write_text(json.dumps(doc))
    return p


def _ro(path: Path):
    from tracekit.store.database import Database

    return Database(path, read_only=True)


def _main():
    from tracekit.cli.main import main

    return main


def test_docs_list_every_alias_row(db) -> None:
    doc = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    for alias, category, note in db.sql("select alias, category, note from category_aliases").rows():
        assert f"| `{alias}` | `{category}` | {note} |" in doc, alias
