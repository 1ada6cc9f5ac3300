"""Docs that run: every `tracekit ...` command in README.md and docs/*.md exists, and the CPU ones run.

Modelled on sqlite-utils' tests/test_docs.py. Commands are taken from code blocks only (README's
4-space indented blocks and ``` fences), joined across `\\` continuations, `# comments` stripped, and
split at `&&` (so `.venv/bin/tracekit demo` in an install line counts too).

(a) `test_documented_command_exists`, one case per command: the sub-command and every `--option` it
    names (optional `[...]` parts included) exist in the click command. Cheap; GPU-only commands too.
(b) `test_documented_commands_run` (slow): each CPU-runnable command runs as written through
    `python -m tracekit.cli.main` in a scratch folder, one sub-folder per document, in document
    order (so `runs/`, `models/`, `scores.pt`, `pruned/` come from the commands that document them),
    and must exit 0. For running, optional `[...]` parts are dropped and `a|b` choices take `a`.

What is not run, and why (the list is printed; run with `-s` to see it):
- GPU-only, by rule (`gpu_reason`): `--device cuda`, `--devices`, `--backend mamba-ssm`,
  `--cuda-graphs on|both`, a `--preset` other than `tiny` (published shapes), elided arguments (`...`),
  or a trailing comment that mentions a GPU.
- `train` runs with `--steps 5 --eval-n 32` appended (click keeps the last value): the test checks
  that the documented command runs, not that it converges; the README's recipe was measured by hand
  (see docs/prune.md). `TRACEKIT_DOCS_FULL_TRAIN=1` runs the documented step counts.

Files the docs refer to but never create come from `PLACEHOLDERS` (copied from tests/data or the
README) and, for outputs of a GPU-only command that a later example reads, `STAND_INS` (the CPU-sized
equivalent, made when first needed).
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from tests.conftest import run_cli
from tracekit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DATA = ROOT / "tests" / "data"
TRACE = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"


@dataclass(frozen=True)
class DocCommand:
    doc: str  # file name relative to the repository
    line: int  # first line of the command
    text: str  # the joined command line, comment stripped
    comment: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def tokens(self) -> list[str]:
        """Arguments after `tracekit`, as documented (placeholders and `[...]` kept)."""
        return shlex.split(self.text)[1:]

    def run_argv(self) -> list[str]:
        """Arguments to run: optional `[...]` parts dropped, `a|b` choices take `a`."""
        text = self.text
        while True:
            stripped = re.sub(r"\[[^\[\]]*\]", "", text)
            if stripped == text:
                break
            text = stripped
        argv = shlex.split(text)[1:]
        return [a.split("|")[0] if re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", a) else a for a in argv]


# ---- extraction --------------------------------------------------------------


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside a ``` fence or a 4-space indented block."""
    out: list[tuple[int, str]] = []
    fenced = False
    prev_blank = True
    in_indented = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            in_indented = False
            prev_blank = False
            continue
        if fenced:
            out.append((n, line))
        elif line.startswith("    ") and (prev_blank or in_indented):
            in_indented = True
            out.append((n, line[4:]))
        elif line.strip():
            in_indented = False
        prev_blank = not line.strip()
    return out


def _split_comment(line: str) -> tuple[str, str]:
    """`cmd ... # note` → ("cmd ...", "note"); a `#` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def extract(path: Path) -> list[DocCommand]:
    lines = code_lines(path.read_text())
    cmds: list[DocCommand] = []
    i = 0
    while i < len(lines):
        start, line = lines[i]
        body, comment = _split_comment(line)
        while body.endswith("\\") and i + 1 < len(lines):
            i += 1
            more, more_comment = _split_comment(lines[i][1])
            body = body[:-1].rstrip() + " " + more.strip()
            comment = comment or more_comment
        i += 1
        for part in body.split("&&"):
            part = part.strip()
            m = re.match(r"(?:\S*/)?tracekit(\s.*)?$", part)
            if m:
                cmds.append(
                    DocCommand(path.relative_to(ROOT).as_posix(), start, "tracekit" + (m.group(1) or ""), comment)
                )
    return cmds


ALL = [c for doc in DOCS for c in extract(doc)]


def test_the_docs_have_commands() -> None:
    docs = {c.doc for c in ALL}
    assert {"README.md", "docs/prune.md", "docs/attribute.md", "docs/collect.md"} <= docs
    assert len(ALL) >= 25, [c.id for c in ALL]


# ---- (a) the documented commands and options exist --------------------------


def resolve(tokens: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command the tokens name, its path, and the remaining tokens."""
    cmd: click.Command = cli
    path: list[str] = []
    rest = list(tokens)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        assert sub is not None, f"no command `tracekit {' '.join([*path, rest[0]])}`"
        cmd, path, rest = sub, [*path, rest.pop(0)], rest
    return cmd, path, rest


def option_names(cmd: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            names.update(p.opts)
            names.update(p.secondary_opts)
    return names


@pytest.mark.parametrize("command", ALL, ids=lambda c: c.id)
def test_documented_command_exists(command: DocCommand) -> None:
    cmd, path, rest = resolve(command.tokens)
    assert path, f"{command.id}: `{command.text}` names no sub-command"
    used = {t.lstrip("[").split("=")[0].rstrip("]") for t in rest if t.lstrip("[").startswith("--")}
    missing = sorted(used - option_names(cmd))
    assert not missing, f"{command.id}: `tracekit {' '.join(path)}` has no option {', '.join(missing)}"


# ---- (b) the CPU-runnable commands run ---------------------------------------


def gpu_reason(c: DocCommand) -> str | None:
    """Why a command cannot run on a CPU-only machine (None: it can)."""
    argv = c.tokens
    opts = dict(zip(argv, [*argv[1:], ""], strict=True))
    if opts.get("--device") == "cuda":
        return "--device cuda"
    if "--devices" in argv:
        return "--devices"
    if opts.get("--backend") == "mamba-ssm":
        return "--backend mamba-ssm"
    if opts.get("--cuda-graphs") in ("on", "both"):
        return "--cuda-graphs " + opts["--cuda-graphs"]
    if "--preset" in opts and opts["--preset"] != "tiny":
        return f"--preset {opts['--preset']} (published shapes)"
    if any(t.endswith("...") for t in argv):  # `...` or a usage line's `RUN_DIR...`
        return "elided arguments (...)"
    if re.search(r"\bGPU\b", c.comment, re.IGNORECASE):
        return f"comment: {c.comment}"
    return None


GPU_ONLY = [c for c in ALL if gpu_reason(c)]


@pytest.mark.parametrize("command", GPU_ONLY, ids=lambda c: c.id)
def test_gpu_only_commands_are_listed(command: DocCommand) -> None:
    """Not run here: shown as skips (with `-ra`, the default) so nothing is left out silently."""
    pytest.skip(f"{command.id} GPU-only, not run ({gpu_reason(command)}): {command.text}")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)


def _gunzip(src: Path, dst: Path) -> None:
    dst.write_bytes(gzip.decompress(src.read_bytes()))


def _tiny_model(dst: Path) -> None:
    from tracekit.model_config import preset
    from tracekit.prune.checkpoints import build_model, save_model

    cfg = preset("mamba2", "tiny")
    save_model(build_model(cfg, 0), cfg, dst)


# name in the docs → how the test makes it, before the document's commands run
PLACEHOLDERS = {
    "run.json.gz": lambda d: _copy(TRACE, d),  # one real trace (H100, mamba2 tiny)
    "run.json": lambda d: _gunzip(TRACE, d),
    "piqa.jsonl": lambda d: _copy(DATA / "piqa_tiny.jsonl", d),
    "wiki.txt": lambda d: _copy(ROOT / "README.md", d),  # any text ≥ one 256-byte window
    "calib.txt": lambda d: _copy(ROOT / "README.md", d),
    "models/my-mamba": _tiny_model,  # "real weights, local dir": a saved tiny model
    "A": lambda d: _copy(TRACE, d),  # `tracekit diff A B`: two real traces
    "B": lambda d: _copy(DATA / "h100" / "mamba1-tiny_2layer_b2_l512_h100.json.gz", d),
}


# output of a GPU-only command that a later example reads → its CPU-sized equivalent (argv or a copy)
def _readme_run(root: Path) -> Path:
    return root / "README.md" / "runs" / "cpu-tiny"


STAND_INS: dict[str, object] = {
    "runs/h100-130m": lambda root, d: _copy(_readme_run(root), d),  # README's CPU collect
    "RUN_DIR": lambda root, d: _copy(_readme_run(root), d),
    "runs/before": lambda root, d: _copy(_readme_run(root), d),  # `diff runs/before runs/after`: two collect runs
    "runs/after": lambda root, d: _copy(_readme_run(root), d),
    "cmp": "prune compare --arch mamba2 --preset tiny --ratios 0.5 --variants physical --seqlens 64 "
    "--mode prefill --repeats 1 --phase collect --out cmp",
    "scores.pt": "prune score --arch mamba2 --preset tiny --method magnitude --out scores.pt",
}

TRAIN_CAP = ["--steps", "5", "--eval-n", "32"]


def _cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*argv, cwd=cwd, env={"TRACEKIT_DB": str(cwd / "tracekit.duckdb"), "COLUMNS": "160"}, timeout=600)


def _ensure_inputs(argv: list[str], root: Path, cwd: Path) -> None:
    """Make the placeholders and stand-ins this command reads (not what it writes: `--out`)."""
    names: set[str] = set()
    reads_out = "--phase analyze" in " ".join(argv)  # `prune compare --phase analyze` reads --out
    for prev, arg in zip(["", *argv[:-1]], argv, strict=True):
        if prev == "--out" and not reads_out:
            continue
        for piece in arg.split(","):
            names.update({piece.rstrip("/"), piece.split(":", 1)[-1].rstrip("/")})
    for name in sorted(names):
        dst = cwd / name
        if not name or dst.exists():
            continue
        head = name.split("/")[0]
        if head in ("tests", "benchmarks") and (ROOT / name.split("#")[0]).exists():  # repo files the docs name
            if not (cwd / head).is_symlink():
                (cwd / head).symlink_to(ROOT / head)
        elif name in PLACEHOLDERS:
            PLACEHOLDERS[name](dst)
        elif name in STAND_INS:
            make = STAND_INS[name]
            if isinstance(make, str):
                r = _cli(shlex.split(make), cwd)
                assert r.returncode == 0, f"stand-in for {name} failed:\n{r.stdout}\n{r.stderr}"
            else:
                make(root, dst)


@pytest.mark.slow
def test_documented_commands_run(tmp_path: Path) -> None:
    full_train = os.environ.get("TRACEKIT_DOCS_FULL_TRAIN") == "1"
    report: list[str] = []
    failures: list[str] = []
    for c in ALL:
        reason = gpu_reason(c)
        if reason:
            report.append(f"skip  {c.id:22} GPU-only ({reason}): {c.text}")
            continue
        cwd = tmp_path / c.doc
        cwd.mkdir(parents=True, exist_ok=True)
        argv = c.run_argv()
        if argv[:1] == ["train"] and not full_train:
            argv += TRAIN_CAP
        _ensure_inputs(argv, tmp_path, cwd)
        t0 = time.perf_counter()
        r = _cli(argv, cwd)
        took = time.perf_counter() - t0
        report.append(f"run   {c.id:22} {took:5.1f} s rc {r.returncode}: tracekit {shlex.join(argv)}")
        if r.returncode != 0:
            failures.append(f"{c.id}: tracekit {shlex.join(argv)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    print("\n".join(report))
    assert not failures, "\n\n".join(failures)
    assert sum(line.startswith("run") for line in report) >= 15
