"""lm-eval's harness, through the "tracekit" model, scores a local PIQA-format task exactly as `prune eval`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval not installed (pip install 'tracekit[lmeval]')")

from tracekit.model_config import preset  # noqa: E402
from tracekit.prune.checkpoints import build_model, save_model  # noqa: E402
from tracekit.prune.evaluate import encode, loglik, multiple_choice, read_mc  # noqa: E402
from tracekit.prune.tasks import tokenizer_for  # noqa: E402

PIQA = Path(__file__).parents[1] / "data" / "piqa_tiny.jsonl"
TASK = """task: tk_piqa_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data}
validation_split: validation
output_type: multiple_choice
doc_to_text: "Question: {{{{goal}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{{{[sol1, sol2]}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""


@pytest.mark.slow
def test_harness_loglikelihoods_equal_prune_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from lm_eval.tasks import TaskManager

    from tracekit.prune.lm_eval_adapter import TracekitLM

    cfg = preset("mamba2", "tiny")
    model_dir = tmp_path / "model"
    save_model(build_model(cfg, seed=3), cfg, model_dir)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tk_piqa_tiny.yaml").write_text(TASK.format(data=PIQA))
    lm = TracekitLM(str(model_dir))
    res = lm_eval.simple_evaluate(
        model=lm, tasks=["tk_piqa_tiny"], task_manager=TaskManager(include_path=str(tasks)), log_samples=True
    )
    # the same items scored by tracekit's own evaluator
    model_ref = build_model(cfg, seed=3)
    tok = tokenizer_for(model_dir, cfg.vocab_size)
    _, items = read_mc(PIQA)
    samples = sorted(res["samples"]["tk_piqa_tiny"], key=lambda s: s["doc_id"])
    assert len(samples) == len(items) == 3
    for s, it in zip(samples, items, strict=True):
        harness = [r[0][0] for r in s["resps"]]
        ours = [loglik(model_ref, encode(tok, it.context), encode(tok, " " + c)) for c in it.choices]
        assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5) for a, b in zip(harness, ours, strict=True))
    acc = res["results"]["tk_piqa_tiny"]["acc,none"]
    ours_acc = next(r.value for r in multiple_choice(model_ref, tok, items, "piqa") if r.metric == "acc")
    assert acc == pytest.approx(ours_acc)
    assert os.path.isdir(model_dir) and json.loads((model_dir / "config.json").read_text())
