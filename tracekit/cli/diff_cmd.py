"""`tracekit diff A B`: what changed between two traces, two collect runs or two prune-compare rows (docs/diff.md)."""

from __future__ import annotations

import sys

import click

from tracekit.cli.options import db_option, format_option, model_options
from tracekit.errors import UsageError

BY = ("component", "layer", "kernel")


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option(
    "--by",
    type=click.Choice(BY),
    default="component",
    show_default=True,
    help="Rows of the table/csv/markdown: component, (layer, component) or kernel name (JSON holds all three).",
)
@format_option(
    help="table: rich tables; json: the stable document of docs/diff.md; csv, markdown: rows of --by.",
    extra=("markdown",),
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    metavar="X",
    help="A component or layer change is significant when |B/A − 1| ≥ X (default 0.10).",
)
@db_option
@model_options(arch_help="Model arch of both traces (default: manifest or inferred).")
def diff(
    a: str,
    b: str,
    by: str,
    fmt: str,
    threshold: float | None,
    db_path: str | None,
    arch: str | None,
    preset_name: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Compare B against A: per component, layer and kernel, time A, time B, Δ (exact ns) and B/A.

    \b
    A and B: two trace files, two trace ids in the database, two `tracekit collect` run directories
    (points matched by arch/mode/batch/seqlen/cuda_graphs), or two `prune compare` rows written
    DIR#LABEL (LABEL: dense or VARIANT_rRATIO, e.g. physical_r0.5).
    """
    import tracekit
    from tracekit.pipeline import ConfigFlags, diff_traces
    from tracekit.reports import diff as report

    if threshold is not None and threshold < 0:
        raise UsageError("--threshold: must be ≥ 0")
    with tracekit.open(db_path) as db:
        diffs = diff_traces(db, a, b, threshold=threshold, flags=ConfigFlags(arch, preset_name, overrides))
    if fmt == "json":
        sys.stdout.write(report.json_text(diffs))
    elif fmt == "csv":
        sys.stdout.write(report.csv_text(diffs, by))
    elif fmt == "markdown":
        sys.stdout.write(report.markdown(diffs, by))
    else:
        report.render(diffs, by)
