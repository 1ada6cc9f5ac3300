"""Plain mamba-ssm (no tracekit): graph decode peak memory after a prompt, per d_state (issue #11).

The same sequence as `tracekit collect --cuda-graphs on` (update_graph_cache, prompt with the graph's
inference params, reset of the peak counter, graph replays) written against mamba-ssm alone, so a
jump seen here is not tracekit's. One d_state per process (argv); prints one JSON line.

    python benchmarks/check_mamba_ssm_graph_memory.py 96 [--eager]
"""

from __future__ import annotations

import json
import sys

import torch
from mamba_ssm.models.config_mamba import MambaConfig
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
from mamba_ssm.utils.generation import update_graph_cache

B, L, STEPS = 64, 2048, 8


def main() -> None:
    n = int(sys.argv[1])
    torch.manual_seed(0)
    cfg = MambaConfig(
        d_model=768,
        n_layer=24,
        vocab_size=50277,
        ssm_cfg={"layer": "Mamba2", "d_state": n, "headdim": 64},
        pad_vocab_size_multiple=16,
    )
    model = MambaLMHeadModel(cfg, device="cuda", dtype=torch.bfloat16).eval()
    out = {"d_state": n, "eager": "--eager" in sys.argv}
    with torch.inference_mode():
        eager = "--eager" in sys.argv
        if eager:
            from mamba_ssm.utils.generation import InferenceParams

            ip = InferenceParams(max_seqlen=L + STEPS, max_batch_size=B)
        else:
            cache = update_graph_cache(model, None, B, L, L + STEPS)
            ip = cache.inference_params
            ip.reset(L + STEPS, B)

        def run(tok, k):
            ip.seqlen_offset = L + k
            if eager:
                return model(tok, inference_params=ip, num_last_tokens=1).logits
            return cache.run(tok, pos, ip.seqlen_offset)

        ids = torch.randint(0, 50277, (B, L), device="cuda")
        torch.cuda.reset_peak_memory_stats()
        logits = model(ids, inference_params=ip, num_last_tokens=1).logits
        torch.cuda.synchronize()
        out["prompt_peak"] = torch.cuda.max_memory_allocated()
        tok = logits[:, -1].argmax(-1, keepdim=True)
        pos = torch.zeros(B, 1, dtype=torch.long, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        out["allocated_at_reset"] = torch.cuda.memory_allocated()
        for k in range(STEPS):
            tok = run(tok, k)[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        out["window_peak"] = torch.cuda.max_memory_allocated()
        # a second window: is the jump a one-off after the prompt?
        torch.cuda.reset_peak_memory_stats()
        for k in range(STEPS):
            tok = run(tok, k)[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        out["second_window_peak"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
