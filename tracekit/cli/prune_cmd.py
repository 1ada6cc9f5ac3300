"""`tracekit prune score|apply|eval|compare`: parse flags, call tracekit.prune, render with tracekit.reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tracekit.cli.options import LazyChoice, format_option, model_options, verbose_option
from tracekit.cli.paths import check_output_dir, check_output_file, image_suffixes, require_exists
from tracekit.cli.progress import ProgressView, collect_failure, quiet_transformers
from tracekit.errors import UsageError
from tracekit.model_config import config_from_flags


@click.group()
def prune() -> None:
    """Δ-guided structured state pruning: score states, apply, evaluate, compare.

    \b
    tracekit prune score --arch mamba2 --preset 130m --data calib.txt --method delta --out scores.pt
    tracekit prune apply --scores scores.pt --ratio 0.3 --variant physical --out pruned/
    tracekit prune eval  --model pruned/ --tasks ppl:wiki.txt,mc:piqa.jsonl,mqar
    """


@prune.command()
@model_options(
    arch_help="Model family (random weights unless --pretrained).",
    preset_help="Shape preset: tiny, 130m, 370m, ... (default tiny).",
)
@click.option("--pretrained", type=click.Path(file_okay=False), help="Local model directory to score.")
@click.option("--data", help="Calibration text file/dir, or a synthetic task: mqar[:opts], selcopy[:opts].")
@click.option(
    "--method",
    type=LazyChoice("tracekit.prune.scoring:METHODS"),
    default="delta",
    show_default=True,
)
@click.option("--seqlen", default=256, show_default=True, help="Tokens per calibration sequence (text data).")
@click.option("--samples", default=32, show_default=True, help="Number of calibration sequences.")
@click.option("--batch", default=8, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Weights seed (random models) and random scores.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Scores file (torch.save).")
@click.option("--heatmap", type=click.Path(dir_okay=False), help="PNG path (default: OUT with .png).")
@format_option(text_alias=True, no_csv="prune score writes a scores file and a heatmap, not rows")
def score(
    arch: str | None,
    preset_name: str | None,
    overrides: tuple[str, ...],
    pretrained: str | None,
    data: str | None,
    method: str,
    seqlen: int,
    samples: int,
    batch: int,
    seed: int,
    out: str,
    heatmap: str | None,
    fmt: str,
) -> None:
    """Score every state of every layer; write scores + a heatmap."""
    from tracekit.prune import steps
    from tracekit.prune.scoring import DATA_METHODS, save_scores
    from tracekit.reports.heatmap import save_heatmap

    if pretrained:
        require_exists(pretrained, "--pretrained", kind="directory")
    check_output_file(out, "--out", make_parents=True)
    check_output_file(
        heatmap or Path(out).with_suffix(".png"), "--heatmap", suffixes=image_suffixes(), make_parents=True
    )
    quiet_transformers()
    cfg = config_from_flags(arch, preset_name, overrides, default_preset="tiny")
    src = steps.open_source(cfg, pretrained, seed)
    batches, calib = None, {}
    if method in DATA_METHODS:
        if not data:
            raise UsageError(f"--method {method} needs --data (a text file/dir, mqar or selcopy)")
        batches, calib = steps.calibration_batches(data, src, seqlen, samples, batch, seed)
    with ProgressView() as view:
        s = steps.score(src, method, batches, calib, seed, on_progress=view)
    path = save_scores(s, out)
    png = save_heatmap(s.scores, heatmap or Path(out).with_suffix(".png"), f"{src.cfg.arch} state scores ({method})")
    summary = {
        "scores": str(path),
        "heatmap": str(png),
        "method": method,
        "shape": list(s.scores.shape),
        "calibration": calib,
        "source": src.info,
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    ties = ""
    if method == "delta-literal":
        ties = " (all states of a head/channel group tie: top-k keeps states 0..k-1)"
    click.echo(f"wrote {path} ({tuple(s.scores.shape)} = layers × groups × d_state){ties}")
    click.echo(f"wrote {png}")


@prune.command()
@click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False))
@click.option("--ratio", required=True, type=float, help="Fraction of states to remove, in [0, 1).")
@click.option("--variant", type=LazyChoice("tracekit.prune.apply:VARIANTS", exclude=("dense",)), required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to create.")
@click.option("--pretrained", type=click.Path(file_okay=False), help="Model to prune (default: the scored one).")
@click.option("--no-align", is_flag=True, help="Do not round k up to a multiple that causal-conv1d accepts (Mamba-2).")
@click.option(
    "--round-k",
    "round_how",
    type=LazyChoice("tracekit.analyzers.kernel_k:ROUND_MODES"),
    default="none",
    show_default=True,
    help="Round k to a kernel-friendly value (measured steps of mamba-ssm's decode state update; tracekit's "
    "state kernel has no padding steps): down prunes more, up keeps more, nearest (ties up).",
)
@click.option("--round-batch", default=64, show_default=True, help="Decode batch the --round-k timings are read at.")
@click.option(
    "--save-format",
    type=LazyChoice("tracekit.prune.checkpoints:SAVE_FORMATS", extra=("auto",)),
    default="auto",
    show_default=True,
    help="Model directory layout; auto = mamba-ssm where mamba-ssm is installed, else transformers.",
)
@format_option(text_alias=True, no_csv="prune apply writes a model directory, not rows")
def apply(
    scores_path: str,
    ratio: float,
    variant: str,
    out: str,
    pretrained: str | None,
    no_align: bool,
    round_how: str,
    round_batch: int,
    save_format: str,
    fmt: str,
) -> None:
    """Prune states with the scores; write a loadable model directory (atomically)."""
    from tracekit.prune import steps

    require_exists(scores_path, "--scores", kind="file")
    if pretrained:
        require_exists(pretrained, "--pretrained", kind="directory")
    check_output_dir(out, "--out")
    quiet_transformers()
    if round_batch < 1:
        raise UsageError("--round-batch must be ≥ 1")
    path, info = steps.apply_file(
        scores_path,
        ratio,
        variant,
        out,
        pretrained,
        align=not no_align,
        save_format=save_format,
        round_how=round_how,
        round_batch=round_batch,
    )
    if fmt == "json":
        click.echo(json.dumps({"out": str(path), **{k: v for k, v in info.items() if k != "keep"}}, indent=2))
        return
    if info["note"]:
        click.echo(f"note: {info['note']}")
    rk = info.get("round_k")
    if rk:
        moved = f"rounded {rk['how']} from {rk['from']} to {rk['k']}" if rk["k"] != rk["from"] else f"kept at {rk['k']}"
        click.echo(
            f"--round-k: k {moved} (kernel-friendly k for mamba-ssm's state update at batch {rk['batch']}: "
            f"{', '.join(map(str, rk['friendly']))}); {rk['kernel_note'] or 'no timing for this k'}"
        )
        tkf = rk.get("tracekit_friendly")
        click.echo(
            "--round-k: tracekit's state kernel (--state-kernel tracekit) pads nothing; "
            + (
                f"kernel-friendly among its measured k at batch {rk['batch']}: {', '.join(map(str, tkf))}"
                if tkf
                else f"not measured at d_state {info['d_state']} (mamba2 N 128, k 32..128 step 16 only)"
            )
        )
    click.echo(
        f"wrote {path}: {variant}, {info['method']} scores, ratio {ratio} → keep {info['k']} of "
        f"{info['d_state']} states per layer"
    )


@prune.command(name="eval")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="Model directory.")
@model_options(
    arch_help="Or: a random model of this family...", preset_help="...with this shape preset (default tiny)."
)
@click.option("--tasks", required=True, help="Comma list: ppl:FILE, mc:FILE.jsonl, mqar[:k=v], selcopy[:k=v].")
@click.option("--seqlen", default=256, show_default=True, help="Perplexity window length.")
@click.option("--max-windows", type=int, help="Cap on perplexity windows.")
@click.option("--n", "n_examples", default=256, show_default=True, help="Synthetic examples.")
@click.option("--limit", type=int, help="Cap on multiple-choice items per file.")
@click.option("--seed", default=1234, show_default=True, help="Seed of the synthetic evaluation examples.")
@format_option(text_alias=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the results as JSON here.")
def eval_cmd(
    model_dir: str | None,
    arch: str | None,
    preset_name: str | None,
    overrides: tuple[str, ...],
    tasks: str,
    seqlen: int,
    max_windows: int | None,
    n_examples: int,
    limit: int | None,
    seed: int,
    fmt: str,
    out: str | None,
) -> None:
    """Perplexity, zero-shot multiple choice (lm-eval formats) and synthetic recall, offline."""
    from tracekit.prune import steps
    from tracekit.prune.tasks import split_tasks

    if bool(model_dir) == bool(arch):
        raise UsageError("give exactly one of --model DIR or --arch")
    # Every input before the model is loaded: a typo must not cost an evaluation.
    if model_dir:
        require_exists(model_dir, "--model", kind="directory")
    if out:
        check_output_file(out, "--out")
    specs = split_tasks(tasks)
    check_eval_tasks(specs, Path(model_dir) if model_dir else None, limit)
    quiet_transformers()
    cfg = config_from_flags(arch, preset_name, overrides, default_preset="tiny")
    src = steps.open_source(cfg, model_dir, 0)
    rows = [
        r.to_dict()
        for r in steps.eval_model(
            src.model, src.cfg, src.model_dir, specs, seqlen, max_windows, n_examples, limit, seed
        )
    ]
    payload = {"model": model_dir or f"random {src.cfg.arch}", "d_state": src.cfg.d_state, "results": rows}
    if out:
        Path(out).write_text(json.dumps(payload, indent=2))
    if fmt == "json":
        click.echo(json.dumps(payload, indent=2))
    elif fmt == "csv":
        from tracekit.reports.tables import records_to_csv

        click.echo(records_to_csv(rows), nl=False)
    else:
        from tracekit.reports.eval_table import render

        render(payload)


def check_eval_tasks(specs: list[str], model_dir: Path | None, limit: int | None) -> None:
    """Validate every `prune eval` task spec and its file (exists, and mc files parse) before any work."""
    from tracekit.prune.checkpoints import TASK_META, read_meta
    from tracekit.prune.evaluate import read_mc
    from tracekit.prune.tasks import parse_synthetic

    if not specs:
        raise UsageError("--tasks is empty: use ppl:FILE, mc:FILE.jsonl, mqar[:k=v,..] or selcopy[:k=v,..]")
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "ppl":
            if not arg:
                raise UsageError("ppl needs a file: ppl:PATH")
            require_exists(arg, "--tasks ppl:")
        elif kind == "mc":
            if not arg:
                raise UsageError("mc needs a JSONL file: mc:PATH")
            require_exists(arg, "--tasks mc:", kind="file")
            read_mc(arg, limit)  # content errors (exit 1) now, not after the other tasks ran
        elif kind in ("mqar", "selcopy", "selective-copy"):
            defaults = read_meta(model_dir, TASK_META) if model_dir and model_dir.is_dir() else None
            parse_synthetic(spec, defaults)
        else:
            raise UsageError(f"unknown task {spec!r}: use ppl:FILE, mc:FILE.jsonl, mqar[:k=v,..] or selcopy[:k=v,..]")


@prune.command()
@model_options(default_preset="tiny", arch_help="Required unless --phase analyze.")
@click.option(
    "--method",
    type=LazyChoice("tracekit.prune.compare:DATA_FREE"),
    default="magnitude",
    show_default=True,
    help="Data-free scores to pick states (latency does not depend on which states are kept).",
)
@click.option("--ratios", default="0.1,0.3,0.5,0.7,0.9", show_default=True)
@click.option("--variants", "variant_list", default="masked,physical", show_default=True)
@click.option("--seqlens", default="64,512,2048", show_default=True)
@click.option("--mode", "modes", default="prefill,decode", show_default=True)
@click.option("--batch", default=1, show_default=True)
@click.option("--decode-steps", default=8, show_default=True)
@click.option("--repeats", default=3, show_default=True)
@click.option("--warmup", default=1, show_default=True)
@click.option(
    "--backend",
    type=LazyChoice("tracekit.collectors.backends:BACKENDS", extra=("auto",)),
    default="auto",
    show_default=True,
)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option(
    "--cuda-graphs", type=LazyChoice("tracekit.collectors.spec:CUDA_GRAPHS"), default="off", show_default=True
)
@click.option("--scores", "scores_path", type=click.Path(dir_okay=False), help="Use these scores (any method).")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option(
    "--state-kernel",
    type=click.Choice(["tracekit", "mamba-ssm"]),
    default="tracekit",
    show_default=True,
    help="Decode-step SSM state update on the mamba-ssm backend (docs/prune.md, 'The state-update kernel').",
)
@click.option(
    "--phase",
    type=click.Choice(["all", "collect", "analyze"]),
    default="all",
    show_default=True,
    help="collect: only run the variants (no duckdb needed: e.g. on a GPU machine); "
    "analyze: ingest + attribute a collected --out here.",
)
@format_option(text_alias=True)
@verbose_option
def compare(**kw: Any) -> None:
    """Collect dense / masked / physical × ratios × seqlens × modes through the same pipeline; Table 2."""
    from tracekit.collectors.quiet import library_output, read_library_log
    from tracekit.prune import compare as cmp
    from tracekit.reports.collect_summary import library_output_line, print_library_notes

    if kw["scores_path"]:
        require_exists(kw["scores_path"], "--scores", kind="file")
    if kw["phase"] == "analyze":
        require_exists(kw["out"], "--out", kind="directory")
    else:
        check_output_dir(kw["out"], "--out")
    if kw["phase"] == "analyze":
        result = cmp.analyze_compare(Path(kw["out"]))
        _emit_compare(result, kw["fmt"])
        return
    if not kw["arch"]:
        raise UsageError("--arch is required (unless --phase analyze)")
    args = dict(
        arch=kw["arch"],
        cfg=config_from_flags(kw["arch"], kw["preset_name"], kw["overrides"], default_preset="tiny"),
        method=kw["method"],
        ratios=cmp.parse_floats(kw["ratios"], "--ratios"),
        variants=[v for v in kw["variant_list"].split(",") if v],
        seqlens=[int(x) for x in cmp.parse_floats(kw["seqlens"], "--seqlens")],
        modes=[m for m in kw["modes"].split(",") if m],
        batch=kw["batch"],
        decode_steps=kw["decode_steps"],
        repeats=kw["repeats"],
        warmup=kw["warmup"],
        backend=kw["backend"],
        device=kw["device"],
        dtype=kw["dtype"],
        cuda_graphs=kw["cuda_graphs"],
        seed=kw["seed"],
        out=Path(kw["out"]),
        scores_path=kw["scores_path"],
        phase=kw["phase"],
        state_kernel=kw["state_kernel"],
    )
    with (
        library_output(Path(kw["out"]) / "collect.log", show=kw["verbose"]) as log,
        ProgressView(note=collect_failure) as view,
    ):
        result = cmp.run_compare(**args, on_progress=view)
    console = view.console
    said = read_library_log([log])
    print_library_notes(said, console)
    if line := library_output_line(said):
        console.print(line, highlight=False)
    if result is None:
        click.echo(f"collected; finish with: tracekit prune compare --phase analyze --out {kw['out']}")
        return
    _emit_compare(result, kw["fmt"])


def _emit_compare(result: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    elif fmt == "csv":
        from tracekit.reports.tables import records_to_csv

        click.echo(records_to_csv(result.rows), nl=False)
    else:
        from tracekit.reports.compare import print_table

        print_table(result)
