"""Measure one point: warm-ups, timed repeats without the profiler, then one profiled pass.

Timing and tracing are separate on purpose: the profiler (and the scope hooks) slow the host side, so
the timed repeats run bare, and the profiled pass's own wall time is kept next to them
(`timing.profiled_ms`) to show the overhead.

Timed unit: one forward over batch × seqlen (prefill), or one decode step of one token per sequence
(decode; the model's step only — greedy argmax runs between steps, outside the timed range, as
NOTES.md recommends; `timing.end_to_end_ms` adds it back per step). On CUDA the unit is timed with CUDA
events, on CPU with perf_counter_ns.
"""

from __future__ import annotations

import dataclasses
import gc
import gzip
import inspect
import os
import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile
from tracekit.collectors.scopes import TEMPLATE_SCOPE, scoped
from tracekit.collectors.spec import Point


@dataclasses.dataclass
class Measurement:
    """Raw result of one point; `sweep` turns it into a manifest entry."""

    samples_ns: list[int]  # one per timed unit
    end_to_end_ns: list[int] | None  # decode: wall time per step including sampling, one per run
    peak_mem_bytes: int | None
    profiled_ns: int | None  # wall time of the profiled pass
    trace: str | None  # file name inside the run dir
    memory: dict | None = None  # what the peak is made of (CUDA only; docs/collect.md "peak memory")
    graph_template: bool = False  # the trace holds one scoped eager step (TEMPLATE_SCOPE) before the replays


def quantile(xs: list[int], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), so p10/p90 are defined for any sample count."""
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def timing_stats(m: Measurement, repeats: int, warmup: int) -> dict:
    ms = [x / 1e6 for x in m.samples_ns]
    out = {
        "median_ms": statistics.median(ms),
        "p10_ms": quantile(ms, 0.1),
        "p90_ms": quantile(ms, 0.9),
        "repeats": repeats,
        "warmup": warmup,
        "samples": len(ms),
    }
    if m.end_to_end_ns:
        out["end_to_end_ms"] = statistics.median(m.end_to_end_ns) / 1e6
    if m.profiled_ns is not None:
        out["profiled_ms"] = m.profiled_ns / 1e6
    return out


class _Timer:
    """Collects (start, end) pairs; CUDA events on GPU (read after one sync), perf_counter_ns on CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self._pairs: list = []
        self._cur = None

    def start(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._cur = ev
        else:
            self._cur = time.perf_counter_ns()

    def stop(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._pairs.append((self._cur, ev))
        else:
            self._pairs.append((self._cur, time.perf_counter_ns()))

    def samples_ns(self) -> list[int]:
        if self.cuda:
            torch.cuda.synchronize()
            return [round(a.elapsed_time(b) * 1e6) for a, b in self._pairs]
        return [b - a for a, b in self._pairs]


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _reset_peak(cuda: bool) -> int | None:
    """Open the peak-memory window; return the bytes allocated as it opens.

    `reset_peak_memory_stats` sets the peak to what is allocated *now*, dead tensors included: tensors
    of the prompt or warm-ups that only a reference cycle still holds stay allocated until Python's
    cyclic collector runs. On an H200 that was 4.09 GB of prompt activations in the physical r=0.25
    point of `prune compare` (4.92 GB peak vs 0.85 GB; benchmarks/results/h200_prune_memory.md), so
    garbage is collected before the window opens.
    """
    if not cuda:
        return None
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def _peak(cuda: bool) -> int | None:
    return int(torch.cuda.max_memory_allocated()) if cuda else None


def _tensor_bytes(*objs: object) -> int:
    """Bytes of the distinct tensors inside objs (dicts, lists, tuples, and one level of attributes)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def walk(o: object, depth: int) -> None:
        nonlocal total
        if isinstance(o, torch.Tensor):
            key = (o.untyped_storage().data_ptr(), o.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += key[1]
        elif isinstance(o, dict):
            for v in o.values():
                walk(v, depth)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v, depth)
        elif depth > 0 and hasattr(o, "__dict__") and not isinstance(o, torch.nn.Module):
            for v in vars(o).values():
                walk(v, depth - 1)

    for o in objs:
        walk(o, 2)
    return total


def _memory(
    cuda: bool, window: str, start: int | None, peak: int | None, weights: int, state: int | None
) -> dict | None:
    """The parts of a peak: what was allocated when the window opened (weights, inference state, the
    rest: CUDA-graph pool outputs, cuBLAS workspaces, the prompt's last logits) and what the window added."""
    if not cuda or start is None or peak is None:
        return None
    return {
        "window": window,
        "at_window_start_bytes": start,
        "weights_bytes": weights,
        "state_bytes": state,
        "peak_bytes": peak,
    }


def _write_trace(prof: profile, path: Path) -> None:
    """Export the Chrome trace and gzip it; temp file + rename so a partial file never has the final name."""
    raw = path.with_name(path.name.removesuffix(".gz") + ".tmp")
    prof.export_chrome_trace(str(raw))
    tmp = path.with_name(path.name + ".tmp")
    with open(raw, "rb") as src, gzip.open(tmp, "wb", compresslevel=5) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, path)
    raw.unlink()


def _profiler(cuda: bool) -> profile:
    # torch 2.11 warns once that a profiler without schedule "clears events at the end of each cycle":
    # irrelevant for a single profiled pass.
    warnings.filterwarnings("ignore", message=".*Profiler clears events at the end of each cycle.*")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    return profile(activities=acts, record_shapes=True, profile_memory=True)


WINDOW_PREFILL = "timed prefill repeats (after the warm-ups)"
WINDOW_DECODE = "timed decode repeats (after the prompt, graph capture and warm-ups)"


def _state_bytes(keep: object) -> int | None:
    """Inference-state bytes of a decoder's keep-alive (mamba-ssm graph cache or InferenceParams, hf cache)."""
    ip = getattr(keep, "inference_params", keep)
    kv = getattr(ip, "key_value_memory_dict", None)
    n = _tensor_bytes(kv if kv is not None else keep)
    return n or None


class PointRunner:
    """Runs points of one model (either backend) on one device."""

    def __init__(self, model: torch.nn.Module, backend: str, device: str, vocab: int, seed: int):
        self.model = model
        self.backend = backend
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.vocab = vocab
        self.seed = seed
        self._hf_cache_position = backend == "hf" and "cache_position" in inspect.signature(model.forward).parameters

    # ---- inputs and single calls --------------------------------------------------------------
    def _ids(self, batch: int, seqlen: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, self.vocab, (batch, seqlen), generator=g).to(self.device)

    def _forward(self, ids: torch.Tensor) -> None:
        """One prefill forward with logits for every position (as the shared H100 traces)."""
        if self.backend == "mamba-ssm":
            self.model(ids)
        else:
            self.model(ids, use_cache=False)

    # ---- prefill ------------------------------------------------------------------------------
    def prefill(self, p: Point, warmup: int, repeats: int, trace_path: Path | None) -> Measurement:
        ids = self._ids(p.batch, p.seqlen)
        with torch.inference_mode():
            for _ in range(warmup):
                self._forward(ids)
            start = _reset_peak(self.cuda)  # after warm-ups: Triton autotuning allocates scratch space
            timer = _Timer(self.cuda)
            for _ in range(repeats):
                timer.start()
                self._forward(ids)
                timer.stop()
            samples = timer.samples_ns()
            peak = _peak(self.cuda)
            memory = _memory(self.cuda, WINDOW_PREFILL, start, peak, _tensor_bytes(self.model.state_dict()), None)
            profiled = None
            if trace_path is not None:
                with scoped(self.model, self.backend), _profiler(self.cuda) as prof:
                    t0 = time.perf_counter_ns()
                    with record_function("prefill"):
                        self._forward(ids)
                    _sync(self.cuda)
                    profiled = time.perf_counter_ns() - t0
                _write_trace(prof, trace_path)
        return Measurement(samples, None, peak, profiled, trace_path.name if trace_path else None, memory)

    # ---- decode -------------------------------------------------------------------------------
    def _decoder(self, p: Point) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], torch.Tensor, object]:
        """Run the prompt (untimed) and return (step(tok, k) -> logits, first token, keep-alive)."""
        ids = self._ids(p.batch, p.seqlen)
        L = p.seqlen
        if self.backend == "mamba-ssm":
            from mamba_ssm.utils.generation import InferenceParams, update_graph_cache

            if p.cuda_graphs:
                cache = update_graph_cache(self.model, None, p.batch, L, L + p.decode_steps)
                ip = cache.inference_params
                ip.reset(L + p.decode_steps, p.batch)
                keep: object = cache
            else:
                ip = InferenceParams(max_seqlen=L + p.decode_steps, max_batch_size=p.batch)
                keep = ip
            logits = self.model(ids, inference_params=ip, num_last_tokens=1).logits
            pos = torch.zeros(p.batch, 1, dtype=torch.long, device=self.device)

            def step(tok: torch.Tensor, k: int) -> torch.Tensor:
                ip.seqlen_offset = L + k
                if p.cuda_graphs:
                    return cache.run(tok, pos, ip.seqlen_offset)
                return self.model(tok, inference_params=ip, num_last_tokens=1).logits

        else:
            out = self.model(ids, use_cache=True, logits_to_keep=1)
            state = out.cache_params
            logits = out.logits
            keep = state

            def step(tok: torch.Tensor, k: int) -> torch.Tensor:
                kw = {}
                if self._hf_cache_position:
                    kw["cache_position"] = torch.tensor([L + k], device=self.device)
                return self.model(tok, cache_params=state, use_cache=True, **kw).logits

        first = logits[:, -1].argmax(-1, keepdim=True)
        return step, first, keep

    def _template_step(self, p: Point, cache: object) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """An eager decode step of the same model on a copy of the graph's decode state.

        It launches the kernels one graph replay runs, from Python and module code, so the profiled pass can
        record it (scoped like an eager step) as the template that attribution aligns each replay with. It
        works on cloned conv/ssm states, so the replays that follow see the state they would have seen.
        """
        from mamba_ssm.utils.generation import InferenceParams

        src = cache.inference_params  # type: ignore[attr-defined]
        states = {i: tuple(t.clone() for t in v) for i, v in src.key_value_memory_dict.items()}
        ip = InferenceParams(max_seqlen=src.max_seqlen, max_batch_size=src.max_batch_size, key_value_memory_dict=states)
        pos = torch.zeros(p.batch, 1, dtype=torch.long, device=self.device)

        def step(tok: torch.Tensor, k: int) -> torch.Tensor:
            ip.seqlen_offset = p.seqlen + k
            return self.model(tok, position_ids=pos, inference_params=ip, num_last_tokens=1).logits

        return step

    def _decode_run(self, step, tok: torch.Tensor, n: int, timer: _Timer | None, scopes: bool) -> torch.Tensor:
        for k in range(n):
            if timer:
                timer.start()
            if scopes:
                with record_function(f"decode.step.{k}"):
                    logits = step(tok, k)
            else:
                logits = step(tok, k)
            if timer:
                timer.stop()
            tok = logits[:, -1].argmax(-1, keepdim=True)
        return tok

    def decode(self, p: Point, warmup: int, repeats: int, trace_path: Path | None) -> Measurement:
        with torch.inference_mode():
            step, tok, keep = self._decoder(p)
            for _ in range(warmup):
                tok = self._decode_run(step, tok, p.decode_steps, None, False)
            start = _reset_peak(self.cuda)  # after the prompt and warm-ups: the steady decode state
            timer = _Timer(self.cuda)
            e2e: list[int] = []
            for _ in range(repeats):
                _sync(self.cuda)
                t0 = time.perf_counter_ns()
                tok = self._decode_run(step, tok, p.decode_steps, timer, False)
                _sync(self.cuda)
                e2e.append((time.perf_counter_ns() - t0) // p.decode_steps)
            samples = timer.samples_ns()
            peak = _peak(self.cuda)
            weights = _tensor_bytes(self.model.state_dict())
            memory = _memory(self.cuda, WINDOW_DECODE, start, peak, weights, _state_bytes(keep))
            profiled = None
            template = None
            if trace_path is not None and p.cuda_graphs and self.backend == "mamba-ssm":
                template = self._template_step(p, keep)
                template(tok, 0)  # once unprofiled: first-call work stays out of the trace
                _sync(self.cuda)
            if trace_path is not None:
                # Graph replays run no module code, so the hooks only scope the template step there.
                with scoped(self.model, self.backend), _profiler(self.cuda) as prof:
                    if template is not None:
                        with record_function(TEMPLATE_SCOPE):
                            template(tok, 0)
                        _sync(self.cuda)
                    t0 = time.perf_counter_ns()
                    with record_function("decode"):
                        tok = self._decode_run(step, tok, p.decode_steps, None, True)
                    _sync(self.cuda)
                    profiled = time.perf_counter_ns() - t0
                _write_trace(prof, trace_path)
            has_template = template is not None
            del keep, step, template
        name = trace_path.name if trace_path else None
        return Measurement(samples, e2e, peak, profiled, name, memory, graph_template=has_template)

    def run(self, p: Point, warmup: int, repeats: int, trace_path: Path | None) -> Measurement:
        fn = self.prefill if p.mode == "prefill" else self.decode
        return fn(p, warmup, repeats, trace_path)
