"""`collectors/quiet.py`: library output goes to the log, tracekit's own to the terminal, errors still show.

The capture works on file descriptors, which pytest captures too, so each case runs in a fresh Python
(no torch: a second or less) whose stdout and stderr are pipes, like a user's shell redirecting them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tracekit.collectors.quiet import read_library_log

REPO = Path(__file__).resolve().parents[2]

PRELUDE = """
import ctypes, logging, os, sys, warnings
from pathlib import Path
from tracekit.collectors.quiet import TERMINAL_STDERR, TERMINAL_STDOUT, library_output, mark
log = Path(sys.argv[1])

def library_noise():
    os.write(2, b"native on fd 2\\n")
    os.write(1, b"native on fd 1\\n")
    ctypes.CDLL(None).printf(b"C printf, in C's buffer\\n")
    print("python print")
    print("python on sys.stderr", file=sys.stderr)
    warnings.warn("a library's FutureWarning", FutureWarning)
    logging.getLogger("somelib").warning("a library's logger")
"""


def _run(body: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    log = tmp_path / "made" / "run" / "collect.log"
    code = PRELUDE + textwrap.dedent(body)
    r = subprocess.run(
        [sys.executable, "-c", code, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        # unbuffered Python makes C's stdout unbuffered too: test with the buffering a user's shell gives
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "PYTHONPATH": str(REPO)},
    )
    return r, log


def test_library_output_goes_to_the_log_and_tracekits_to_the_terminal(tmp_path: Path) -> None:
    r, log = _run(
        """
        with library_output(log) as path:
            mark("point 1")
            library_noise()
            TERMINAL_STDOUT.write("tracekit on stdout\\n")
            TERMINAL_STDERR.write("tracekit on stderr\\n")
        print("after, stdout")
        print("after, stderr", file=sys.stderr)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "tracekit on stdout\nafter, stdout\n"
    assert r.stderr == "tracekit on stderr\nafter, stderr\n"
    text = log.read_text()
    for line in (
        "native on fd 2",
        "native on fd 1",
        "C printf, in C's buffer",
        "python print",
        "python on sys.stderr",
        "FutureWarning: a library's FutureWarning",
        "a library's logger",
        "=== tracekit: point 1 ===",
    ):
        assert line in text


def test_verbose_shows_everything_and_leaves_no_log(tmp_path: Path) -> None:
    r, log = _run(
        """
        log.parent.mkdir(parents=True)
        log.write_text("an earlier run's log\\n")
        with library_output(log, show=True) as path:
            assert path is None
            library_noise()
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "native on fd 1" in r.stdout and "python print" in r.stdout
    assert "native on fd 2" in r.stderr and "a library's logger" in r.stderr and "FutureWarning" in r.stderr
    assert not log.exists()


def test_an_unexpected_error_shows_what_the_libraries_said_before_it(tmp_path: Path) -> None:
    r, log = _run(
        """
        with library_output(log):
            mark("point 1")
            os.write(2, b"said during point 1\\n")
            mark("point 2")
            os.write(2, b"CUDA error: an illegal memory access was encountered\\n")
            raise RuntimeError("boom")
        """,
        tmp_path,
    )
    assert r.returncode == 1
    head, _, rest = r.stderr.partition("Traceback")
    assert f"what the libraries printed before the error ({log})" in head
    assert "  CUDA error: an illegal memory access was encountered" in head
    assert "said during point 1" not in head  # only the failing section
    assert "RuntimeError: boom" in rest
    assert "said during point 1" in log.read_text()  # nothing is lost


def test_expected_failures_and_ctrl_c_restore_the_terminal_without_a_dump(tmp_path: Path) -> None:
    r, log = _run(
        """
        from tracekit.errors import UsageError
        for exc in (UsageError("bad flag"), KeyboardInterrupt()):
            try:
                with library_output(log):
                    os.write(2, b"library line\\n")
                    raise exc
            except (UsageError, KeyboardInterrupt) as caught:
                print(f"caught {type(caught).__name__}", file=sys.stderr)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == "caught UsageError\ncaught KeyboardInterrupt\n"
    assert log.read_text() == "library line\n"


def test_a_log_without_library_output_is_removed_with_its_folders(tmp_path: Path) -> None:
    r, log = _run(
        """
        with library_output(log):
            mark("point 1")
            assert log.exists()
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert not log.exists() and not (tmp_path / "made").exists()


# what torch 2.13 / transformers 5.25 printed during `tracekit demo` (tracekit-demo/run/collect.log)
DEMO_LOG = """\
=== tracekit: run: build mamba1 ===
=== tracekit: run: mamba1_prefill_b2_l64 ===
[transformers] `causal_conv1d_fn` is falling back to its reference PyTorch implementation because `causal_conv1d` \
is either not installed or doesn't support the device of the inputs. This is correct but much slower.
[transformers] `selective_scan_fn` is falling back to its reference PyTorch implementation because `mamba_ssm` is \
either not installed or doesn't support the device of the inputs. This is correct but much slower.
USDT:2026-12-07 20:52:23 3813:3813 SyncActivityProfilerHandler.cpp:52] profiler_start
USDT:2026-12-07 20:52:25 3813:3813 SyncActivityProfilerHandler.cpp:59] profiler_stop
=== tracekit: run: mamba1_decode_b2_l64 ===
[transformers] `past_key_values`/`cache_params` are deprecated. Use `cache` instead.
/x/site-packages/torch/nn/modules/module.py:1789: FutureWarning: `cache_params` is deprecated and will be removed \
in version 5.40.0 for `MambaForCausalLM.forward`. Use `cache` instead.
  return forward_call(*args, **kwargs)
[W1207 20:52:44.648393964 CPUAllocator.cpp:245] Memory block of unknown size was allocated before the profiling \
started, profiler results will not include the deallocation event
STAGE:2026-12-07 20:54:11 4991:4991 SyncActivityProfilerHandler.cpp:51] Completed Stage: Warm Up
"""


def test_read_library_log_sorts_what_it_knows(tmp_path: Path) -> None:
    log = tmp_path / "collect.log"
    log.write_text(DEMO_LOG)
    said = read_library_log([log, None, tmp_path / "missing.log"])
    assert said.paths == (log,)
    assert said.lines == 9  # marks not counted; the warning's source line is
    assert said.fallbacks == ("causal_conv1d_fn", "selective_scan_fn")
    assert said.fallback_packages == ("causal_conv1d", "mamba_ssm")
    assert said.profiler == 4 and said.deprecations == 2 and said.other == ()


def test_read_library_log_keeps_what_it_does_not_know_errors_first(tmp_path: Path) -> None:
    log = tmp_path / "shard0.log"
    log.write_text(
        "some new chatter\n"
        "/x/lib.py:3: UserWarning: TF32 is off\n"
        "  warnings.warn(msg)\n"
        "ERROR:2026-12-07 20:54:11 1:1 CuptiActivityApi.cpp:300] CUPTI_ERROR_INSUFFICIENT_PRIVILEGES\n"
    )
    said = read_library_log([log])
    assert said.lines == 4
    assert said.other[0].startswith("ERROR:") and "CUPTI_ERROR_INSUFFICIENT_PRIVILEGES" in said.other[0]
    assert set(said.other[1:]) == {"some new chatter", "/x/lib.py:3: UserWarning: TF32 is off"}
