"""Offline data: byte-level tokenization, text corpora, and seeded synthetic recall tasks.

Nothing here downloads anything: text comes from local files (e.g. the Python standard library's
source that ships with the interpreter), and the synthetic tasks are generated from a seed.

MQAR (multi-query associative recall, Zoology, Arora et al. 2023): a sequence of key-value pairs
`k1 v1 … kD vD` followed by queries `q1 a1 … qQ aQ` where each q is one of the keys and a its value;
the model is scored on predicting a at the position of q. Zoology also scatters the queries among
padding; we place them back to back (the recall demand — D pairs held in the state — is the same).

Selective copying (Gu & Dao 2023, §4.1.1): `n` data tokens at random positions among noise tokens,
then `n` marker tokens; at the i-th marker the model must output the i-th data token.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tracekit.errors import MissingPathError, TracekitError, UsageError

IGNORE = -100  # label value that no loss / accuracy counts


# ---- tokenization ------------------------------------------------------------


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255: no vocabulary file, nothing to download."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def tokenizer_for(model_dir: str | os.PathLike | None, vocab_size: int) -> Any:
    """The model directory's own tokenizer when it ships one locally, else bytes."""
    if model_dir is not None:
        d = Path(model_dir)
        if any((d / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(d, local_files_only=True)
    if vocab_size < ByteTokenizer.vocab_size:
        raise UsageError(f"byte-level text needs a vocabulary of at least 256 tokens, the model has {vocab_size}")
    return ByteTokenizer()


def encode(tok: Any, text: str) -> list[int]:
    if isinstance(tok, ByteTokenizer):
        return tok.encode(text)
    return list(tok.encode(text, add_special_tokens=False))


def read_corpus(path: str | os.PathLike, max_bytes: int | None = None, suffix: str = ".py") -> str:
    """A text file, or every `suffix` file under a directory (sorted, concatenated)."""
    p = Path(path)
    if p.is_file():
        data = p.read_bytes()[:max_bytes]
    elif p.is_dir():
        parts, total = [], 0
        for f in sorted(p.rglob(f"*{suffix}")):
            if "site-packages" in f.parts or not f.is_file():
                continue
            b = f.read_bytes()
            parts.append(b)
            total += len(b)
            if max_bytes is not None and total >= max_bytes:
                break
        data = b"\n".join(parts)[:max_bytes]
    else:
        raise MissingPathError(f"{p}: no such file or directory")
    if not data:
        raise TracekitError(f"{p}: empty corpus")
    return data.decode("utf-8", errors="replace")


def windows(ids: list[int] | torch.Tensor, seqlen: int, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping (n, seqlen) windows of a token stream; errors when there is not even one."""
    t = torch.as_tensor(ids, dtype=torch.long)
    n = t.numel() // seqlen
    if n == 0:
        raise TracekitError(f"text too short: {t.numel()} tokens, need at least one window of {seqlen}")
    if max_windows is not None:
        n = min(n, max_windows)
    return t[: n * seqlen].view(n, seqlen)


def random_windows(ids: torch.Tensor, seqlen: int, batch: int, g: torch.Generator) -> torch.Tensor:
    """`batch` random (seqlen+1)-token windows (inputs + next-token targets) from a token stream."""
    if ids.numel() <= seqlen + 1:
        raise TracekitError(f"corpus too short: {ids.numel()} tokens for windows of {seqlen + 1}")
    starts = torch.randint(0, ids.numel() - seqlen - 1, (batch,), generator=g)
    return torch.stack([ids[s : s + seqlen + 1] for s in starts.tolist()])


# ---- synthetic tasks ---------------------------------------------------------


@dataclass(frozen=True)
class MQAR:
    """Multi-query associative recall: keys from [1, vocab/2), values from [vocab/2, vocab)."""

    vocab: int = 256
    num_kv: int = 16
    num_queries: int = 0  # 0: ask every key once

    name = "mqar"

    def __post_init__(self) -> None:
        if self.num_queries == 0:
            object.__setattr__(self, "num_queries", self.num_kv)

    def validate(self, model_vocab: int | None = None) -> None:
        if self.num_kv < 1 or self.num_queries < 1:
            raise UsageError("mqar: num_kv and num_queries must be ≥ 1")
        if self.num_queries > self.num_kv:
            raise UsageError("mqar: num_queries cannot exceed num_kv (queries ask distinct keys)")
        if self.vocab // 2 - 1 < self.num_kv:
            raise UsageError(f"mqar: vocab {self.vocab} has too few keys for num_kv={self.num_kv}")
        if model_vocab is not None and self.vocab > model_vocab:
            raise UsageError(f"mqar: task vocab {self.vocab} exceeds the model's vocabulary {model_vocab}")

    @property
    def seqlen(self) -> int:
        return 2 * self.num_kv + 2 * self.num_queries

    def batch(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels), both (n, seqlen); labels are IGNORE except at query positions."""
        half = self.vocab // 2
        keys = torch.stack([torch.randperm(half - 1, generator=g)[: self.num_kv] + 1 for _ in range(n)])
        vals = torch.randint(half, self.vocab, (n, self.num_kv), generator=g)
        order = torch.stack([torch.randperm(self.num_kv, generator=g)[: self.num_queries] for _ in range(n)])
        qk, qv = keys.gather(1, order), vals.gather(1, order)
        ctx = torch.stack([keys, vals], dim=2).reshape(n, -1)
        qry = torch.stack([qk, qv], dim=2).reshape(n, -1)
        inputs = torch.cat([ctx, qry], dim=1)
        labels = torch.full_like(inputs, IGNORE)
        pos = 2 * self.num_kv + 2 * torch.arange(self.num_queries)
        labels[:, pos] = qv
        return inputs, labels


@dataclass(frozen=True)
class SelectiveCopy:
    """Selective copying: noise 0, marker 1, data tokens 2..vocab-1."""

    vocab: int = 16
    region: int = 64
    num_tokens: int = 8

    name = "selcopy"

    def validate(self, model_vocab: int | None = None) -> None:
        if self.vocab < 3 or not 1 <= self.num_tokens <= self.region:
            raise UsageError("selcopy: need vocab ≥ 3 and 1 ≤ num_tokens ≤ region")
        if model_vocab is not None and self.vocab > model_vocab:
            raise UsageError(f"selcopy: task vocab {self.vocab} exceeds the model's vocabulary {model_vocab}")

    @property
    def seqlen(self) -> int:
        return self.region + self.num_tokens

    def batch(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.randint(2, self.vocab, (n, self.num_tokens), generator=g)
        pos = torch.stack(
            [torch.sort(torch.randperm(self.region, generator=g)[: self.num_tokens]).values for _ in range(n)]
        )
        region = torch.zeros(n, self.region, dtype=torch.long).scatter(1, pos, data)
        inputs = torch.cat([region, torch.ones(n, self.num_tokens, dtype=torch.long)], dim=1)
        labels = torch.full_like(inputs, IGNORE)
        labels[:, self.region :] = data
        return inputs, labels


SYNTHETIC = {"mqar": MQAR, "selcopy": SelectiveCopy}


def split_tasks(text: str) -> list[str]:
    """A `--tasks` list → task specs: `ppl:a.txt,mqar:num_kv=8,vocab=128` → ["ppl:a.txt", "mqar:num_kv=8,vocab=128"].

    A comma part that is `k=v` without `kind:` continues the previous task's options.
    """
    out: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" in part and ":" not in part and out:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def parse_synthetic(spec: str, defaults: dict[str, Any] | None = None) -> MQAR | SelectiveCopy:
    """`mqar`, `mqar:num_kv=32,vocab=512`, `selcopy:region=128` (fields of the dataclasses above)."""
    name, _, rest = spec.partition(":")
    name = "selcopy" if name in ("selective-copy", "selective_copy") else name
    cls = SYNTHETIC.get(name)
    if cls is None:
        raise UsageError(f"unknown synthetic task {name!r}; choose from {', '.join(SYNTHETIC)}")
    fields = {f.name for f in dataclasses.fields(cls)}
    same = defaults is not None and defaults.get("task") == name  # a trained model's own task settings
    kw: dict[str, Any] = {k: v for k, v in defaults.items() if k in fields} if same else {}
    for item in filter(None, rest.split(",")):
        k, sep, v = item.partition("=")
        if not sep or k not in fields:
            raise UsageError(f"bad task option {item!r} for {name}; options: {', '.join(sorted(fields))}")
        try:
            kw[k] = int(v)
        except ValueError:
            raise UsageError(f"bad task option {item!r}: expected an integer") from None
    return cls(**kw)


def task_to_dict(task: MQAR | SelectiveCopy) -> dict[str, Any]:
    return {"task": task.name, **dataclasses.asdict(task)}


def synthetic_batches(
    task: MQAR | SelectiveCopy, n: int, batch: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`n` examples in batches, reproducible from `seed`."""
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        b = min(batch, n - done)
        yield task.batch(b, g)
        done += b
