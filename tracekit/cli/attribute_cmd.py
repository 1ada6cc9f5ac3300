"""`tracekit attribute`: latency, FLOPs, memory and I/O per Mamba block component (docs/attribute.md)."""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.cli.options import db_option, format_option, model_options
from tracekit.cli.paths import check_output_file, image_suffixes
from tracekit.errors import UsageError

BY = ("component", "layer", "kernel", "category", "stream")


@click.command("attribute")
@click.option(
    "--trace",
    "traces",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kineto trace (.json or .json.gz); repeatable.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A `tracekit collect` run directory: every trace in its manifest, with its config.",
)
@db_option
@click.option(
    "--lake",
    "lake_path",
    default=None,
    metavar="DIR",
    help="Work on a trace lake (docs/lake.md): traces are ingested into it, and each attributed trace's "
    "per-kernel components are stored there (kernel_components).",
)
@click.option(
    "--by",
    type=click.Choice(BY),
    default="component",
    show_default=True,
    help="Rows: Mamba component, (layer, component), kernel name, event category, or (device, stream).",
)
@format_option()
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra rules (TOML), tried before the built-in ones.",
)
@model_options(
    arch_help="Model arch (with --preset).",
    preset_help="Published shapes, e.g. 130m (needs --arch unless inferable).",
    config_help="Override a config field, e.g. d_state=64; repeatable.",
)
@click.option("--hta", "with_hta", is_flag=True, help="Add HTA's idle/compute temporal breakdown (slow).")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a bar chart of component shares (PNG/SVG/PDF by suffix).",
)
@click.option(
    "--memory-plot",
    "memory_plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write live GPU memory over time, stacked by component, peak marked (PNG/SVG/PDF by suffix).",
)
def attribute(
    traces: tuple[Path, ...],
    run_dir: Path | None,
    db_path: str | None,
    lake_path: str | None,
    by: str,
    fmt: str,
    rules_file: Path | None,
    arch: str | None,
    preset_name: str | None,
    overrides: tuple[str, ...],
    with_hta: bool,
    plot_path: Path | None,
    memory_plot_path: Path | None,
) -> None:
    """Attribute GPU time (or CPU self time), FLOPs, memory and I/O to block components.

    \b
    tracekit attribute --trace run.json.gz [--by component|layer|kernel|category|stream]
                       [--format table|json|csv]
    tracekit attribute --run runs/h100-130m
    """
    import tracekit
    from tracekit import pipeline
    from tracekit.analyzers.components import load_rules

    if not traces and run_dir is None:
        raise UsageError("give --trace FILE or --run RUN_DIR")
    if plot_path is not None:  # before any work: a bad --plot must not cost a whole attribution
        check_output_file(plot_path, "--plot", suffixes=image_suffixes())
    if memory_plot_path is not None:
        check_output_file(memory_plot_path, "--memory-plot", suffixes=image_suffixes())
    items: list[pipeline.TraceRef] = []
    if run_dir is not None:
        present, missing = pipeline.run_items(run_dir)
        items.extend(present)
        listed = len(present) + len(missing)
        if not items:
            raise UsageError(f"{run_dir}: no trace files of the manifest's {listed} points are present")
        if missing:
            click.echo(
                f"tracekit: note: {len(missing)} of {listed} traces listed in "
                f"{run_dir}/manifest.json are not present; attributing the other {len(items)}",
                err=True,
            )
    items.extend(pipeline.trace_item(t) for t in traces)
    rules = load_rules(rules_file)
    if lake_path is not None and db_path is not None:
        raise UsageError("give --db or --lake, not both")
    if lake_path is not None:
        from tracekit.api import TraceLake

        db = TraceLake(lake_path, create=True)
    else:
        db = tracekit.open(db_path)
    from tracekit.cli.progress import ProgressView

    try:
        with ProgressView(transient=True, disable=fmt != "table") as view:
            reports = pipeline.attribute_traces(
                db,
                items,
                by=by,
                flags=pipeline.ConfigFlags(arch, preset_name, tuple(overrides)),
                rules=rules,
                with_hta=with_hta,
                on_progress=view,
            )
    finally:
        db.close()
    from tracekit.reports.attribute_export import write

    write(reports, by, fmt)
    if plot_path is not None and by not in ("component", "layer"):
        click.echo(f"tracekit: note: --plot draws component shares; not written with --by {by}", err=True)
    elif plot_path is not None:
        from tracekit.reports.attribute_plot import plot_shares

        run = str(run_dir) if run_dir is not None else ", ".join(t.name for t in traces)
        plot_shares(reports, plot_path, title=run)
        click.echo(f"wrote {plot_path}", err=fmt != "table")  # stdout stays pure JSON/CSV
    if memory_plot_path is not None:
        with_mem = [(str(r.trace or r.trace_id), r.memory) for r in reports if r.memory is not None]
        if not with_mem:
            click.echo(
                "tracekit: note: --memory-plot: no trace has [memory] events with addresses "
                "(memory_peak is null); not written",
                err=True,
            )
        else:
            from tracekit.reports.memory_plot import plot_memory

            run = str(run_dir) if run_dir is not None else ", ".join(t.name for t in traces)
            plot_memory(with_mem, memory_plot_path, title=run)
            click.echo(f"wrote {memory_plot_path}", err=fmt != "table")
