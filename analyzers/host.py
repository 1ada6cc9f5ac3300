"""Host-bound diagnosis: is the GPU waiting on the CPU (launch overhead) or the other way round?

Measured on every GPU trace (definitions: docs/attribute.md, "Host-bound verdict"):

* `window_ns`: first kernel start → last kernel end (the setup before the first launch and the teardown
  after the last kernel are left out); `busy_ns`: union of kernel intervals; `busy_fraction` = busy / window;
  `idle_ns` = window − busy (the GPU idle between kernels).
* `launches`: CUDA runtime/driver calls that launch work (`cudaLaunchKernel`, `cuLaunchKernelEx`,
  `cudaGraphLaunch`, … : any runtime/driver call whose name contains "Launch"); `cpu_ns_per_launch`: their
  mean duration; `host_ns_per_launch`: the launch window (first launch call start → last launch call end)
  over the launches, i.e. the host's cadence including Python, the dispatcher and Triton's launcher;
  `python_launcher_ns_per_launch`: mean duration of the `python_function` events that directly enclose
  launch calls (Triton's Python launcher), when the trace has Python events (`with_stack=True`).
* `launches_per_step` / `step_busy_fraction`: medians over the decode steps of the phase split.
* `unprofiled_busy_fraction`: kernel time of one iteration (median decode step, or a prefill forward) over
  the manifest's unprofiled wall time per iteration (`timing.median_ms`), when the trace has a manifest.
* `verdict`: "host-bound" when the GPU is busy less than HOST_BOUND (40%) of the window (of each decode step
  when the trace has decode steps; unprofiled when the manifest has the timing: the profiler inflates host
  time, not kernel time), "GPU-bound" at GPU_BOUND (70%) or more, else "mixed".
"""

from __future__ import annotations

from typing import Any

import duckdb
from tracekit.analyzers.attribution import Attribution

HOST_BOUND = 0.40  # GPU busy below this share of the window (or of each decode step): host-bound
GPU_BOUND = 0.70  # at or above: GPU-bound; between: mixed
LAUNCH_LIKE = "%launch%"  # runtime/driver call names that launch GPU work (case-insensitive)


def _verdict(busy: float | None) -> str | None:
    if busy is None:
        return None
    return "host-bound" if busy < HOST_BOUND else "GPU-bound" if busy >= GPU_BOUND else "mixed"


def _us(ns: float | None) -> str:
    return "–" if ns is None else f"{ns / 1e3:.0f} µs"


def host_diagnosis(
    con: duckdb.DuckDBPyConnection,
    att: Attribution,
    phases: dict[str, Any] | None = None,
    *,
    graph_ms_per_step: float | None = None,
    eager_ms_per_step: float | None = None,
    unprofiled_ms: float | None = None,
    mode: str | None = None,
) -> dict[str, Any] | None:
    """The `host` field of the attribute document; None on CPU-only traces."""
    from tracekit.analyzers.intervals import union_ns

    if att.time_source != "gpu" or att.units.height == 0:
        return None
    u = att.units
    lo, hi = int(u["ts_ns"].min()), int(u["end_ns"].max())
    window = hi - lo
    busy = union_ns(u)
    # a CUDA-graph trace's template step (held out of the units) is before the replays: its launches too
    since = att.template_window[1] if att.template_window is not None else -(2**62)
    p = {"tid": att.trace_id, "like": LAUNCH_LIKE, "since": since}
    n, mean_dur, first, last, rt_ns = con.sql(
        """SELECT count(*), avg(dur_ns), min(ts_ns), max(end_ns),
                  (SELECT sum(dur_ns) FROM events WHERE trace_id = $tid
                   AND category IN ('cuda_runtime', 'cuda_driver') AND ts_ns > $since)
           FROM events WHERE trace_id = $tid AND category IN ('cuda_runtime', 'cuda_driver')
           AND name ILIKE $like AND ts_ns > $since""",
        params=p,
    ).fetchall()[0]
    py_n, py_mean = con.sql(
        """SELECT count(DISTINCT p.event_id), avg(p.dur_ns) FROM events l
           JOIN events p ON p.trace_id = l.trace_id AND p.event_id = l.parent_id
           WHERE l.trace_id = $tid AND l.category IN ('cuda_runtime', 'cuda_driver') AND l.name ILIKE $like
           AND p.category = 'python_function' AND l.ts_ns > $since""",
        params=p,
    ).fetchall()[0]
    n = int(n or 0)
    out: dict[str, Any] = {
        "window_ns": window,
        "busy_ns": busy,
        "idle_ns": window - busy,
        "busy_fraction": busy / window if window else None,
        "launches": n,
        "runtime_ns": int(rt_ns or 0),
        "cpu_ns_per_launch": float(mean_dur) if n else None,
        "host_ns_per_launch": (last - first) / n if n else None,
        "python_launcher_ns_per_launch": float(py_mean) if py_n else None,
        "steps": None,
        "launches_per_step": None,
        "step_busy_fraction": None,
        "graph_ms_per_step": graph_ms_per_step,
        "eager_ms_per_step": eager_ms_per_step,
        "thresholds": {"host_bound_below": HOST_BOUND, "gpu_bound_from": GPU_BOUND},
    }
    dec = (phases or {}).get("decode")
    if dec and dec.get("steps"):
        out["steps"] = dec["steps"]
        out["launches_per_step"] = dec["launches_per_step"]["median"]
        out["step_busy_fraction"] = dec["step_busy_fraction"]["median"]
    # The manifest's unprofiled wall time per iteration (a prefill forward, or a decode step) against the
    # kernel time of one iteration in the trace: the profiler inflates host time, not kernel time.
    per_iter = None
    if dec and dec.get("steps") and mode in ("decode", "generate"):
        per_iter = dec["step_kernel_ns"]["median"]
    elif mode == "prefill":
        per_iter = int(u["dur_ns"].sum() or 0) / ((phases or {}).get("forwards") or 1)
    out["unprofiled_ms"] = unprofiled_ms
    out["unprofiled_busy_fraction"] = (
        min(1.0, per_iter / (unprofiled_ms * 1e6)) if per_iter is not None and unprofiled_ms else None
    )
    basis = out["step_busy_fraction"] if out["step_busy_fraction"] is not None else out["busy_fraction"]
    if out["unprofiled_busy_fraction"] is not None:
        basis = out["unprofiled_busy_fraction"]
    kind = _verdict(basis)
    out["bound"] = kind
    if kind is None:
        out["verdict"] = None
        return out
    if out["unprofiled_busy_fraction"] is not None:
        what = "decode step" if per_iter is not None and mode != "prefill" else "forward"
        line = (
            f"{kind}: GPU idle {100 * (1 - basis):.0f}% of each {what} unprofiled ({per_iter / 1e6:.3g} ms of "
            f"kernels in {unprofiled_ms:.3g} ms wall); "
            + (
                f"{out['launches_per_step']:.0f} launch{'es' if out['launches_per_step'] != 1 else ''} per step"
                if out["launches_per_step"]
                else f"{n} launches"
            )
        )
    elif out["step_busy_fraction"] is not None:
        line = (
            f"{kind}: GPU idle {100 * (1 - basis):.0f}% of each decode step (median); "
            f"{out['launches_per_step']:.0f} launch{'es' if out['launches_per_step'] != 1 else ''} per step"
        )
    else:
        line = f"{kind}: GPU idle {100 * (1 - basis):.0f}% of the kernel window; {n} launches"
    if n:
        line += f", {_us(out['host_ns_per_launch'])} host time per launch ({_us(out['cpu_ns_per_launch'])} in the call)"
    if graph_ms_per_step is not None and eager_ms_per_step is not None:
        line += (
            f"; the CUDA-graph run of this point takes {graph_ms_per_step:.3g} ms/step vs "
            f"{eager_ms_per_step:.3g} ms eager (unprofiled)"
        )
    out["verdict"] = line
    return out
