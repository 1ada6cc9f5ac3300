"""Kernel-aware kept-state counts: which k lower an SSM kernel's time (issue #11).

mamba-ssm's kernels do not get faster with every state pruned: `selective_state_update` works on a
`next_power_of_2(k)`-wide block, and k divisible by 16 runs faster than its neighbours (Triton
specialises such integer arguments), so on an H200 k = 96 costs what k = 128 costs and k = 100 costs
more. The measured step structure ships as data (`rules/ssm_kernel_k.toml`, written from
benchmarks/results/h200_ssm_kernel_k.json); this module answers from it. tracekit's own state update
(`--state-kernel tracekit`) pads nothing: its times (h200_state_update.json, Mamba-2 shapes, k = 32..128
step 16) ship in the same table, marked `state_kernel = "tracekit"`, and answer decode notes for it.

* `kernel_note(arch, mode, k, n, batch, state_kernel)`: what a kept count should buy per SSM kernel
  (`prune compare`; prefill ignores `state_kernel`: it only swaps the decode update);
* `friendly_ks(arch, n, batch)` / `round_k(...)`: the k worth keeping (`prune apply --round-k`), from
  mamba-ssm's steps (with tracekit's kernel every measured k pays, so no rounding is needed there).

Standard library only: `prune apply` and the collect side run where polars is not installed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from tracekit.errors import UsageError

ROUND_MODES = ("none", "down", "up", "nearest")
# Two kept counts whose times differ by less than this fraction count as the same cost: the spread of
# repeated timings of one k on the device was ~1-2%, and one bucket's k spread up to ~4% at batch 64.
SAME_COST = 0.05
KERNEL_FOR = {("mamba2", "decode"): "selective_state_update", ("mamba1", "decode"): "selective_state_update"}
KERNEL_FOR |= {("mamba2", "prefill"): "mamba_chunk_scan_combined", ("mamba1", "prefill"): "selective_scan_fn"}
MAMBA_SSM = "mamba-ssm"  # the state kernel of entries without a `state_kernel` key


@dataclasses.dataclass(frozen=True)
class KernelSteps:
    """One kernel's measured time per k (median of its bucket), per measured batch."""

    name: str
    arch: str
    mode: str
    dense_n: int
    unit: str  # us_per_layer | ms_per_layer
    rule: str
    times: dict[int, dict[int, float]]  # batch -> k -> median time
    buckets: dict[int, str]  # k -> the ks string of its bucket
    machine: str
    source: str
    state_kernel: str = MAMBA_SSM

    def batch_for(self, batch: int) -> int:
        """The measured batch nearest to `batch` (ties to the larger)."""
        return min(self.times, key=lambda b: (abs(b - batch), -b))

    def time(self, k: int, batch: int) -> float | None:
        return self.times[self.batch_for(batch)].get(k)


def _parse_ks(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def parse_table(text: str, name: str = "ssm_kernel_k.toml") -> dict[tuple[str, str, str], KernelSteps]:
    """(arch, mode, state_kernel) -> KernelSteps from the TOML text."""
    try:
        doc = tomllib.loads(text)
        out = {}
        for kern in doc["kernel"]:
            times: dict[int, dict[int, float]] = {}
            where: dict[int, str] = {}
            for b in kern["buckets"]:
                ks = _parse_ks(b["ks"])
                for key, val in b.items():
                    if key.startswith("times_b"):
                        for k in ks:
                            times.setdefault(int(key.removeprefix("times_b")), {})[k] = float(val[1])
                for k in ks:
                    where[k] = b["ks"]
            steps = KernelSteps(
                kern["name"],
                kern["arch"],
                kern["mode"],
                int(kern["dense_n"]),
                kern["unit"],
                kern["rule"],
                times,
                where,
                doc["machine"],
                kern.get("source", doc["source"]),
                kern.get("state_kernel", MAMBA_SSM),
            )
            out[(steps.arch, steps.mode, steps.state_kernel)] = steps
        return out
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{name}: not a kernel-k table ({exc})") from None


@cache
def load_table() -> dict[tuple[str, str, str], KernelSteps]:
    text = resources.files("tracekit.analyzers.rules").joinpath("ssm_kernel_k.toml").read_text()
    return parse_table(text)


def _fmt(t: float, unit: str) -> str:
    return f"{t:.3g} µs" if unit == "us_per_layer" else f"{t:.3g} ms"


def kernel_note(
    arch: str, mode: str, k: int, n: int, batch: int, state_kernel: str | None = MAMBA_SSM
) -> dict[str, Any] | None:
    """What keeping k of n states should do to the SSM kernel of (arch, mode) at `batch`, from the table.

    `state_kernel` (compare's `--state-kernel`; None = results from before it = mamba-ssm) picks the
    decode update's timings. Returns {kernel, k, n, time_k, time_n, unit, expected_ratio, pays, note,
    machine, state_kernel} or None where mamba-ssm's table has no such kernel or k or n was not measured.
    For tracekit's kernel an unmeasured k gets a note saying so (expected_ratio and pays None): its doc
    gives no rule to interpolate by. The steps come from k alone (block width and alignment), so a model
    with another N uses the same rows (measured on the 130m layer shapes).
    """
    kind = state_kernel if mode == "decode" and state_kernel else MAMBA_SSM
    if k >= n:
        return None
    steps = load_table().get((arch, mode, kind))
    tk, tn = (steps.time(k, batch), steps.time(n, batch)) if steps else (None, None)
    if steps is None or tk is None or tn is None:
        if kind == MAMBA_SSM:
            return None
        if steps:
            measured = f"measured: {arch} k {', '.join(map(str, sorted(steps.buckets)))}"
        else:
            measured = "measured: " + ", ".join(f"{a} {m}" for a, m, sk in sorted(load_table()) if sk == kind)
        ratio, pays = None, None
        note = f"k={k} of {n}: not measured for the {kind} state kernel ({measured})"
    else:
        mb = steps.batch_for(batch)
        ratio = tk / tn
        pays = ratio < 1 - SAME_COST
        at = f"{_fmt(tk, steps.unit)} vs {_fmt(tn, steps.unit)} per layer at batch {mb}"
        if ratio > 1 + SAME_COST:
            note = f"k={k} is slower than k={n} in {steps.name} ({at}): no kernel-time gain, a loss"
        elif not pays:
            same = steps.buckets.get(k) == steps.buckets.get(n)
            why = f"k={k} runs like {n}" + (f" (same block, bucket {steps.buckets[k]})" if same else "")
            note = f"{why} in {steps.name} ({at}): no kernel-time gain expected"
        else:
            note = f"{steps.name}: ×{ratio:.2f} kernel time ({at})"
        if not pays and kind == MAMBA_SSM:
            better = friendly_ks(arch, n, batch, mode)
            down = [f for f in better if f < k]
            if down:
                note += f"; nearest k that pays: {max(down)}"
    return {
        "kernel": steps.name if steps else f"{kind} state update",
        "k": k,
        "n": n,
        "batch": steps.batch_for(batch) if steps else batch,
        "time_k": tk,
        "time_n": tn,
        "unit": steps.unit if steps else "us_per_layer",
        "expected_ratio": ratio,
        "pays": pays,
        "note": note,
        "machine": steps.machine if steps else None,
        "state_kernel": kind,
    }


def friendly_ks(
    arch: str, n: int, batch: int = 64, mode: str = "decode", legal: Any = None, state_kernel: str = MAMBA_SSM
) -> list[int]:
    """Kept counts on the cost frontier: no larger k costs the same or less (within SAME_COST).

    Among the measured k of `state_kernel`'s kernel (mamba-ssm's: every k; tracekit's: 32..128 step 16);
    `legal(k) -> bool` restricts the candidates (e.g. causal-conv1d's channel alignment for Mamba-2).
    """
    steps = load_table().get((arch, mode, state_kernel))
    times = steps.times[steps.batch_for(batch)] if steps else {}
    if n not in times:
        raise UsageError(
            f"no {state_kernel} kernel timings for {arch} {mode} at k = {n} (measured: "
            + ", ".join(
                f"{a} {m} k ≤ {max(max(t) for t in s.times.values())}"
                for (a, m, kind), s in sorted(load_table().items())
                if kind == state_kernel
            )
            + ")"
        )
    ks = sorted(k for k in times if k <= n and (legal is None or legal(k)))
    out = []
    best = float("inf")  # cheapest time among larger ks seen so far
    for k in reversed(ks):
        if times[k] < best * (1 - SAME_COST) or k == n:
            out.append(k)
        best = min(best, times[k])
    return sorted(out)


def round_k(k: int, how: str, friendly: list[int]) -> int:
    """k rounded to a friendly value: down (prune more), up (keep more), nearest (ties up), none."""
    if how not in ROUND_MODES:
        raise UsageError(f"--round-k must be one of {', '.join(ROUND_MODES)}, not {how!r}")
    if how == "none" or not friendly or k in friendly:
        return k
    lower = [f for f in friendly if f < k]
    upper = [f for f in friendly if f > k]
    if how == "down":
        return max(lower) if lower else min(upper)
    if how == "up":
        return min(upper) if upper else max(lower)
    return min(friendly, key=lambda f: (abs(f - k), -f))


__all__ = [
    "MAMBA_SSM",
    "ROUND_MODES",
    "KernelSteps",
    "friendly_ks",
    "kernel_note",
    "load_table",
    "parse_table",
    "round_k",
]
