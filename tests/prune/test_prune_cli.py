"""`tracekit prune score|apply|eval` and `tracekit train` end to end on tiny models, plus their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import one_line
from tests.conftest import run_cli as _cli
from tracekit.cli.main import main
from tracekit.prune.checkpoints import PRUNE_META, TASK_META, load_model

DATA = Path(__file__).parents[1] / "data"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune")
    scores = d / "s.pt"
    main(
        [
            "prune",
            "score",
            "--arch",
            "mamba2",
            "--preset",
            "tiny",
            "--data",
            str(DATA / "calib_tiny.txt"),
            "--method",
            "energy",
            "--seqlen",
            "64",
            "--samples",
            "4",
            "--out",
            str(scores),
        ]
    )
    return d, scores


def test_score_writes_scores_and_heatmap(scored):
    d, scores = scored
    assert scores.is_file() and (d / "s.png").stat().st_size > 1000
    payload = torch.load(scores, weights_only=True)
    assert payload["method"] == "energy" and tuple(payload["scores"].shape) == (2, 1, 16)


def test_apply_masked_and_physical_load_and_agree(scored, capsys):
    d, scores = scored
    outs = {}
    for variant in ("masked", "physical"):
        code, out, err = run(
            capsys,
            "prune",
            "apply",
            "--scores",
            str(scores),
            "--ratio",
            "0.3",
            "--variant",
            variant,
            "--out",
            str(d / variant),
        )
        assert code == 0, err
        assert "rounded up from 11 to 12" in out  # conv channels 128 + 2·k must be a multiple of 8
        outs[variant] = load_model(d / variant)
    assert outs["masked"][1].d_state == 16 and outs["physical"][1].d_state == 12
    meta = json.loads((d / "physical" / PRUNE_META).read_text())
    assert meta["k"] == 12 and meta["method"] == "energy" and len(meta["keep"][0][0]) == 12
    ids = torch.randint(0, 256, (1, 50))
    with torch.no_grad():
        a = outs["masked"][0](input_ids=ids, use_cache=False).logits
        b = outs["physical"][0](input_ids=ids, use_cache=False).logits
    assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5


@pytest.mark.slow
def test_eval_json(scored, capsys):
    d, _ = scored
    if not (d / "physical").exists():
        pytest.skip("needs test_apply_masked_and_physical_load_and_agree")
    code, out, err = run(
        capsys,
        "prune",
        "eval",
        "--model",
        str(d / "physical"),
        "--format",
        "json",
        "--tasks",
        f"ppl:{DATA / 'calib_tiny.txt'},mc:{DATA / 'piqa_tiny.jsonl'},mqar:num_kv=4,vocab=64",
        "--seqlen",
        "64",
        "--n",
        "16",
    )
    assert code == 0, err
    res = json.loads(out)["results"]
    assert {(r["task"].split(":")[0], r["metric"]) for r in res} >= {
        ("ppl", "ppl"),
        ("piqa", "acc"),
        ("piqa", "acc_norm"),
        ("mqar", "acc"),
    }


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (
            ["prune", "apply", "--scores", "{d}/s.pt", "--ratio", "1.0", "--variant", "masked", "--out", "{d}/x"],
            "ratio must be in [0, 1)",
        ),
        (
            ["prune", "apply", "--scores", "{d}/junk.pt", "--ratio", "0.5", "--variant", "masked", "--out", "{d}/x"],
            "not a readable scores file",
        ),
        (
            [
                "prune",
                "apply",
                "--scores",
                "{d}/s.pt",
                "--ratio",
                "0.5",
                "--variant",
                "masked",
                "--out",
                "{d}/y",
                "--pretrained",
                "{d}/m1",
            ],
            "scores were computed for a different model shape",
        ),
        (["prune", "score", "--arch", "mamba2", "--data", "{d}/short.txt", "--out", "{d}/z.pt"], "too short"),
        (["prune", "score", "--arch", "mamba2", "--out", "{d}/z.pt"], "needs --data"),
        (["prune", "eval", "--arch", "mamba2", "--tasks", "bogus"], "unknown task"),
        (["train", "--arch", "mamba2", "--task", "mqar:num_kv=200", "--out", "{d}/t"], "too few keys"),
    ],
)
def test_bad_input_is_one_line(scored, capsys, argv, msg):
    d, _ = scored
    (d / "junk.pt").write_bytes(b"\x00garbage")
    (d / "short.txt").write_text("tiny")
    if not (d / "m1").exists():
        from tracekit.model_config import preset
        from tracekit.prune.checkpoints import build_model, save_model

        save_model(build_model(preset("mamba1", "tiny")), preset("mamba1", "tiny"), d / "m1")
    code, _, err = run(capsys, *[a.format(d=d) for a in argv])
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("tracekit: error")]
    assert len(lines) == 1 and msg in lines[0], err
    assert "Traceback" not in err
    assert not (d / "x").exists() and not (d / "y").exists()


def test_apply_failure_leaves_no_directory(scored, monkeypatch):
    from tracekit.errors import TracekitError
    from tracekit.prune import steps

    d, scores = scored

    def boom(*a, **k):
        raise TracekitError("disk full")

    monkeypatch.setattr("tracekit.prune.checkpoints.json.dumps", boom)
    with pytest.raises(TracekitError):
        steps.apply_file(str(scores), 0.5, "physical", str(d / "half"))
    assert not (d / "half").exists()
    assert not [p for p in d.iterdir() if p.name.startswith(".half")]


@pytest.mark.slow
def test_train_mqar_tiny(tmp_path, capsys):
    out = tmp_path / "m"
    code, stdout, err = run(
        capsys,
        "train",
        "--arch",
        "mamba2",
        "--task",
        "mqar:num_kv=4,vocab=64",
        "--steps",
        "30",
        "--batch",
        "16",
        "--out",
        str(out),
        "--eval-n",
        "32",
        "--format",
        "json",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    meta = json.loads((out / TASK_META).read_text())
    hist = meta["train"]["history"]
    assert meta["task"] == "mqar" and meta["num_kv"] == 4 and summary["eval"][0]["metric"] == "acc"
    assert hist[-1]["loss"] < hist[0]["loss"], "30 steps must lower the loss"
    _model, cfg = load_model(out)
    assert cfg.arch == "mamba2"
    # the trained model's task settings are the defaults for scoring and eval
    code, stdout, err = run(
        capsys, "prune", "eval", "--model", str(out), "--tasks", "mqar", "--n", "8", "--format", "json"
    )
    assert code == 0, err


@pytest.mark.slow
def test_train_bytes_tiny(tmp_path, capsys):
    out = tmp_path / "b"
    code, stdout, err = run(
        capsys,
        "train",
        "--arch",
        "mamba1",
        "--task",
        f"bytes:{DATA / 'calib_tiny.txt'}",
        "--steps",
        "5",
        "--batch",
        "4",
        "--seqlen",
        "32",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(stdout)["eval"][0]["metric"] == "ppl"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_train_device_cuda_without_gpu_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(
        capsys, "train", "--arch", "mamba2", "--task", "mqar:num_kv=4,vocab=64", "--steps", "2", "--device", "cuda",
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert code != 0 and "no CUDA device" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_apply_mamba_ssm_layout_round_trips(scored, capsys):
    """--save-format mamba-ssm writes mamba-ssm's config.json + pytorch_model.bin; loading it back gives
    the same logits as the transformers-format directory."""
    d, scores = scored
    dirs = {}
    for fmt in ("hf", "mamba-ssm"):
        dirs[fmt] = d / f"fmt_{fmt}"
        code, _, err = run(
            capsys,
            "prune",
            "apply",
            "--scores",
            str(scores),
            "--ratio",
            "0.5",
            "--variant",
            "physical",
            "--save-format",
            fmt,
            "--out",
            str(dirs[fmt]),
        )
        assert code == 0, err
    saved = json.loads((dirs["mamba-ssm"] / "config.json").read_text())
    assert saved["ssm_cfg"]["layer"] == "Mamba2" and saved["ssm_cfg"]["d_state"] == 8
    state = torch.load(dirs["mamba-ssm"] / "pytorch_model.bin", weights_only=True)
    assert "backbone.embedding.weight" in state and "lm_head.weight" in state
    ids = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        a = load_model(dirs["hf"])[0](input_ids=ids, use_cache=False).logits
        b = load_model(dirs["mamba-ssm"])[0](input_ids=ids, use_cache=False).logits
    assert torch.equal(a, b)


@pytest.mark.slow
def test_prune_eval_checks_tasks_before_loading(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()  # no config.json: loading it would fail with "not a model directory" -- it must not get there
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    cases = [
        ("mqar,mc:nope.jsonl", 2, "--tasks mc:nope.jsonl: no such file"),
        ("mqar,ppl:nope.txt", 2, "--tasks ppl:nope.txt: no such file"),
        ("mqar,foo", 2, "unknown task 'foo'"),
        ("mqar:bogus=1", 2, "bad task option"),
        (f"mqar,mc:{bad}", 1, "bad.jsonl:1: unrecognised fields"),
    ]
    for tasks, code, msg in cases:
        r = _cli("prune", "eval", "--model", str(model), "--tasks", tasks, cwd=tmp_path)
        assert r.returncode == code, (tasks, r.stderr)
        line = one_line(r)
        assert msg in line and "not a model directory" not in line, (tasks, line)
    r = _cli("prune", "eval", "--model", str(model), "--tasks", "mqar", "--out", "/missing/r.json", cwd=tmp_path)
    assert r.returncode == 2 and "no such directory" in one_line(r)
