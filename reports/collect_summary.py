"""The table printed at the end of a collect sweep (`tracekit collect`, `tracekit demo`): one row per point.

Imports only rich and tracekit.collectors (no duckdb/polars): `tracekit collect` runs on GPU machines without them.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tracekit.collectors.manifest import point_label
from tracekit.collectors.quiet import LibraryLog
from tracekit.reports.units import MISSING, ms_band


def _mib(b: int | None) -> str:
    return MISSING if b is None else f"{b / 2**20:,.0f} MiB"


def summary_table(doc: dict[str, Any]) -> Table:
    """One row per point: latency (TTFT per forward / TPOT per step, median [p10–p90]), tokens/s, peak memory."""
    t = Table(title=f"{doc['backend']} · {doc['dtype']} · {doc['device']} · weights {doc['weights']}")
    for col, just in (
        ("point", "left"),
        ("latency (p10–p90)", "right"),
        ("tokens/s", "right"),
        ("peak mem", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=just, no_wrap=col != "status")
    for e in doc["points"]:
        tim = e.get("timing")
        lat = MISSING if not tim else ms_band(tim["median_ms"], tim["p10_ms"], tim["p90_ms"])
        tps = MISSING if e.get("tokens_per_s") is None else f"{e['tokens_per_s']:,.0f}"
        status = e["status"] if e["status"] == "ok" else f"[red]{e['status']}: {e.get('error') or ''}"
        t.add_row(point_label(e), lat, tps, _mib(e.get("peak_mem_bytes")), status)
    return t


def print_summary(doc: dict[str, Any], out_dir: str, console: Console) -> None:
    """`tracekit collect`'s closing output: the table, then how many points are ok and where the manifest is."""
    console.print(summary_table(doc))
    failed = sum(e["status"] != "ok" for e in doc["points"])
    console.print(f"{len(doc['points']) - failed}/{len(doc['points'])} points ok · manifest: {out_dir}/manifest.json")


def _and(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def print_library_notes(log: LibraryLog, console: Console, manifest: dict[str, Any] | None = None) -> None:
    """What the captured library output means, once: transformers' fallbacks, then lines tracekit cannot place.

    With the collect `manifest`: an hf run on the CPU runs transformers' PyTorch code for the Mamba kernels
    whether or not transformers said so (tracekit routes CPU calls there itself), and the note says it.
    """
    torch_path = bool(manifest) and manifest.get("backend") == "hf" and str(manifest.get("device")).startswith("cpu")
    if torch_path and not log.fallbacks:
        console.print(
            "note: on the CPU, transformers runs its PyTorch code for the Mamba kernels (causal conv, selective "
            "scan / SSD, state update; mamba-ssm and causal-conv1d need CUDA): the times are those of that code, "
            "not of the CUDA kernels",
            markup=False,
            highlight=False,
        )
    if log.fallbacks:
        pkgs = _and(log.fallback_packages)
        console.print(
            f"note: transformers ran its PyTorch fallbacks for {_and(log.fallbacks)}, as {pkgs} "
            f"{'is' if len(log.fallback_packages) == 1 else 'are'} missing or (on CPU) cannot run: the times "
            "are those of the fallbacks, not of the CUDA kernels",
            markup=False,
            highlight=False,
        )
    if log.other:
        n = len(log.other)
        first = log.other[0] if len(log.other[0]) <= 120 else log.other[0][:117] + "..."
        console.print(
            f"warning: {n} library line{'s' if n > 1 else ''} tracekit does not recognise, "
            f"{'first' if n > 1 else 'it reads'}: {first}",
            markup=False,
            highlight=False,
        )


def library_output_line(log: LibraryLog, *, hint: bool = True) -> str | None:
    """Where the library output went and what it was, in one line (None when the libraries said nothing).

    `hint`: end with the flag that prints it instead (not when it was given: workers' logs stay logs)."""
    if not log.lines:
        return None
    parts = [
        f"{log.profiler} from the profiler" if log.profiler else "",
        f"{log.deprecations} deprecation warning{'s' if log.deprecations != 1 else ''}" if log.deprecations else "",
        f"{len(log.fallbacks)} fallback notice{'s' if len(log.fallbacks) != 1 else ''}" if log.fallbacks else "",
        f"{len(log.other)} other" if log.other else "",
    ]
    what = ", ".join(p for p in parts if p)
    where = ", ".join(str(p) for p in log.paths)
    tail = "; --verbose prints it as it comes" if hint else ""
    return escape(f"library output: {log.lines} lines ({what}) in {where}{tail}")
