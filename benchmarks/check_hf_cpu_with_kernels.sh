#!/usr/bin/env bash
# On the CUDA machine, with mamba-ssm and causal-conv1d importable: CPU-side hf work (prune score with
# calibration, prune eval) must run (transformers would call the CUDA kernels on CPU tensors), and hf
# models on the GPU must still use those kernels. Result: benchmarks/results/h100_hf_cpu_with_kernels.md
set -euo pipefail
source .device-kernels/activate.sh; export TRANSFORMERS_VERBOSITY=error; cd /tmp
TK="python -m tracekit.cli.main"
for a in mamba1 mamba2; do
  $TK prune score --arch $a --preset tiny --data mqar:num_kv=4,vocab=64 --config vocab_size=64 --method delta --samples 8 --out s_$a.pt 2>&1 | tail -1
  $TK prune eval --arch $a --preset tiny --config vocab_size=64 --tasks mqar:num_kv=4,vocab=64 --n 16 2>&1 | tail -2
done
python - <<'PY'
import torch
from tracekit.collectors.backends import build_model
from tracekit.model_config import preset
for arch in ("mamba1", "mamba2"):
    cfg = preset(arch, "tiny")
    m = build_model(cfg, "hf", "cuda", torch.float32, 0)
    x = torch.randint(0, 100, (2, 128), device="cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        y = m(input_ids=x, use_cache=False).logits
    names = sorted({e.name for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA})
    fused = [n for n in names if any(k in n for k in ("causal_conv1d", "chunk", "selective_scan", "mamba"))]
    print(arch, "gpu kernels from mamba-ssm/causal-conv1d:", len(fused), fused[:4])
    mc = build_model(cfg, "hf", "cpu", torch.float32, 0)
    yc = mc(input_ids=x.cpu(), use_cache=False).logits
    print(arch, "cpu vs gpu rel", ((yc - y.float().cpu()).abs().max() / yc.abs().max()).item())
PY
