"""`prune eval` metrics checked against models whose answers are known in advance."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tracekit.errors import TracekitError, UsageError
from tracekit.prune import evaluate
from tracekit.prune.tasks import IGNORE, MQAR, ByteTokenizer, SelectiveCopy, parse_synthetic, synthetic_batches

DATA = Path(__file__).parents[1] / "data"


class _Out:
    def __init__(self, logits: torch.Tensor):
        self.logits = logits


class FixedLM(nn.Module):
    """Logits that depend on nothing but a per-token bias: p(token) ∝ exp(bias)."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.bias = bias

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> _Out:
        return _Out(self.bias.expand(*input_ids.shape, -1).clone())


class OracleLM(nn.Module):
    """Predicts MQAR values by looking them up in the context: a perfect recall model."""

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> _Out:
        b, L = input_ids.shape
        logits = torch.zeros(b, L, 256)
        for i in range(b):
            table = {}
            for t in range(0, L - 1, 2):
                k, v = input_ids[i, t].item(), input_ids[i, t + 1].item()
                table.setdefault(k, v)
            for t in range(L):
                logits[i, t, table.get(input_ids[i, t].item(), 0)] = 1.0
        return _Out(logits)


def test_perplexity_of_uniform_model_is_vocab_size():
    ppl = evaluate.perplexity(FixedLM(torch.zeros(256)), list(range(200)) * 3, seqlen=50)
    assert math.isclose(ppl[0].value, 256.0, rel_tol=1e-5)
    assert math.isclose(ppl[1].value, 8.0, rel_tol=1e-5)
    assert ppl[0].n == 12 * 49
    with pytest.raises(TracekitError, match="too short"):
        evaluate.perplexity(FixedLM(torch.zeros(256)), [1, 2, 3], seqlen=50)


@pytest.mark.parametrize(
    ("name", "kind", "n"),
    [
        ("piqa_tiny", "piqa", 3),
        ("arc_easy_tiny", "arc", 3),
        ("hellaswag_tiny", "hellaswag", 2),
        ("openbookqa_tiny", "openbookqa", 2),
    ],
)
def test_mc_formats_parse(name, kind, n):
    got_kind, items = evaluate.read_mc(DATA / f"{name}.jsonl")
    assert got_kind == kind and len(items) == n
    for it in items:
        assert 0 <= it.gold < len(it.choices)
    if kind == "hellaswag":
        assert "[title]" not in items[0].choices[1] and items[0].context.startswith("Cooking: A man")
    if kind == "arc":
        assert items[2].gold == 2  # numeric labels "1".."3"


def test_acc_and_acc_norm_follow_lm_eval_definitions():
    """A model that loves the byte 'a': summed log-lik prefers short answers, the per-byte mean 'a'-heavy ones."""
    bias = torch.full((256,), -5.0)
    bias[ord("a")] = 5.0
    model = FixedLM(bias)
    items = [
        evaluate.Choice("Q:", ["b", "aaaaaaaaaabbb"], gold=1),  # the long one wins only per byte
        evaluate.Choice("Q:", ["a", "bbbbbbbb"], gold=0),  # wins either way
    ]
    r = {x.metric: x.value for x in evaluate.multiple_choice(model, ByteTokenizer(), items, "t")}
    assert r == {"acc": 0.5, "acc_norm": 1.0}


def test_mqar_structure_and_oracle():
    task = MQAR(vocab=64, num_kv=8)
    x, y = task.batch(4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, task.seqlen) == (4, 32)
    for i in range(4):
        ctx = dict(zip(x[i, 0:16:2].tolist(), x[i, 1:16:2].tolist(), strict=True))
        assert len(ctx) == 8 and all(1 <= k < 32 for k in ctx) and all(32 <= v < 64 for v in ctx.values())
        pos = (y[i] != IGNORE).nonzero().flatten().tolist()
        assert len(pos) == 8
        for p in pos:
            assert y[i, p].item() == ctx[x[i, p].item()] == x[i, p + 1].item()
    acc = evaluate.synthetic_accuracy(OracleLM(), task, n=16)[0]
    assert acc.value == 1.0
    assert evaluate.synthetic_accuracy(FixedLM(torch.zeros(256)), task, n=16)[0].value < 0.2


def test_selective_copy_structure():
    task = SelectiveCopy(vocab=10, region=20, num_tokens=4)
    ((x, y),) = list(synthetic_batches(task, 3, 3, seed=0))
    for i in range(3):
        data = x[i, :20][x[i, :20] != 0]
        assert data.tolist() == y[i, 20:].tolist()
        assert (x[i, 20:] == 1).all() and (y[i, :20] == IGNORE).all()


def test_synthetic_spec_parsing():
    assert parse_synthetic("mqar:num_kv=4,vocab=32") == MQAR(vocab=32, num_kv=4, num_queries=4)
    assert parse_synthetic("mqar", {"task": "mqar", "vocab": 128, "num_kv": 8}).vocab == 128
    assert parse_synthetic("selcopy", {"task": "mqar", "vocab": 128}).vocab == SelectiveCopy().vocab
    with pytest.raises(UsageError):
        parse_synthetic("mqar:bogus=1")
    with pytest.raises(UsageError):
        parse_synthetic("nope")
    with pytest.raises(UsageError):
        MQAR(vocab=16, num_kv=12).validate()


def test_local_tokenizer_is_used_when_the_model_dir_has_one(tmp_path):
    """A model directory that ships a tokenizer is evaluated with it, not with bytes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tracekit.prune.tasks import encode, tokenizer_for

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    t = tokenizer_for(tmp_path, vocab_size=3)
    assert encode(t, "hello world again") == [1, 2, 0]
    assert isinstance(tokenizer_for(None, 256), ByteTokenizer)
    with pytest.raises(UsageError, match="at least 256"):
        tokenizer_for(None, 64)
