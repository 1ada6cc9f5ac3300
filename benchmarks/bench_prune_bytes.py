"""Held-out perplexity vs pruning ratio for every scoring method, on a byte-level LM trained here.

    python benchmarks/bench_prune_bytes.py --steps 800 --out benchmarks/results

Corpus: the Python standard library's source that ships with the interpreter (no download). The last
10% is held out; calibration uses windows of the training part, perplexity the held-out part.
Physical variant with exact k = ⌊N(1−r)⌋; `random` averaged over 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import tempfile
import time
from pathlib import Path

import torch
from bench_prune_accuracy import curve_table, machine, plot_curves, score_curves

from tracekit.model_config import ModelConfig
from tracekit.prune.checkpoints import load_model
from tracekit.prune.evaluate import perplexity
from tracekit.prune.tasks import windows
from tracekit.prune.train import byte_corpus, train_to_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mamba2", choices=["mamba1", "mamba2"])
    ap.add_argument("--corpus", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--max-bytes", type=int, default=4_000_000)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-state", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (curves run on the CPU)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-windows", type=int, default=48)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    out = Path(args.out)
    shape = {"headdim": 32, "chunk_size": 64} if args.arch == "mamba2" else {}
    cfg = ModelConfig(
        args.arch,
        d_model=args.d_model,
        n_layer=2,
        vocab_size=256,
        d_state=args.d_state,
        pad_vocab_size_multiple=1,
        **shape,
    )
    model_dir = Path(tempfile.mkdtemp(prefix="bytes_")) / "model"
    t0 = time.perf_counter()
    summary = train_to_dir(
        cfg,
        f"bytes:{args.corpus}",
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seqlen=args.seqlen,
        max_bytes=args.max_bytes,
        seed=0,
        eval_n=0,
        out=str(model_dir),
        on_progress=lambda e: print(f"step {e.done}: {e.result}", flush=True),
        device=args.device,
    )
    wall = time.perf_counter() - t0
    model, cfg = load_model(model_dir)
    train, held = byte_corpus(args.corpus, args.max_bytes)
    g = torch.Generator().manual_seed(777)
    w = windows(train, 256)
    calib = list(torch.split(w[torch.randperm(w.shape[0], generator=g)[:64]], 16))
    ids = held.tolist()

    def ppl(m: torch.nn.Module) -> float:
        return perplexity(m, ids, 256, max_windows=args.eval_windows)[0].value

    curves, _ = score_curves(model, cfg, calib, ppl, "ppl", random_seeds=3)
    doc = {
        "machine": machine(),
        "corpus": args.corpus,
        "max_bytes": args.max_bytes,
        "model_config": cfg.to_dict(),
        "train": {
            "steps": args.steps,
            "batch": args.batch,
            "seqlen": args.seqlen,
            "lr": args.lr,
            "device": args.device,
            "seconds": summary["train_seconds"],
            "wall_seconds": wall,
            "eval": summary["eval"],
        },
        "calibration": "64 windows of 256 bytes from the training part (seed 777)",
        "eval": f"{args.eval_windows} windows of 256 held-out bytes",
        "curves": curves,
    }
    stem = out / f"prune_accuracy_bytes_{args.arch}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    md = [
        f"# Byte-level LM: held-out perplexity vs state-pruning ratio ({args.arch}, d_state {cfg.d_state})",
        "",
        f"Machine: {doc['machine']}. Corpus: {args.corpus} (*.py, first {args.max_bytes} bytes, last 10% held "
        f"out). Model: d_model {cfg.d_model}, 2 layers{', headdim 32' if args.arch == 'mamba2' else ''}. Training "
        f"(on {args.device}): {args.steps} steps × {args.batch} × {args.seqlen} bytes, "
        f"{summary['train_seconds']:.0f} s; held-out ppl "
        f"{summary['eval'][0]['value']:.3f} ({args.seqlen}-byte windows, as trained; the table uses 256-byte "
        f"windows). Calibration: {doc['calibration']}; eval: {doc['eval']}. "
        "Physical variant, exact k; `random` = mean of 3 seeds. Lower is better.",
        "",
        *curve_table(curves, "ppl"),
    ]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    plot_curves(
        curves,
        "ppl",
        stem.with_suffix(".png"),
        ylabel="held-out byte perplexity",
        title=f"{args.arch} byte LM, d_state {cfg.d_state}",
        machine=doc["machine"],
        log=True,
    )
    print(f"wrote {stem}.json/.md/.png")


if __name__ == "__main__":
    main()
