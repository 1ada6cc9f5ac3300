"""`--pretrained` values that look like paths but name no directory fail at once, without the network; hub
ids fail in one line when offline or unreachable (collectors/backends.py `looks_like_path`).
Kept apart from test_collect_pretrained.py, whose autouse fixture sets HF_HUB_OFFLINE for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as _cli


@pytest.mark.slow
def test_pretrained_path_typo_is_no_such_directory(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    # a closed local port as the hub: a network attempt would show up as a connection error / retries
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    for value in ("./nope", "models/mqar-typo", "~/nope-tracekit", "a/b/c"):
        r = _cli("collect", "--pretrained", value, "--seqlens", "64", "--out", "r", cwd=tmp_path, env=env)
        assert r.returncode == 2, (value, r.stderr)
        assert one_line(r).endswith(f"--pretrained {value}: no such directory"), r.stderr
    r = _cli("prune", "eval", "--model", "./nope", "--tasks", "mqar", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "--model ./nope: no such directory" in one_line(r)


@pytest.mark.slow
def test_pretrained_hub_id_offline_or_unreachable(tmp_path: Path) -> None:
    base = {"HF_HOME": str(tmp_path / "hf")}
    r = _cli("collect", "--pretrained", "org/model", "--out", "r", cwd=tmp_path, env={**base, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "not in the local Hugging Face cache (HF_HUB_OFFLINE" in one_line(r)
    r = _cli(
        "collect",
        "--pretrained",
        "org/model",
        "--out",
        "r",
        cwd=tmp_path,
        env={**base, "HF_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert r.returncode == 2 and "hub cannot be reached" in one_line(r)


def test_looks_like_path_rule() -> None:
    from tracekit.collectors.backends import looks_like_path

    for hub in ("state-spaces/mamba-130m-hf", "gpt2", "org/name.v2", "org/name_1"):
        assert not looks_like_path(hub), hub
    for path in ("./x", "../x", "/x", "~/x", "a/b/c", "org/", "a\\b", "org/na me", "org--x/y", "a/../b"):
        assert looks_like_path(path), path
