"""A sweep survives out-of-memory points, leaves a valid manifest on Ctrl-C, and shards over processes."""

from __future__ import annotations

import json

import pytest
import torch
from tracekit.collectors import manifest as mf
from tracekit.collectors.measure import PointRunner
from tracekit.collectors.spec import CollectSpec, Point
from tracekit.collectors.sweep import merge_shards, run_collect, shard_points


def _spec(out, **kw) -> CollectSpec:
    base = dict(
        archs=("mamba1",),
        preset="tiny",
        device="cpu",
        seqlens=(8, 16, 24),
        batch=1,
        modes=("prefill",),
        warmup=0,
        repeats=1,
        out_dir=str(out),
    )
    base.update(kw)
    return CollectSpec(**base)


def test_oom_point_fails_and_sweep_goes_on(tmp_path, monkeypatch):
    real = PointRunner.run
    released = []

    def run(self, p, warmup, repeats, trace_path):
        if p.seqlen == 16:
            trace_path.write_bytes(b"partial")  # a half-written trace must not survive
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, p, warmup, repeats, trace_path)

    monkeypatch.setattr(PointRunner, "run", run)
    monkeypatch.setattr("tracekit.collectors.sweep._release", lambda: released.append(1))
    doc = run_collect(_spec(tmp_path))
    assert [e["status"] for e in doc["points"]] == ["ok", "failed", "ok"]
    failed = doc["points"][1]
    assert failed["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert failed["trace"] is None and failed["timing"] is None and failed["tokens_per_s"] is None
    assert not (tmp_path / "mamba1_prefill_b1_l16.json.gz").exists()
    assert released  # memory was released after the failure
    assert mf.validate(mf.read(tmp_path / "manifest.json")) == []


def test_ctrl_c_leaves_valid_manifest_with_finished_points(tmp_path, monkeypatch):
    real = PointRunner.run

    def run(self, p, warmup, repeats, trace_path):
        if p.seqlen == 24:
            raise KeyboardInterrupt
        return real(self, p, warmup, repeats, trace_path)

    monkeypatch.setattr(PointRunner, "run", run)
    with pytest.raises(KeyboardInterrupt):
        run_collect(_spec(tmp_path))
    doc = json.loads((tmp_path / "manifest.json").read_text())  # plain json: complete, parseable
    assert mf.validate(doc) == []
    assert [(e["seqlen"], e["status"]) for e in doc["points"]] == [(8, "ok"), (16, "ok"), (24, "interrupted")]
    assert not list(tmp_path.glob(".manifest*.tmp"))


@pytest.mark.slow
def test_manifest_rewritten_after_every_point(tmp_path, monkeypatch):
    seen = []
    real_write = mf.write_atomic

    def write(path, doc):
        real_write(path, doc)
        seen.append(len(json.loads(path.read_text())["points"]))

    monkeypatch.setattr(mf, "write_atomic", write)
    run_collect(_spec(tmp_path, profile=False))
    assert seen == [0, 1, 2, 3]


def test_shard_points_round_robin():
    pts = [Point("mamba1", "prefill", 1, L, 0, False) for L in (1, 2, 3, 4, 5)]
    assert [[p.seqlen for p in s] for s in shard_points(pts, 2)] == [[1, 3, 5], [2, 4]]


@pytest.mark.slow
def test_sharded_sweep_over_two_cpu_processes(tmp_path):
    spec = _spec(
        tmp_path,
        archs=("mamba1", "mamba2"),
        seqlens=(8, 16),
        modes=("prefill", "decode"),
        decode_steps=2,
        devices=("cpu", "cpu"),
    )
    doc = run_collect(spec)
    plan = spec.resolve().points()
    assert [(e["arch"], e["mode"], e["seqlen"]) for e in doc["points"]] == [(p.arch, p.mode, p.seqlen) for p in plan]
    assert all(e["status"] == "ok" and (tmp_path / e["trace"]).is_file() for e in doc["points"])
    assert [s["returncode"] for s in doc["shards"]] == [0, 0]
    for i in range(2):  # each worker ran exactly its round-robin share
        shard = mf.read(tmp_path / f"manifest.shard{i}.json")
        assert [(e["arch"], e["mode"], e["seqlen"]) for e in shard["points"]] == [
            (p.arch, p.mode, p.seqlen) for p in plan[i::2]
        ]
    assert mf.validate(doc) == []
    assert mf.read(tmp_path / "manifest.json") == json.loads(json.dumps(doc))


def test_merge_marks_points_of_a_dead_worker_failed(tmp_path):
    pts = [Point("mamba1", "prefill", 1, L, 0, False) for L in (8, 16, 24)]
    rs = _spec(tmp_path).resolve()
    # worker 0 finished its first point, then crashed; worker 1 never wrote anything
    doc0 = mf.new_manifest(
        backend=rs.backend, dtype=rs.dtype, device="cpu", weights="random", seed=0, models={}, spec={}
    )
    doc0["points"] = [
        {
            "arch": "mamba1",
            "mode": "prefill",
            "batch": 1,
            "seqlen": 8,
            "decode_steps": 0,
            "cuda_graphs": False,
            "status": "ok",
        }
    ]
    mf.write_atomic(tmp_path / "manifest.shard0.json", doc0)
    merged = merge_shards(tmp_path, 2, pts, [1, -9], ["0", "1"])
    assert [e["status"] for e in merged["points"]] == ["ok", "failed", "failed"]
    assert "worker 1 exited with code -9" in merged["points"][1]["error"]
    assert "worker 0 exited with code 1" in merged["points"][2]["error"]
    # after the user's interrupt, a worker killed by a signal (torch's profiler can segfault on a
    # KeyboardInterrupt) is interrupted, not failed; a worker's own error exit still fails its points
    merged = merge_shards(tmp_path, 2, pts, [1, -11], ["0", "1"], interrupted=True)
    assert [e["status"] for e in merged["points"]] == ["ok", "failed"]
    assert "worker 0 exited with code 1" in merged["points"][1]["error"]
    assert [sh["returncode"] for sh in merged["shards"]] == [1, -11]


def _wait_for_points(path, n, proc, timeout=120.0):
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return
        try:
            if len(json.loads(path.read_text())["points"]) >= n:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [None, "cpu,cpu"])
def test_real_sigint_to_the_cli(tmp_path, devices):
    """A real SIGINT (not a simulated exception) to `tracekit collect`, one process or sharded."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "tracekit.cli.main",
        "collect",
        "--arch",
        "mamba1",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--seqlens",
        ",".join(str(8 * i) for i in range(1, 41)),
        "--batch",
        "1",
        "--mode",
        "prefill",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    if devices:
        argv += ["--devices", devices]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = out / ("manifest.shard0.json" if devices else "manifest.json")
    _wait_for_points(watch, 2, proc)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err
    doc = json.loads((out / "manifest.json").read_text())
    assert mf.validate(doc) == []
    statuses = [e["status"] for e in doc["points"]]
    assert 2 <= statuses.count("ok") < 40
    assert set(statuses) <= {"ok", "interrupted"}
    for e in doc["points"]:
        if e["status"] == "ok":
            assert (out / e["trace"]).is_file()


def test_quantiles_match_statistics_inclusive():
    """p10/p90 use linear interpolation (numpy's default) = statistics.quantiles(method='inclusive')."""
    import random
    import statistics

    from tracekit.collectors.measure import quantile

    rng = random.Random(0)
    for n in (2, 3, 5, 10, 160):
        xs = [rng.randrange(10**6) for _ in range(n)]
        q = statistics.quantiles(xs, n=10, method="inclusive")
        assert quantile(xs, 0.1) == pytest.approx(q[0]) and quantile(xs, 0.9) == pytest.approx(q[-1])
    assert quantile([7], 0.9) == 7.0
