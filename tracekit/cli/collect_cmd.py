"""`tracekit collect`: parse flags into a CollectSpec and run it (see docs/collect.md).

Imports only click, rich, torch and tracekit.collectors: runs on the GPU machine without duckdb/polars.
"""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.cli.options import model_options, verbose_option
from tracekit.cli.paths import check_output_dir
from tracekit.errors import UsageError


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _ints(name: str, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError:
        raise UsageError(f"{name} takes comma-separated integers, not {value!r}") from None


@click.command(context_settings={"show_default": True})
@model_options(
    default_preset="130m",
    arch_list="mamba1,mamba2",
    arch_help="mamba1, mamba2 or both (comma-separated).",
    preset_help="tiny, 130m, 370m, 790m/780m, 1.4b/1.3b, 2.8b/2.7b.",
)
@click.option("--backend", default=None, help="mamba-ssm | hf  [default: mamba-ssm on CUDA when importable, else hf]")
@click.option("--dtype", default=None, help="bf16 | fp16 | fp32  [default: bf16 on CUDA, fp32 on CPU]")
@click.option("--device", default=None, help="cpu | cuda | cuda:N  [default: cuda when available]")
@click.option("--devices", default=None, help="Shard the points over GPUs, one process each, e.g. 0,1.")
@click.option("--seqlens", default="64,128,256,512,1024,2048,4096,8192,16384", help="Prompt lengths.")
@click.option("--batch", default=8, type=int)
@click.option("--mode", "modes", default="prefill,decode", help="prefill, decode or both.")
@click.option("--decode-steps", default=32, type=int, help="Tokens generated per decode run.")
@click.option(
    "--cuda-graphs",
    default="off",
    type=click.Choice(["off", "on", "both"]),
    help="Decode with the step captured as a CUDA graph (mamba-ssm); both = with and without.",
)
@click.option(
    "--state-kernel",
    default="mamba-ssm",
    type=click.Choice(["mamba-ssm", "tracekit"]),
    help="Decode-step SSM state update (mamba-ssm backend): mamba-ssm's kernel or tracekit's Triton one.",
)
@click.option("--warmup", default=3, type=int, help="Untimed runs per point (Triton autotunes on the first).")
@click.option("--repeats", default=10, type=int, help="Timed runs per point (decode: runs of --decode-steps).")
@click.option("--no-trace", is_flag=True, help="Timing only: skip the profiled pass.")
@click.option(
    "--pretrained",
    default=None,
    metavar="PATH_OR_ID",
    help="Load real weights (local dir, mamba-ssm or transformers format) instead of random init.",
)
@click.option("--seed", default=0, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@verbose_option
def collect(
    arch,
    preset_name,
    overrides,
    backend,
    dtype,
    device,
    devices,
    seqlens,
    batch,
    modes,
    decode_steps,
    cuda_graphs,
    state_kernel,
    warmup,
    repeats,
    no_trace,
    pretrained,
    seed,
    out_dir,
    verbose,
) -> None:
    """Record Kineto traces of Mamba-1/2 over sequence lengths (prefill and decode) plus manifest.json."""
    from rich.console import Console

    from tracekit.cli.progress import ProgressView, collect_failure
    from tracekit.collectors.quiet import library_output, read_library_log
    from tracekit.collectors.spec import CollectSpec
    from tracekit.collectors.sweep import run_collect
    from tracekit.reports.collect_summary import library_output_line, print_library_notes, print_summary

    spec = CollectSpec(
        archs=() if pretrained and arch == "mamba1,mamba2" else _csv(arch),
        preset=preset_name,
        overrides=tuple(overrides),
        backend=backend,
        dtype=dtype,
        device=device,
        devices=_csv(devices),
        seqlens=_ints("--seqlens", seqlens),
        batch=batch,
        modes=_csv(modes),
        decode_steps=decode_steps,
        cuda_graphs=cuda_graphs,
        warmup=warmup,
        repeats=repeats,
        profile=not no_trace,
        out_dir=out_dir,
        pretrained=pretrained,
        seed=seed,
        state_kernel=state_kernel,
    )
    check_output_dir(out_dir, "--out")
    spec.resolve()  # every UsageError before any work
    console = Console()
    with library_output(Path(out_dir) / "collect.log", show=verbose) as log, ProgressView(note=collect_failure) as view:
        doc = run_collect(spec, on_progress=view)
    print_summary(doc, out_dir, console)
    # --devices: each worker's output is in its shard log, whatever --verbose says
    shards = doc.get("shards", [])
    said = read_library_log([log, *(Path(out_dir) / s["log"] for s in shards)])
    print_library_notes(said, console, doc)
    if line := library_output_line(said, hint=not verbose and not shards):
        console.print(line, highlight=False)
