"""`tracekit train`: train a small Mamba-1/2 model offline (parse flags, call tracekit.prune.train)."""

from __future__ import annotations

import json

import click

from tracekit.cli.options import format_option, model_options
from tracekit.cli.paths import check_output_dir, require_exists
from tracekit.cli.progress import ProgressView, quiet_transformers
from tracekit.model_config import config_from_flags


@click.command()
@model_options(default_preset="tiny", required_arch=True, config_help="e.g. d_state=16 vocab_size=128")
@click.option("--task", required=True, help="mqar[:num_kv=8,vocab=128], selcopy[:...] or bytes:FILE_OR_DIR.")
@click.option("--steps", default=600, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--seqlen", default=256, show_default=True, help="bytes task: tokens per training window.")
@click.option("--max-bytes", default=4_000_000, show_default=True, help="bytes task: corpus cap.")
@click.option("--seed", default=0, show_default=True)
@click.option("--eval-n", default=512, show_default=True, help="Held-out synthetic examples to score at the end.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Where to train.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to create.")
@format_option(text_alias=True, no_csv="train writes a model directory, not rows")
def train(
    arch: str,
    preset_name: str,
    overrides: tuple[str, ...],
    task: str,
    steps: int,
    batch: int,
    lr: float,
    seqlen: int,
    max_bytes: int,
    seed: int,
    eval_n: int,
    device: str,
    out: str,
    fmt: str,
) -> None:
    """Train a small Mamba-1/2 model offline (MQAR, selective copying, or a byte-level LM)."""
    from tracekit.prune.train import train_to_dir

    check_output_dir(out, "--out")
    if task.startswith("bytes:"):
        require_exists(task.partition(":")[2], "--task bytes:")
    quiet_transformers()
    cfg = config_from_flags(arch, preset_name, overrides, default_preset="tiny")
    with ProgressView() as view:
        summary = train_to_dir(cfg, task, steps, batch, lr, seqlen, max_bytes, seed, eval_n, out, view, device)
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    final = summary["eval"]
    click.echo(
        f"wrote {summary['out']} in {summary['train_seconds']:.1f} s; "
        + ", ".join(f"{r['task']} {r['metric']} {r['value']:.4f}" for r in final)
    )
