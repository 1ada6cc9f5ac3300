"""`tracekit report RUN_DIR...`: the paper's figures and tables from your own runs, as one offline HTML page,
PNG figures, Markdown and a terminal summary (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from tracekit.cli.options import db_option
from tracekit.cli.paths import check_output_dir, require_exists


@click.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option(
    "--out",
    "out_dir",
    default="tracekit-report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.html, report.md and figures/*.png (created if needed; files are overwritten).",
)
@click.option("--claims", "claims_file", default=None, metavar="FILE", help="Claims file (default: the paper's).")
@click.option("--title", default=None, help="Page title (default: names the inputs).")
@db_option
def report(
    inputs: tuple[str, ...], out_dir: Path, claims_file: str | None, title: str | None, db_path: str | None
) -> None:
    """Report across runs: scaling, resources, roofline, pruning, accuracy, paper vs measured.

    \b
    RUN_DIR: `tracekit collect` runs (manifest.json), `prune compare` dirs (compare.json), prune accuracy
    results (JSON with `curves`), or folders holding them. Traces are ingested and attributed (cached).
    Example:
      tracekit report benchmarks/results/h100_collect_130m benchmarks/results/h100_prune_compare --out rep
    """
    from rich.console import Console

    import tracekit
    from tracekit.reports.run_report import print_summary, write_report

    for p in inputs:
        require_exists(p, "RUN_DIR")
    if claims_file is not None:
        require_exists(claims_file, "--claims", kind="file")
    check_output_dir(out_dir, "--out")
    with tracekit.open(db_path) as db:
        data = db.report(list(inputs), claims_file=claims_file)
    name = title or "tracekit report: " + ", ".join(Path(p).resolve().name for p in inputs)
    written = write_report(data, out_dir, name)
    print_summary(data, written, Console())
