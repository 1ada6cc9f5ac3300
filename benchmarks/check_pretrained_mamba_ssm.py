"""mamba-ssm's own `MambaLMHeadModel.from_pretrained` on directories written by `tracekit prune apply`.

    source .device-kernels/activate.sh && python benchmarks/check_pretrained_mamba_ssm.py --out $OUT

For Mamba-1 and Mamba-2 (mamba2-130m-like block shapes, 2 layers, random weights with non-zero conv
biases): `tracekit prune score` (magnitude) → `tracekit prune apply --variant physical --save-format
mamba-ssm`, then three readers of the same directory on the GPU, fp32:
  1. mamba-ssm's `MambaLMHeadModel.from_pretrained(dir)` — the reader users would pick;
  2. tracekit's loader (`tracekit.prune.checkpoints.load_model`, transformers) → logits on the GPU;
  3. the dense model pruned in memory (`prune_model`) in mamba-ssm, as a reference that never saw a file.
Writes pretrained_mamba_ssm.json with the max relative logit differences; exits 1 if any exceeds 1e-3
(TF32 in Mamba-2's Triton kernels puts fp32 runs ~1e-4 apart; see prune_gpu_h100_equivalence_ieee.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from bench_prune_gpu import dense_with_conv_biases, rel

from tracekit.model_config import ModelConfig
from tracekit.prune.checkpoints import PRUNE_META, load_model, read_meta, save_model
from tracekit.prune.compare import to_backend
from tracekit.prune.scoring import load_scores
from tracekit.prune.steps import prune_model


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tracekit.cli.main", *args], check=True)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ratio", type=float, default=0.5)
    args = ap.parse_args()
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = {
        "mamba2": ModelConfig(
            "mamba2", d_model=768, n_layer=2, vocab_size=512, d_state=128, headdim=64, chunk_size=256
        ),
        "mamba1": ModelConfig("mamba1", d_model=768, n_layer=2, vocab_size=512, d_state=16),
    }
    ids = torch.randint(0, 512, (2, 512), generator=torch.Generator().manual_seed(0)).cuda()
    rows = []
    for name, cfg in cases.items():
        work = out / name
        dense = dense_with_conv_biases(cfg)
        save_model(dense, cfg, work / "dense", fmt="hf")
        cli("prune", "score", "--pretrained", str(work / "dense"), "--method", "magnitude", "--out", str(work / "s.pt"))
        pruned_dir = work / "pruned"
        cli("prune", "apply", "--scores", str(work / "s.pt"), "--ratio", str(args.ratio), "--variant", "physical",
            "--save-format", "mamba-ssm", "--out", str(pruned_dir))  # fmt: skip
        info = read_meta(pruned_dir, PRUNE_META) or {}
        theirs = MambaLMHeadModel.from_pretrained(str(pruned_dir), device="cuda", dtype=torch.float32).eval()
        ours, ours_cfg = load_model(pruned_dir)
        pr = prune_model(dense, cfg, load_scores(str(work / "s.pt")).scores, args.ratio, "physical")
        ref = to_backend(pr.model, pr.cfg, "mamba-ssm", "cuda", "fp32", 0)
        y_theirs = theirs(ids).logits
        y_ours = ours.cuda()(input_ids=ids, use_cache=False).logits
        y_ref = ref(ids).logits
        row = {
            "arch": name,
            "d_state": cfg.d_state,
            "k": info.get("k"),
            "note": info.get("note"),
            "files": sorted(p.name for p in pruned_dir.iterdir()),
            "loaded_d_state": theirs.backbone.layers[0].mixer.d_state,
            "tracekit_loader_d_state": ours_cfg.d_state,
            "rel_from_pretrained_vs_in_memory": rel(y_theirs, y_ref),
            "rel_tracekit_loader_vs_from_pretrained": rel(y_ours, y_theirs),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "ratio": args.ratio, "cases": rows}
    (out / "pretrained_mamba_ssm.json").write_text(json.dumps(doc, indent=2))
    bad = [
        r
        for r in rows
        if max(r["rel_from_pretrained_vs_in_memory"], r["rel_tracekit_loader_vs_from_pretrained"]) > 1e-3
        or r["loaded_d_state"] != r["k"]
    ]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
