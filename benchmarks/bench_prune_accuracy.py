"""Accuracy vs pruning ratio for every scoring method, on a small model trained offline here.

    python benchmarks/bench_prune_accuracy.py --arch mamba2 --steps 1000 --out benchmarks/results

Trains (or loads, with --model) a small MQAR model, calibrates once on held-out MQAR sequences, scores
states with every method, prunes at ratios 0, 0.1, …, 0.9 (physical variant, exact k = ⌊N(1−r)⌋, no
causal-conv1d rounding) and measures MQAR accuracy on the same 1024 held-out sequences. `random` is
averaged over --random-seeds seeds. Writes JSON, markdown and a PNG naming the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tracekit.model_config import ModelConfig
from tracekit.prune.checkpoints import TASK_META, load_model, read_meta
from tracekit.prune.evaluate import synthetic_accuracy
from tracekit.prune.scoring import METHODS, compute_scores
from tracekit.prune.steps import prune_model
from tracekit.prune.tasks import parse_synthetic, synthetic_batches
from tracekit.prune.train import train_to_dir

RATIOS = [round(0.1 * i, 1) for i in range(10)]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} ({os.cpu_count()} CPU cores, {cpu}, torch {torch.__version__})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mamba2", choices=["mamba1", "mamba2"])
    ap.add_argument("--model", help="an already trained model dir (skips training)")
    ap.add_argument("--task", default="mqar:num_kv=8,vocab=64")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--headdim", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--calib", type=int, default=256, help="calibration sequences")
    ap.add_argument("--eval-n", type=int, default=1024)
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--tag", default="")
    ap.add_argument("--seed", type=int, default=0, help="training seed (weights and batches)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (curves run on the CPU)")
    ap.add_argument("--model-dir", default=None, help="where to save the trained model (default: a temp dir)")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{args.arch}{args.tag}"
    train_info = None
    if args.model:
        model_dir = Path(args.model)
    else:
        import tempfile

        # weights are not results: keep them out of the repository unless asked
        model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="mqar_")) / f"model_{tag}"
        vocab = parse_synthetic(args.task).vocab
        shape = {"headdim": args.headdim, "chunk_size": 64} if args.arch == "mamba2" else {}
        cfg = ModelConfig(
            args.arch,
            d_model=args.d_model,
            n_layer=args.n_layer,
            vocab_size=vocab,
            d_state=args.d_state,
            pad_vocab_size_multiple=1,
            **shape,
        )
        t0 = time.perf_counter()
        summary = train_to_dir(
            cfg,
            args.task,
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            seqlen=256,
            max_bytes=0,
            seed=args.seed,
            eval_n=args.eval_n,
            out=str(model_dir),
            on_progress=lambda e: print(f"step {e.done}: {e.result}", flush=True),
            device=args.device,
        )
        train_info = {
            "config": cfg.to_dict(),
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "device": args.device,
            "model_dir": str(model_dir),
            "seconds": summary["train_seconds"],
            "wall_seconds": time.perf_counter() - t0,
            "eval": summary["eval"],
        }
    model, cfg = load_model(model_dir)
    meta = read_meta(model_dir, TASK_META) or {}
    task = parse_synthetic(meta.get("task", "mqar"), meta)
    calib = [x for x, _ in synthetic_batches(task, args.calib, 64, seed=777)]

    def acc(m: torch.nn.Module) -> float:
        return synthetic_accuracy(m, task, n=args.eval_n, seed=4242)[0].value

    curves, score_s = score_curves(model, cfg, calib, acc, "acc", args.random_seeds)
    doc = {
        "machine": machine(),
        "task": meta,
        "model_config": cfg.to_dict(),
        "train": train_info,
        "calibration_sequences": args.calib,
        "eval_sequences": args.eval_n,
        "score_seconds": score_s,
        "random_seeds": args.random_seeds,
        "variant": "physical (exact k, no causal-conv1d rounding)",
        "curves": curves,
    }
    doc["task"] = {k: v for k, v in meta.items() if k not in ("train", "eval")}
    stem = out / f"prune_accuracy_mqar_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    stem.with_suffix(".md").write_text(markdown(doc))
    plot(doc, stem.with_suffix(".png"))
    print(f"wrote {stem}.json/.md/.png")


def score_curves(
    model: torch.nn.Module,
    cfg: ModelConfig,
    calib: list[torch.Tensor],
    metric: Callable[[torch.nn.Module], float],
    key: str,
    random_seeds: int,
) -> tuple[dict[str, list[dict]], float]:
    """`key` = metric(physically pruned model) at every ratio, for every scoring method; `random` is the
    mean over `random_seeds` seeds (with `<key>_min`/`<key>_max`). Returns (curves, seconds scoring)."""
    t0 = time.perf_counter()
    scores = compute_scores(model, cfg, [m for m in METHODS if m != "random"], calib)
    score_s = time.perf_counter() - t0
    for s in range(random_seeds):
        scores[f"random#{s}"] = compute_scores(model, cfg, ["random"], None, seed=s)["random"]
    curves: dict[str, list[dict]] = {}
    for name, s in scores.items():
        rows = []
        for r in RATIOS:
            pr = prune_model(model, cfg, s, r, "physical", align=False)
            rows.append({"ratio": r, "k": pr.info["k"], key: metric(pr.model)})
        curves[name] = rows
        print(name, " ".join(f"{x[key]:.3f}" for x in rows), flush=True)
    rand = [curves.pop(f"random#{s}") for s in range(random_seeds)]
    curves["random"] = [
        {
            "ratio": r,
            "k": rand[0][i]["k"],
            key: statistics.mean(x[i][key] for x in rand),
            f"{key}_min": min(x[i][key] for x in rand),
            f"{key}_max": max(x[i][key] for x in rand),
        }
        for i, r in enumerate(RATIOS)
    ]
    return curves, score_s


def curve_table(curves: dict[str, list[dict]], key: str) -> list[str]:
    """Markdown rows: one per method, one column per ratio (with its k)."""
    first = next(iter(curves.values()))
    lines = [
        "| method | " + " | ".join(f"r={x['ratio']:g} (k={x['k']})" for x in first) + " |",
        "|" + " --- |" * (len(first) + 1),
    ]
    return lines + [f"| {name} | " + " | ".join(f"{x[key]:.3f}" for x in rows) + " |" for name, rows in curves.items()]


def plot_curves(
    curves: dict[str, list[dict]], key: str, path: Path, *, ylabel: str, title: str, machine: str, log: bool = False
) -> None:
    """One line per method over the ratios; the random seeds' spread as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, rows in curves.items():
        xs = [x["ratio"] for x in rows]
        ax.plot(xs, [x[key] for x in rows], "-o", ms=3, label=name)
        if f"{key}_min" in rows[0]:
            ax.fill_between(xs, [x[f"{key}_min"] for x in rows], [x[f"{key}_max"] for x in rows], alpha=0.2)
    ax.set_xlabel("pruning ratio r (k = ⌊N(1−r)⌋ states kept per layer)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, machine, fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(doc: dict) -> str:
    curves = doc["curves"]
    tr = doc["train"]
    lines = [
        f"# MQAR accuracy vs state-pruning ratio ({doc['model_config']['arch']})",
        "",
        f"Machine: {doc['machine']}.",
        f"Task: {doc['task']}. Model: d_model {doc['model_config']['d_model']}, {doc['model_config']['n_layer']} "
        f"layers, d_state {doc['model_config']['d_state']}.",
    ]
    if tr:
        lines.append(
            f"Training (on {tr.get('device', 'cpu')}): seed {tr.get('seed', 0)}, {tr['steps']} steps × batch "
            f"{tr['batch']}, lr {tr['lr']}, {tr['seconds']:.0f} s wall; held-out accuracy {tr['eval'][0]['value']:.4f}."
        )
    lines += [
        f"Calibration: {doc['calibration_sequences']} MQAR sequences (seed 777); accuracy on "
        f"{doc['eval_sequences']} held-out sequences (seed 4242). Variant: {doc['variant']}. `random` = mean of "
        f"{doc['random_seeds']} seeds.",
        "",
        *curve_table(curves, "acc"),
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    cfg = doc["model_config"]
    plot_curves(
        doc["curves"],
        "acc",
        path,
        ylabel="MQAR accuracy",
        title=f"{cfg['arch']} d_state {cfg['d_state']}: accuracy vs ratio",
        machine=doc["machine"],
    )


if __name__ == "__main__":
    main()
