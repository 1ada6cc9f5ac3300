"""`tracekit demo`: the whole pipeline on CPU, offline — collect, ingest, attribute, report.

It composes the same library calls as `tracekit collect` and `tracekit attribute --run`, on the `tiny`
preset with transformers' torch path and random weights, so it runs on any machine in about a minute.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from tracekit.cli.options import verbose_option
from tracekit.cli.paths import check_output_dir
from tracekit.errors import UsageError


@click.command(context_settings={"show_default": True})
@click.option(
    "--out",
    "out_dir",
    default="tracekit-demo",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the run (traces + manifest), the database, the plot and the report; a previous demo's is "
    "replaced.",
)
@click.option("--seqlens", default="64,256", help="Prompt lengths of the sweep.")
@click.option("--by", type=click.Choice(("component", "layer")), default="component")
@verbose_option
def demo(out_dir: Path, seqlens: str, by: str, verbose: bool) -> None:
    """Collect a tiny Mamba-1/2 sweep on CPU, ingest it, attribute it and print the report.

    \b
    Afterwards, explore the database yourself:
      tracekit query "select * from kernels limit 5" --db tracekit-demo/tracekit.duckdb
    """
    from rich.console import Console

    import tracekit
    from tracekit.cli.progress import ProgressView, collect_failure
    from tracekit.collectors.quiet import library_output, read_library_log
    from tracekit.collectors.spec import CollectSpec
    from tracekit.pipeline import collect_and_attribute
    from tracekit.progress import Stage
    from tracekit.reports.attribute_plot import plot_shares
    from tracekit.reports.attribute_table import render
    from tracekit.reports.collect_summary import library_output_line, print_library_notes, summary_table
    from tracekit.reports.run_report import write_report
    from tracekit.reports.units import command_lines

    try:
        lens = tuple(int(s) for s in seqlens.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--seqlens takes comma-separated integers, not {seqlens!r}") from None
    check_output_dir(out_dir, "--out")
    run_dir = out_dir / "run"
    spec = CollectSpec(
        archs=("mamba1", "mamba2"),
        preset="tiny",
        backend="hf",
        device="cpu",
        dtype="fp32",
        seqlens=lens,
        batch=2,
        modes=("prefill", "decode"),
        decode_steps=8,
        warmup=3,  # transformers' torch path on CPU runs its first few calls slowly
        repeats=3,
        out_dir=str(run_dir),
    )
    spec.resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "run" / "manifest.json").is_file():
            raise UsageError(f"{out_dir}: exists and is not a previous demo's folder; choose another --out")
        shutil.rmtree(out_dir)  # a previous demo's output: replace it
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console()
    console.rule("[bold]1. collect[/] tiny Mamba-1/2 on CPU (transformers torch path, random weights)")

    log = run_dir / "collect.log"  # what torch, the profiler and transformers print (all of it with --verbose)

    collect_view = ProgressView(note=collect_failure)
    attribute_view = ProgressView(transient=True)

    def collected(manifest: dict) -> None:
        collect_view.close()  # the collect bar is done: print below it, as before
        console.print(summary_table(manifest))
        print_library_notes(read_library_log([log]), console, manifest)
        console.rule("[bold]2. ingest + 3. attribute[/]")

    with collect_view, attribute_view:
        _, reports = collect_and_attribute(
            spec,
            out_dir / "tracekit.duckdb",
            by=by,
            on_progress=lambda e: (collect_view if e.stage == Stage.COLLECT else attribute_view)(e),
            on_collected=collected,
            collect_context=library_output(log, show=verbose),
        )
    with tracekit.open(out_dir / "tracekit.duckdb") as db:
        tables = db.tables()
    console.print(
        f"{tables.filter(tables['name'] == 'events')['rows'].item():,} events from "
        f"{len(reports)} traces in {out_dir / 'tracekit.duckdb'}"
    )
    for rep in reports:
        render(rep, by, console=console)
    plot = plot_shares(reports, out_dir / "components.png", title=f"tracekit demo: {run_dir}")
    with tracekit.open(out_dir / "tracekit.duckdb") as db:
        data = db.report([run_dir])
    page = write_report(data, out_dir / "report", "tracekit demo: tiny Mamba-1/2 on CPU").html
    console.rule("[bold]done")
    console.print(f"wrote {plot}", soft_wrap=True)
    console.print(f"report: {page}", soft_wrap=True)
    console.print(f"run:  {run_dir}/manifest.json", soft_wrap=True)
    if line := library_output_line(read_library_log([log])):
        console.print(line, highlight=False)
    console.print("next:")
    nxt = ["tracekit", "attribute", "--run", str(run_dir), "--db", str(out_dir / "tracekit.duckdb"), "--by", "layer"]
    for line in command_lines(nxt, console.width - 2):
        console.print("  " + line, soft_wrap=True, markup=False, highlight=False)
