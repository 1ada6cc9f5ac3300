"""`tracekit attribute`: latency, FLOPs, memory and I/O per Mamba block component (docs/attribute.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
def attribute(
    traces: tuple[Path, ...],
    run_dir: Path | None,
    db_path: str | None,
    by: str,
    fmt: str,
    rules_file: Path | None,
    arch: str | None,
    preset_name: str | None,
    overrides: tuple[str, ...],
    with_hta: bool,
    plot_path: Path | None,
) -> None:
    """Attribute GPU time (or CPU self time), FLOPs, memory and I/O to block components.

    \b
    tracekit attribute --trace run.json.gz [--by component|layer|kernel|category|stream]
                       [--format table|json|csv]
    tracekit attribute --run runs/h100-130m
    """
    import tracekit
    from tracekit.analyzers.attribute_run import attribute_documents
    from tracekit.analyzers.components import load_rules
    from tracekit.analyzers.run_manifest import RunTrace, find_for_trace, run_traces

    if not traces and run_dir is None:
        raise UsageError("give --trace FILE or --run RUN_DIR")
    if plot_path is not None:  # before any work: a bad --plot must not cost a whole attribution
        check_output_file(plot_path, "--plot", suffixes=image_suffixes())
    items: list[RunTrace] = []
    if run_dir is not None:
        listed = run_traces(run_dir)
        items.extend(i for i in listed if i.trace.is_file())
        if not items:
            raise UsageError(f"{run_dir}: no trace files of the manifest's {len(listed)} points are present")
        if len(items) < len(listed):
            click.echo(
                f"tracekit: note: {len(listed) - len(items)} of {len(listed)} traces listed in "
                f"{run_dir}/manifest.json are not present; attributing the other {len(items)}",
                err=True,
            )
    for t in traces:
        if not t.exists():
            raise UsageError(f"{t}: no such file")
        found = find_for_trace(t)
        items.append(found if found is not None else RunTrace(t.resolve(), None, _empty_point(), t.name))
    rules = load_rules(rules_file)
    db = tracekit.open(db_path)
    try:
        docs = attribute_documents(
            db,
            items,
            rules,
            by=by,
            arch=arch,
            preset_name=preset_name,
            overrides=overrides,
            with_hta=with_hta,
            progress=fmt == "table",
        )
    finally:
        db.close()
    from tracekit.reports.attribute_export import write

    write(docs, by, fmt)
    if plot_path is not None and by not in ("component", "layer"):
        click.echo(f"tracekit: note: --plot draws component shares; not written with --by {by}", err=True)
    elif plot_path is not None:
        from tracekit.reports.attribute_plot import plot_shares

        plot_shares(docs, plot_path)


def _empty_point() -> Any:
    from tracekit.analyzers.summary import Point

    return Point()
