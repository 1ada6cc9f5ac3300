"""Accuracy of a (pruned) model, offline: perplexity, zero-shot multiple choice, synthetic recall.

Multiple choice follows lm-eval-harness's definitions so numbers are comparable with published ones:
each choice is scored by the summed log-likelihood of its continuation (prefixed with a space, lm-eval's
target delimiter) given the prompt; `acc` picks the highest sum, `acc_norm` the highest sum divided by
the continuation's length in UTF-8 bytes. Prompts per task are those of lm-eval's task YAMLs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tracekit.errors import MissingPathError, TracekitError
from tracekit.prune.tasks import IGNORE, MQAR, SelectiveCopy, encode, synthetic_batches, windows


@dataclass
class Result:
    """One metric of one task; `n` is the number of examples (or tokens, for perplexity)."""

    task: str
    metric: str
    value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "value": self.value, "n": self.n}


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits.float()


# ---- perplexity --------------------------------------------------------------


@torch.no_grad()
def perplexity(
    model: nn.Module,
    ids: list[int],
    seqlen: int = 256,
    batch: int = 8,
    max_windows: int | None = None,
    name: str = "ppl",
) -> list[Result]:
    """exp(mean next-token NLL) over non-overlapping windows (each window's first token is not scored)."""
    w = windows(ids, seqlen, max_windows)
    nll, count = 0.0, 0
    for i in range(0, w.shape[0], batch):
        x = w[i : i + batch]
        logits = _logits(model, x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        nll += loss.item()
        count += x[:, 1:].numel()
    mean = nll / count
    return [
        Result(name, "ppl", math.exp(mean), count),
        Result(name, "bits_per_token", mean / math.log(2), count),
    ]


# ---- multiple choice -----------------------------------------------------------


@dataclass
class Choice:
    """One multiple-choice item: a prompt, its candidate continuations and the gold index."""

    context: str
    choices: list[str]
    gold: int


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _letter_index(labels: list[str], key: str) -> int:
    key = key.strip()
    if key in labels:
        return labels.index(key)
    if key.isdigit() and "1" in labels:  # ARC has a few items labelled 1..4
        return labels.index(key)
    raise ValueError(f"answer {key!r} not among labels {labels}")


def to_choice(doc: dict[str, Any]) -> tuple[str, Choice]:
    """(task kind, item) for one line of PIQA / ARC / HellaSwag / OpenBookQA JSONL (HF dataset fields)."""
    if "goal" in doc and "sol1" in doc:  # piqa
        return "piqa", Choice(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"]))
    if "endings" in doc and "ctx_a" in doc:  # hellaswag
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        query = _hellaswag_clean(doc["activity_label"] + ": " + ctx)
        return "hellaswag", Choice(query, [_hellaswag_clean(e) for e in doc["endings"]], int(doc["label"]))
    if "question_stem" in doc:  # openbookqa
        ch = doc["choices"]
        return "openbookqa", Choice(
            doc["question_stem"], list(ch["text"]), _letter_index(list(ch["label"]), doc["answerKey"])
        )
    if "question" in doc and "choices" in doc and "answerKey" in doc:  # arc
        ch = doc["choices"]
        return "arc", Choice(
            f"Question: {doc['question']}\nAnswer:",
            list(ch["text"]),
            _letter_index(list(ch["label"]), doc["answerKey"]),
        )
    raise ValueError("unrecognised fields (expected PIQA, ARC, HellaSwag or OpenBookQA JSONL)")


def read_mc(path: str | Path, limit: int | None = None) -> tuple[str, list[Choice]]:
    """All items of a JSONL file, which must hold one task kind."""
    p = Path(path)
    if not p.is_file():
        raise MissingPathError(f"{p}: no such file")
    kinds, items = set(), []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                kind, item = to_choice(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise TracekitError(f"{p}:{n}: {exc}") from None
            kinds.add(kind)
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
    if not items:
        raise TracekitError(f"{p}: no items")
    if len(kinds) > 1:
        raise TracekitError(f"{p}: mixes task formats {sorted(kinds)}")
    return kinds.pop(), items


@torch.no_grad()
def continuation_score(model: nn.Module, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """(Σ log p(cont | ctx), whether cont is the greedy continuation) — lm-eval's loglikelihood."""
    device = next(model.parameters(), torch.empty(0)).device  # a parameterless stand-in runs on the CPU
    ids = torch.tensor([ctx + cont], device=device)
    logp = F.log_softmax(_logits(model, ids[:, :-1])[0], dim=-1)[len(ctx) - 1 :]
    tgt = ids[0, len(ctx) :]
    return logp.gather(1, tgt[:, None]).sum().item(), bool((logp.argmax(-1) == tgt).all())


def loglik(model: nn.Module, ctx: list[int], cont: list[int]) -> float:
    """Σ log p(cont | ctx) under the model."""
    return continuation_score(model, ctx, cont)[0]


def multiple_choice(model: nn.Module, tok: Any, items: Iterable[Choice], name: str) -> list[Result]:
    """lm-eval's acc and acc_norm."""
    acc = acc_norm = n = 0
    for it in items:
        ctx = encode(tok, it.context)
        if not ctx:
            ctx = [0]
        lls, lens = [], []
        for c in it.choices:
            cont = " " + c
            lls.append(loglik(model, ctx, encode(tok, cont)))
            lens.append(len(cont.encode("utf-8")))
        acc += int(max(range(len(lls)), key=lambda i: lls[i]) == it.gold)
        acc_norm += int(max(range(len(lls)), key=lambda i: lls[i] / lens[i]) == it.gold)
        n += 1
    return [Result(name, "acc", acc / n, n), Result(name, "acc_norm", acc_norm / n, n)]


# ---- synthetic -----------------------------------------------------------------


@torch.no_grad()
def synthetic_accuracy(
    model: nn.Module, task: MQAR | SelectiveCopy, n: int = 256, seed: int = 1234, batch: int = 64
) -> list[Result]:
    """Argmax accuracy at the labelled positions, over `n` seeded examples."""
    right = total = 0
    for inputs, labels in synthetic_batches(task, n, batch, seed):
        pred = _logits(model, inputs).argmax(-1)
        m = labels != IGNORE
        right += (pred[m] == labels[m]).sum().item()
        total += m.sum().item()
    return [Result(task.name, "acc", right / total, n)]
