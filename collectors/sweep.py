"""Run a collect sweep: the public entry point `run_collect(spec) -> manifest`.

One process runs every point in order, building each arch's model once. With several `devices` the
points are dealt round-robin to one worker process per device (`python -m tracekit.collectors.worker`,
each with CUDA_VISIBLE_DEVICES set to its GPU), which write `manifest.shard{i}.json`; this process
follows their progress and merges them into one manifest.json.

Robustness: a point that raises (out of memory included) is recorded as failed with its error, memory
is released and the sweep goes on; Ctrl-C records the running point as interrupted, writes the manifest
and re-raises.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tracekit.collectors import manifest as mf
from tracekit.collectors import quiet
from tracekit.collectors.backends import DTYPES, backend_of, build_model, config_from_model, load_pretrained
from tracekit.collectors.measure import PointRunner, timing_stats
from tracekit.collectors.spec import CollectSpec, Point, ResolvedSpec

from tracekit.errors import UsageError
from tracekit.kernels.state_update import use_state_kernel
from tracekit.progress import ProgressEvent, ProgressFn, Stage


def run_collect(
    spec: CollectSpec,
    *,
    models: dict[str, torch.nn.Module] | None = None,
    on_progress: ProgressFn | None = None,
    shard: tuple[int, int] | None = None,
    device_label: str | None = None,
) -> dict[str, Any]:
    """Measure and trace every point of `spec`; return the manifest (also written to out_dir).

    models: already-built models keyed by arch ("mamba1"/"mamba2"), profiled instead of building from
      presets (e.g. a pruned model in memory); their backend and device are taken from the model and
      their config must describe their shapes. To profile a saved model use `spec.pretrained` instead.
    on_progress: told when the sweep starts, when each point starts (its name) and when it is done (its
      manifest entry as the event's result, labelled by `manifest.point_label`).
    shard: (index, count) — run only every count-th point starting at index (used by the workers).
    """
    if models and len(spec.devices) > 1:
        raise UsageError("in-memory models cannot be sharded over devices; save them and use pretrained=")
    rs = _resolve(spec, models)
    if len(spec.devices) > 1 and shard is None:
        return _run_sharded(rs, on_progress)
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = spec.pretrained or ("random" if models is None else "provided")
    doc = mf.new_manifest(
        backend=rs.backend,
        dtype=rs.dtype,
        device=rs.device,
        weights=weights,
        seed=spec.seed,
        models={a: c.to_dict() for a, c in rs.configs.items()},
        spec=dataclasses.asdict(spec),
    )
    doc["state_kernel"] = spec.state_kernel if rs.backend == "mamba-ssm" else None
    name = mf.MANIFEST if shard is None else f"manifest.shard{shard[0]}.json"
    path = out / name
    points = rs.points()
    if shard is not None:
        points = shard_points(points, shard[1])[shard[0]]
    mf.write_atomic(path, doc)
    if on_progress:
        on_progress(ProgressEvent(Stage.COLLECT, 0, len(points)))
    label = device_label or rs.device
    by_arch: dict[str, list[Point]] = {}
    for p in points:
        by_arch.setdefault(p.arch, []).append(p)
    # the decode step's state update for this run (docs/collect.md, --state-kernel); hf keeps its own path
    with use_state_kernel(spec.state_kernel if rs.backend == "mamba-ssm" else "mamba-ssm"):
        for arch, arch_points in by_arch.items():
            runner, build_error = None, None
            quiet.mark(f"{out.name}: build {arch}")
            try:
                runner = _runner(rs, arch, models)
            except Exception as exc:  # OOM or a bad checkpoint: every point of this arch fails
                build_error = _error_text(exc)
                _release()
            for p in arch_points:
                if on_progress:
                    on_progress(ProgressEvent(Stage.COLLECT, len(doc["points"]), len(points), p.name))
                quiet.mark(f"{out.name}: {p.name}")
                try:
                    if runner is None:
                        entry = _entry(p, label, None, mf.PointStatus.FAILED, f"model build failed: {build_error}")
                    else:
                        entry = _measure(runner, p, spec, out, label)
                except KeyboardInterrupt:
                    doc["points"].append(_entry(p, label, None, mf.PointStatus.INTERRUPTED, "interrupted (Ctrl-C)"))
                    mf.write_atomic(path, doc)
                    raise
                doc["points"].append(entry)
                mf.write_atomic(path, doc)
                if on_progress:
                    on_progress(_done(entry, len(doc["points"]), len(points)))
            del runner
            _release()
    return doc


# ---- one process ----------------------------------------------------------------------------------
def _resolve(spec: CollectSpec, models: dict[str, torch.nn.Module] | None) -> ResolvedSpec:
    if not models:
        return spec.resolve()
    first = next(iter(models.values()))
    param = next(first.parameters())
    dtype = {v: k for k, v in DTYPES.items()}[param.dtype]
    spec = dataclasses.replace(
        spec,
        backend=backend_of(first),
        device=str(param.device),
        dtype=dtype,
        archs=tuple(models),
        overrides=(),
        pretrained=None,
    )
    rs = spec.resolve()
    rs.configs = {arch: config_from_model(m) for arch, m in models.items()}
    return rs


def _runner(rs: ResolvedSpec, arch: str, models: dict[str, torch.nn.Module] | None) -> PointRunner:
    cfg = rs.configs[arch]
    dtype = DTYPES[rs.dtype]
    if models:
        model = models[arch].eval()
    elif rs.spec.pretrained:
        model, _ = load_pretrained(rs.spec.pretrained, rs.backend, rs.device, dtype)
    else:
        model = build_model(cfg, rs.backend, rs.device, dtype, rs.spec.seed)
    return PointRunner(model, rs.backend, rs.device, vocab=cfg.vocab_size, seed=rs.spec.seed)


def _measure(runner: PointRunner, p: Point, spec: CollectSpec, out: Path, label: str) -> dict[str, Any]:
    trace_path = out / p.trace_name if spec.profile else None
    try:
        m = runner.run(p, spec.warmup, spec.repeats, trace_path)
    except KeyboardInterrupt:
        _cleanup_trace(trace_path)
        raise
    except Exception as exc:
        _cleanup_trace(trace_path)
        _release()
        return _entry(p, label, None, mf.PointStatus.FAILED, _error_text(exc))
    entry = _entry(p, label, timing_stats(m, spec.repeats, spec.warmup), mf.PointStatus.OK, None)
    entry["trace"] = m.trace
    if m.graph_template:
        entry["graph_template"] = True
    entry["peak_mem_bytes"] = m.peak_mem_bytes
    if m.memory is not None:
        entry["memory"] = m.memory
    _release()
    return entry


def _entry(p: Point, device: str, timing: dict | None, status: mf.PointStatus, error: str | None) -> dict[str, Any]:
    med = timing["median_ms"] if timing else None
    tps = p.tokens / (med / 1e3) if med else None
    return {
        "arch": p.arch,
        "mode": p.mode,
        "batch": p.batch,
        "seqlen": p.seqlen,
        "decode_steps": p.decode_steps,
        "cuda_graphs": p.cuda_graphs,
        "device": device,
        "trace": None,
        "timing": timing,
        "ttft_ms": med if p.mode == "prefill" else None,
        "tpot_ms": med if p.mode == "decode" else None,
        "tokens_per_s": tps,
        "peak_mem_bytes": None,
        "status": status,
        "error": error,
    }


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def _release() -> None:
    """Free what a point left behind, so the next point's peak memory is its own.

    Besides garbage (CUDA-graph caches sit in reference cycles), torch keeps one cuBLAS workspace
    (32 MiB on Hopper) per stream ever used for a GEMM, counted as allocated memory; every CUDA-graph
    capture uses fresh streams, so without clearing them each graph point would inherit 32 MiB more.
    """
    gc.collect()
    if torch.cuda.is_available():
        clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear is not None:
            clear()
        torch.cuda.empty_cache()


def _cleanup_trace(path: Path | None) -> None:
    if path is None:
        return
    for p in (path, path.with_name(path.name + ".tmp"), path.with_name(path.name.removesuffix(".gz") + ".tmp")):
        p.unlink(missing_ok=True)


# ---- several devices ------------------------------------------------------------------------------
def shard_points(points: list[Point], n: int) -> list[list[Point]]:
    """Round-robin: every device gets short and long sequences alike."""
    return [points[i::n] for i in range(n)]


def _run_sharded(rs: ResolvedSpec, on_progress: ProgressFn | None) -> dict[str, Any]:
    spec = rs.spec
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    devices = list(spec.devices)
    n = len(devices)
    points = rs.points()
    for i in range(n):
        (out / f"manifest.shard{i}.json").unlink(missing_ok=True)
    spec_file = out / "collect-spec.json"
    worker_spec = dataclasses.replace(spec, devices=(), device=None, backend=rs.backend, dtype=rs.dtype)
    spec_file.write_text(json.dumps(dataclasses.asdict(worker_spec)))
    procs: list[tuple[subprocess.Popen, Any]] = []
    for i, dev in enumerate(devices):
        env = dict(os.environ)
        if dev == "cpu":
            device, label = "cpu", "cpu"
        else:
            env["CUDA_VISIBLE_DEVICES"] = dev
            device, label = "cuda", f"cuda:{dev}"
        log = open(out / f"shard{i}.log", "w")  # noqa: SIM115 - closed after the worker exits
        cmd = [
            sys.executable,
            "-m",
            "tracekit.collectors.worker",
            "--spec",
            str(spec_file),
            "--shard",
            str(i),
            "--num-shards",
            str(n),
            "--device",
            device,
            "--label",
            label,
        ]
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    if on_progress:
        on_progress(ProgressEvent(Stage.COLLECT, 0, len(points)))
    seen = 0
    interrupted = False
    try:
        while any(p.poll() is None for p, _ in procs):
            seen = _follow(out, n, seen, len(points), on_progress)
            time.sleep(0.3)
    except KeyboardInterrupt:
        interrupted = True
        for p, _ in procs:  # a terminal's Ctrl-C reached them already; a signal sent to us alone did not
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, _ in procs:
            try:
                p.wait(timeout=60)  # each worker writes its finished points, then exits 130
            except subprocess.TimeoutExpired:
                p.kill()
    _follow(out, n, seen, len(points), on_progress)
    for _, log in procs:
        log.close()
    doc = merge_shards(out, n, points, [p.returncode for p, _ in procs], devices, interrupted)
    mf.write_atomic(out / mf.MANIFEST, doc)
    if interrupted:
        raise KeyboardInterrupt
    return doc


def _follow(out: Path, n: int, seen: int, total: int, on_progress: ProgressFn | None) -> int:
    """Report points that shard manifests gained since the last look."""
    entries: list[dict[str, Any]] = []
    for i in range(n):
        f = out / f"manifest.shard{i}.json"
        if f.exists():
            try:
                entries.extend(mf.read(f)["points"])
            except (OSError, ValueError):
                continue
    if on_progress:
        for i in range(seen, len(entries)):
            on_progress(_done(entries[i], i + 1, total))
    return max(seen, len(entries))


def _done(entry: dict[str, Any], done: int, total: int) -> ProgressEvent:
    """The event of a finished point: its manifest entry is the result (a failed one says why)."""
    return ProgressEvent(Stage.COLLECT, done, total, mf.point_label(entry), entry)


def merge_shards(
    out: Path,
    n: int,
    points: list[Point],
    returncodes: list[int | None],
    devices: list[str],
    interrupted: bool = False,
) -> dict[str, Any]:
    """One manifest from the shard manifests, points in plan order; a point a dead worker never
    reached is recorded as failed with the worker's exit code and log file.

    After the user's interrupt, a worker that died of a signal instead of exiting 130 counts as
    interrupted too: torch's profiler is not safe against a KeyboardInterrupt raised inside it and
    can segfault then (seen on CPU: -11). Its exit code stays in `shards[i].returncode`."""
    shards: list[dict[str, Any] | None] = []
    for i in range(n):
        f = out / f"manifest.shard{i}.json"
        shards.append(mf.read(f) if f.exists() else None)
    base = next((s for s in shards if s is not None), None)
    if base is None:
        raise RuntimeError(f"no worker wrote a manifest; see {out}/shard*.log")
    doc = {k: v for k, v in base.items() if k != "points"}
    doc["shards"] = [
        {
            "device": devices[i],
            "gpu_name": (s or {}).get("environment", {}).get("gpu_name"),
            "returncode": returncodes[i],
            "log": f"shard{i}.log",
        }
        for i, s in enumerate(shards)
    ]
    done: dict[tuple, dict[str, Any]] = {}
    for s in shards:
        for e in (s or {}).get("points", []):
            done[(e["arch"], e["mode"], e["seqlen"], e["cuda_graphs"])] = e
    merged = []
    for idx, p in enumerate(points):
        key = (p.arch, p.mode, p.seqlen, p.cuda_graphs)
        if key in done:
            merged.append(done[key])
            continue
        i = idx % n
        rc = returncodes[i]
        if rc in (130, -2) or (interrupted and rc is not None and rc < 0):
            continue  # interrupted: like one process, list only what was reached
        merged.append(
            _entry(
                p,
                devices[i],
                None,
                mf.PointStatus.FAILED,
                f"worker {i} exited with code {rc} before this point; see shard{i}.log",
            )
        )
    doc["points"] = merged
    return doc
