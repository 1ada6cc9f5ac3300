"""`tracekit collect` CLI: one-line usage errors before any work, a run end to end, and the import rule
(the collect path must run where duckdb/polars are absent)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tracekit.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "mamba-ssm", "--device", "cpu"], "--backend mamba-ssm needs a CUDA device"),
        (["--preset", "9b"], "unknown preset '9b'"),
        (["--arch", "mamba3"], "unknown arch 'mamba3'"),
        (["--seqlens", "64,abc"], "--seqlens takes comma-separated integers"),
        (["--mode", "train"], "--mode must be a list of prefill, decode"),
        (["--cuda-graphs", "on", "--device", "cpu"], "--cuda-graphs needs --backend mamba-ssm"),
        (["--state-kernel", "tracekit", "--device", "cpu"], "--state-kernel tracekit needs --backend mamba-ssm"),
        (["--config", "d_state"], "bad --config 'd_state'"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--dtype", "fp8"], "--dtype must be one of"),
        (["--device", "cuda"], "CUDA is not available"),
    ],
)
def test_usage_errors_are_one_line_before_work(tmp_path, capsys, args, message):
    out_dir = tmp_path / "run"
    argv = ["collect", "--preset", "tiny", "--device", "cpu", "--out", str(out_dir), *args]
    if args[:2] == ["--device", "cuda"] and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("tracekit: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists()  # nothing was started


@pytest.mark.slow
def test_cli_run_writes_manifest_and_summary(tmp_path, capsys):
    out_dir = tmp_path / "run"
    main(
        [
            "collect",
            "--arch",
            "mamba1",
            "--preset",
            "tiny",
            "--config",
            "d_state=4",
            "--device",
            "cpu",
            "--seqlens",
            "8",
            "--batch",
            "1",
            "--mode",
            "prefill,decode",
            "--decode-steps",
            "2",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--out",
            str(out_dir),
        ]
    )
    out, _ = capsys.readouterr()
    assert "2/2 points ok" in out and "mamba1 prefill b1 l8" in out and "mamba1 decode b1 l8" in out
    # the profiler's native lines went to the run's log, which the closing note names
    assert "profiler_start" in (out_dir / "collect.log").read_text()
    assert "library output: " in out and "collect.log" in out
    doc = json.loads((out_dir / "manifest.json").read_text())
    assert doc["models"]["mamba1"]["d_state"] == 4
    assert doc["state_kernel"] is None and doc["spec"]["state_kernel"] == "mamba-ssm"  # hf: its own decode path
    assert {e["trace"] for e in doc["points"]} == {"mamba1_prefill_b1_l8.json.gz", "mamba1_decode_b1_l8.json.gz"}


ALLOWED = {"torch", "mamba_ssm", "causal_conv1d", "transformers", "click", "rich", "tracekit", "__future__"}


def _collect_path_files() -> list[Path]:
    return [*sorted((ROOT / "collectors").glob("*.py")), ROOT / "tracekit" / "cli" / "collect_cmd.py"]


def test_collect_path_imports_only_allowed_modules():
    """Static check of every import statement (module level and inside functions)."""
    bad = []
    for f in _collect_path_files():
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for n in names:
                top = n.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    bad.append(f"{f.name}: {n}")
    assert bad == []


@pytest.mark.slow
def test_collect_runs_with_duckdb_and_polars_unimportable(tmp_path):
    """Run a real (tiny) collect in a subprocess where importing duckdb or polars fails."""
    code = f"""
import sys
sys.modules["duckdb"] = None
sys.modules["polars"] = None
from tracekit.cli.main import main
try:
    main(["collect", "--arch", "mamba2", "--preset", "tiny", "--device", "cpu", "--seqlens", "8", "--batch", "1",
          "--mode", "prefill", "--warmup", "0", "--repeats", "1", "--out", {str(tmp_path / "run")!r}])
except SystemExit as e:
    sys.exit(e.code)
import tracekit.collectors.check, tracekit.collectors.worker  # noqa
assert sys.modules.get("duckdb") is None and sys.modules.get("polars") is None
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "mamba2_prefill_b1_l8.json.gz").is_file()
