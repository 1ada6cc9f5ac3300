"""Infer which Mamba config a trace ran from its recorded shapes (flags -> config: tracekit.model_config).

Inference exists because most traces in the wild come without a manifest. It only reads shapes that
were recorded (GEMM weights, the depthwise conv weight) and returns None rather than guess: a wrong
config would silently give wrong FLOPs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tracekit.analyzers.gemm_shapes import Gemm

from tracekit.model_config import ModelConfig


def infer_config(gemms: Iterable[Gemm], weight_dims: Iterable[Sequence[int]]) -> ModelConfig | None:
    """Infer a Mamba config from GEMM weight shapes (+ the conv weight for Mamba-2); None if unsure.

    The in_proj/out_proj pair is the pair of weights (d_model -> X) and (d_inner -> d_model) with equal
    counts (one each per layer call) and the most calls. Mamba-1 needs x_proj (d_inner -> R + 2N) and
    dt_proj (R -> d_inner); Mamba-2 needs the depthwise conv weight (conv_dim, [1,] d_conv) to split
    X = 2·d_inner + 2·ngroups·N + nheads (ngroups = 1 is assumed; say so in the docs).
    """
    gemm_list = [g for g in gemms if g.weights]
    # The token dimension (batch·seqlen) is the outer dim most GEMMs share; a reading whose out_features
    # is that dim reads the activation as the weight: drop it when the GEMM has another reading.
    outer: Counter[int] = Counter()
    for g in gemm_list:
        outer.update({g.m, g.n})
    tokens = outer.most_common(1)[0][0] if outer else None
    counts: Counter[tuple[int, int]] = Counter()
    for g in gemm_list:
        readings = set(g.weights)
        kept = {r for r in readings if r[1] != tokens} or readings
        for pair in kept:
            counts[pair] += 1
    best: tuple[int, int, int, int] | None = None  # (calls, d_model, d_inner, X)
    for (k_in, k_out), c_in in counts.items():
        for (o_in, o_out), c_out in counts.items():
            if o_out != k_in or c_out != c_in or o_in == k_in:
                continue
            d_model, d_inner, x = k_in, o_in, k_out
            if x < 2 * d_inner or d_inner < d_model:
                continue
            if best is None or c_in > best[0]:
                best = (c_in, d_model, d_inner, x)
    if best is None:
        return None
    calls, d_model, d_inner, x = best
    if d_inner % d_model:
        return None
    expand = d_inner // d_model
    vocab = max((o for (i, o), _ in counts.items() if i == d_model and o >= 8 * d_model), default=None)
    lm_calls = counts.get((d_model, vocab), 0) if vocab else 0
    n_layer = calls // lm_calls if lm_calls and calls % lm_calls == 0 else calls
    common = dict(
        d_model=d_model, n_layer=max(n_layer, 1), expand=expand, vocab_size=vocab or 0, pad_vocab_size_multiple=1
    )
    if x == 2 * d_inner:
        # Mamba-1: x_proj (d_inner -> R + 2N), dt_proj (R -> d_inner), both once per layer call
        for (i, o), c in counts.items():
            if i != d_inner or c != calls or o == d_model:
                continue
            for (ri, ro), rc in counts.items():
                if ro == d_inner and rc == calls and ri < o and (o - ri) % 2 == 0 and ri != d_model:
                    d_state = (o - ri) // 2
                    return _checked(ModelConfig("mamba1", d_state=d_state, dt_rank=ri, **common), vocab)
        return None
    # Mamba-2: the conv weight gives conv_dim = d_inner + 2·ngroups·N
    conv_dims = Counter(
        (d[0], d[-1])
        for d in weight_dims
        if len(d) in (2, 3) and (len(d) == 2 or d[1] == 1) and 1 < d[-1] <= 8 and d_inner < d[0] < x
    )
    for (conv_dim, d_conv), _ in conv_dims.most_common():
        if (conv_dim - d_inner) % 2:
            continue
        d_state = (conv_dim - d_inner) // 2  # ngroups = 1
        nheads = x - 2 * d_inner - 2 * d_state
        if nheads <= 0 or d_inner % nheads:
            continue
        cfg = ModelConfig("mamba2", d_state=d_state, d_conv=d_conv, headdim=d_inner // nheads, ngroups=1, **common)
        return _checked(cfg, vocab)
    return None


def _checked(cfg: ModelConfig, vocab: int | None) -> ModelConfig | None:
    if not vocab:
        cfg = cfg.replace(vocab_size=1)  # bare mixers: no embedding/lm_head in the trace
    try:
        cfg.validate()
    except ValueError:
        return None
    return cfg
