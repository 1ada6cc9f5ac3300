#!/usr/bin/env bash
# Device part of benchmarks/graph_attribution.py (issue 11): CUDA-graph decode traces with a template step and
# the eager decode traces of the same points, collected by `tracekit collect` on one GPU; one tarball in $OUT.
#   fixtures: mamba1 + mamba2, 130m shapes, batch 8 and 64, prompt 64, 6 steps (small traces for CI)
#   table:    mamba2, 130m shapes, batch 8, prompt 2048, 16 steps (the table)
set -u
OUT=${OUT:-out}
mkdir -p "$OUT/graph"
tk() { python3 -m tracekit.cli.main "$@"; }
for b in 8 64; do
  tk collect --arch mamba1,mamba2 --preset 130m --seqlens 64 --batch "$b" --mode decode --cuda-graphs both \
     --decode-steps 6 --warmup 2 --repeats 5 --out "$OUT/graph/fixture_b$b" 2>&1 | tail -n 12
done
tk collect --arch mamba2 --preset 130m --seqlens 2048 --batch 8 --mode decode --cuda-graphs both \
   --decode-steps 16 --out "$OUT/graph/table_b8" 2>&1 | tail -n 12
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/graph/gpu.txt"
tar -C "$OUT" -czf "$OUT/graph.tar.gz" graph && rm -rf "$OUT/graph"
ls -la "$OUT"
