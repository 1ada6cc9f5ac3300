"""lm-evaluation-harness model "tracekit": evaluates a tracekit model directory (dense or pruned).

Only imported when lm-eval is installed (`pip install 'tracekit[lmeval]'`); importing it registers the
model. Tasks and their data come from lm-eval — offline that means local task YAMLs or datasets already
in the cache (tests/prune/test_lm_eval_adapter.py builds a PIQA-format task from a local JSONL file):

    python -m tracekit.prune.lm_eval_adapter --model pruned/ --tasks piqa [--include-path DIR] [--limit N]

or from Python: `import tracekit.prune.lm_eval_adapter` and then
`lm_eval.simple_evaluate(model="tracekit", model_args="pretrained=pruned/", tasks=[...])`.
Scores use the same continuation log-likelihood as `tracekit prune eval`; text goes through the model
directory's own tokenizer when it ships one, else UTF-8 bytes (tokens 0..255).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from tracekit.prune.checkpoints import load_model
from tracekit.prune.evaluate import continuation_score
from tracekit.prune.tasks import ByteTokenizer, encode, tokenizer_for


@register_model("tracekit")
class TracekitLM(LM):
    """A tracekit/transformers Mamba model directory as an lm-eval LM (greedy generation, no batching)."""

    def __init__(self, pretrained: str, device: str = "cpu", max_length: int = 2048, **_: Any):
        super().__init__()
        self.model, self.cfg = load_model(pretrained)
        self.model.to(device).eval()
        self.tok = tokenizer_for(pretrained, self.cfg.vocab_size)
        self.max_length = max_length

    def _enc(self, text: str) -> list[int]:
        return encode(self.tok, text)

    def _dec(self, ids: list[int]) -> str:
        if isinstance(self.tok, ByteTokenizer):
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return self.tok.decode(ids)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            context, continuation = req.args
            ctx = self._enc(context) or [0]  # an empty context still needs one token to predict from
            out.append(continuation_score(self.model, ctx, self._enc(continuation)))
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-string log-likelihood in windows of max_length (token 0 stands before the first)."""
        out = []
        for req in requests:
            ids = [0, *self._enc(req.args[0])]
            total = 0.0
            for start in range(1, len(ids), self.max_length - 1):
                window = ids[start - 1 : start + self.max_length - 1]
                total += continuation_score(self.model, window[:1], window[1:])[0]
            out.append(total)
        return out

    @torch.no_grad()
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            ids = self._enc(context) or [0]
            new: list[int] = []
            text = ""
            for _ in range(int(gen_kwargs.get("max_gen_toks", 64))):
                x = torch.tensor([ids + new], device=next(self.model.parameters()).device)
                new.append(int(self.model(input_ids=x, use_cache=False).logits[0, -1].argmax()))
                text = self._dec(new)
                if any(u and u in text for u in until):
                    text = text[: min(text.index(u) for u in until if u and u in text)]
                    break
            out.append(text)
        return out


def main(argv: list[str] | None = None) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    ap = argparse.ArgumentParser(description="Run lm-eval tasks on a tracekit model directory.")
    ap.add_argument("--model", required=True, help="model directory (e.g. from `tracekit prune apply`)")
    ap.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    ap.add_argument("--include-path", help="folder of extra task YAMLs (e.g. local data)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    res = lm_eval.simple_evaluate(
        model=TracekitLM(args.model, device=args.device),
        tasks=args.tasks.split(","),
        limit=args.limit,
        task_manager=TaskManager(include_path=args.include_path) if args.include_path else None,
    )
    print(json.dumps(res["results"], indent=2, default=str))


if __name__ == "__main__":
    main()
