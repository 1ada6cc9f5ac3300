"""tracekit's state-update kernel (tracekit/kernels/state_update.py) on the CPU through Triton's interpreter.

Checked against two independent things: mamba-ssm 2.3.2's own Triton kernel, loaded from the sdist in
../shared/kernels/src and run through the same interpreter (the new state must match bit for bit: same
arithmetic per element; the output to rounding, since the column blocks sum in another order), and
mamba-ssm's PyTorch `selective_state_update_ref` (the output reads the rounded state there, so low-precision
states get a tolerance). Without triton (or the sdist) the tests skip on a developer's machine and fail
under CI=true. Speed is measured on the GPU by benchmarks/state_update.py, not here.
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from tests.conftest import _missing

REPO = Path(__file__).resolve().parents[2]
SDIST = REPO.parent / "shared" / "kernels" / "src" / "mamba_ssm-2.3.2.post1.tar.gz"
KS = [1, 5, 16, 24, 37, 48, 64, 80, 96, 112, 128]  # every N of the table, odd and tiny k too


def _need(mod: str) -> None:
    if importlib.util.find_spec(mod) is None:
        _missing(f"{mod} is not installed (pip install -e '.[dev]')")


def _load(path: Path, name: str):
    """Import `path` as module `name` (triton resolves a kernel's globals through its module)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tk():
    _need("triton")
    from tracekit.kernels import state_update

    if not state_update.INTERPRET:  # tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported
        pytest.fail("TRITON_INTERPRET=1 was not set when tracekit.kernels.state_update was imported")
    return state_update


@pytest.fixture(scope="module")
def mssm(tk, tmp_path_factory):
    """mamba-ssm 2.3.2's selective_state_update.py from the sdist, unchanged but for two import lines."""
    _need("triton")
    _need("einops")
    if not SDIST.exists():
        _missing(f"{SDIST} not found (../shared beside the checkout)")
    d = tmp_path_factory.mktemp("mamba_ssm_sdist")
    base = "mamba_ssm-2.3.2.post1/mamba_ssm/ops/triton/"
    with tarfile.open(SDIST) as tar:
        src = tar.extractfile(base + "selective_state_update.py").read().decode()
        soft = tar.extractfile(base + "softplus.py").read().decode()
    (d / "mssm_softplus.py").write_text(soft)
    n = src.count("from mamba_ssm.ops.triton.softplus import softplus")
    m = src.count("with torch.cuda.device(x.device.index):")
    assert n == 1 and m == 1, "the sdist's source changed: update this loader"
    src = src.replace("from mamba_ssm.ops.triton.softplus import softplus", "from mssm_softplus import softplus")
    src = src.replace("with torch.cuda.device(x.device.index):", "if True:  # CPU tensors in the interpreter")
    (d / "mssm_ssu.py").write_text(src)
    sys.path.insert(0, str(d))
    try:
        _load(d / "mssm_softplus.py", "mssm_softplus")
        return _load(d / "mssm_ssu.py", "mssm_ssu")
    finally:
        sys.path.remove(str(d))


def _inputs(k, *, dtype=torch.float32, batch=2, nheads=4, dim=8, ngroups=1, heads=True, tie=True, seed=0):
    """Random inputs in the forms mamba-ssm's decode steps pass (Mamba-2: per-head A/dt broadcast)."""
    g = torch.Generator().manual_seed(seed + k)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    if not heads:
        state = r(batch, dim, k).to(dtype)
        return dict(
            state=state, x=r(batch, dim), dt=r(batch, dim), A=-torch.rand(dim, k, generator=g),
            B=r(batch, k), C=r(batch, k), D=r(dim), z=r(batch, dim), dt_bias=r(dim) * 0.1,
        )  # fmt: skip
    x = r(batch, nheads, dim)
    if tie:
        dt = r(batch, nheads)[..., None].expand(batch, nheads, dim)
        A = (-torch.rand(nheads, generator=g))[:, None, None].expand(nheads, dim, k)
        dt_bias = (r(nheads) * 0.1)[:, None].expand(nheads, dim)
        D = r(nheads)[:, None].expand(nheads, dim)
    else:
        dt, A, dt_bias, D = (
            r(batch, nheads, dim),
            -torch.rand(nheads, dim, k, generator=g),
            r(nheads, dim),
            r(nheads, dim),
        )
    return dict(
        state=r(batch, nheads, dim, k).to(dtype), x=x, dt=dt, A=A, B=r(batch, ngroups, k), C=r(batch, ngroups, k),
        D=D, z=r(batch, nheads, dim), dt_bias=dt_bias,
    )  # fmt: skip


def _run(fn, inp, **opts):
    """Call `fn` on a copy of the state; return (new state, output)."""
    state = inp["state"].clone()
    args = {k: v for k, v in inp.items() if k != "state"}
    for k in ("D", "z", "dt_bias"):
        if not opts.pop(f"has_{k}", True):
            args[k] = None
    out = fn(state, **args, **opts)
    return state, out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def test_column_blocks(tk):
    assert tk.column_blocks(128) == [128]
    assert tk.column_blocks(96) == [64, 32]
    assert tk.column_blocks(80) == [64, 16]
    assert tk.column_blocks(112) == [64, 32, 16]
    assert tk.column_blocks(37) == [32, 8]
    assert tk.column_blocks(1) == [8]
    for k in range(1, 257):  # cover k with no more than GRANULE - 1 padded columns
        assert 0 <= sum(tk.column_blocks(k)) - k < tk.GRANULE


@pytest.mark.parametrize("k", KS)
def test_matches_mamba_ssm_kernel_fp32(tk, mssm, k):
    """Mamba-2 decode form, every option on: the new state bit for bit, the output to fp32 rounding."""
    inp = _inputs(k, ngroups=2)
    s_tk, o_tk = _run(tk.selective_state_update, inp, dt_softplus=True)
    s_ms, o_ms = _run(mssm.selective_state_update, inp, dt_softplus=True)
    assert torch.equal(s_tk, s_ms)
    assert _rel(o_tk, o_ms) < 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("k", [24, 96, 128])
def test_matches_mamba_ssm_kernel_low_precision(tk, mssm, k, dtype):
    inp = _inputs(k, dtype=dtype)
    s_tk, o_tk = _run(tk.selective_state_update, inp, dt_softplus=True)
    s_ms, o_ms = _run(mssm.selective_state_update, inp, dt_softplus=True)
    assert torch.equal(s_tk, s_ms)  # same fp32 arithmetic, same rounding on store
    assert _rel(o_tk, o_ms) < 1e-6


OPTIONS = [
    dict(dt_softplus=False, has_D=False, has_z=False, has_dt_bias=False),
    dict(dt_softplus=True, has_D=True, has_z=False, has_dt_bias=True),
    dict(dt_softplus=True, has_D=False, has_z=True, has_dt_bias=True),
    dict(dt_softplus=False, has_D=True, has_z=True, has_dt_bias=True),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(k for k, v in o.items() if v) or "none")
@pytest.mark.parametrize("form", ["tied", "untied", "mamba1"])
def test_options_against_both_references(tk, mssm, opts, form):
    """Each option and argument form against mamba-ssm's PyTorch reference and tracekit's own."""
    k = 48
    inp = _inputs(k, tie=form == "tied", heads=form != "mamba1", ngroups=1)
    if form == "tied" and not opts["has_dt_bias"]:
        inp["dt_bias"] = torch.zeros(4, 8)[:, :1].expand(4, 8)  # mamba-ssm's tie test reads dt_bias's stride
        opts = {**opts, "has_dt_bias": True}
    s_tk, o_tk = _run(tk.selective_state_update, inp, **opts)
    s_ref, o_ref = _run(mssm.selective_state_update_ref, inp, **opts)
    s_own, o_own = _run(tk.state_update_ref, inp, **opts)
    assert _rel(s_tk, s_ref) < 1e-6 and _rel(o_tk, o_ref) < 1e-5
    assert _rel(s_tk, s_own) < 1e-6 and _rel(o_tk, o_own) < 1e-5
    if opts["has_D"] and opts["has_dt_bias"]:  # mamba-ssm's wrapper fails on D=None / dt_bias=None
        s_ms, o_ms = _run(mssm.selective_state_update, inp, **opts)
        assert torch.equal(s_tk, s_ms) and _rel(o_tk, o_ms) < 1e-6


def test_bf16_state_against_mamba_ssm_reference(tk, mssm):
    """mamba-ssm's reference reads the bf16-rounded state for the output: agreement to bf16 rounding."""
    inp = _inputs(96, dtype=torch.bfloat16)
    s_tk, o_tk = _run(tk.selective_state_update, inp, dt_softplus=True)
    s_ref, o_ref = _run(mssm.selective_state_update_ref, inp, dt_softplus=True)
    assert _rel(s_tk, s_ref) < 4e-3  # bf16 keeps 8 bits: a few ulps where exp/softplus round differently
    assert _rel(o_tk, o_ref) < 1e-2


def test_state_batch_indices_and_padding_slots(tk, mssm):
    """Rows gather their state by index; index -1 leaves every state alone and writes a zero output."""
    inp = _inputs(80, batch=3)
    inp["state"] = torch.randn(5, 4, 8, 80)
    idx = torch.tensor([4, -1, 1])
    s_tk, o_tk = _run(tk.selective_state_update, inp, dt_softplus=True, state_batch_indices=idx)
    s_ms, o_ms = _run(mssm.selective_state_update, inp, dt_softplus=True, state_batch_indices=idx)
    s_own, o_own = _run(tk.state_update_ref, inp, dt_softplus=True, state_batch_indices=idx)
    assert torch.equal(s_tk, s_ms) and _rel(o_tk, o_ms) < 1e-6
    assert _rel(s_tk, s_own) < 1e-6 and _rel(o_tk, o_own) < 1e-5
    assert torch.equal(o_tk[1], torch.zeros_like(o_tk[1]))
    untouched = [0, 2, 3]
    assert torch.equal(s_tk[untouched], inp["state"][untouched])


@pytest.mark.parametrize("config", [(16, 2, False), (32, 4, True), (64, 8, False)])
def test_every_launch_config_gives_the_same_result(tk, config):
    """Split or padded N, 1-4 row blocks per head (headdim 64): the same function."""
    inp = _inputs(112, dim=64, nheads=2)
    base = _run(tk.selective_state_update, inp, dt_softplus=True, config=(16, 4, True))
    s, o = _run(tk.selective_state_update, inp, dt_softplus=True, config=config)
    assert torch.equal(s, base[0])
    assert torch.equal(o, base[1]) if config[2] else _rel(o, base[1]) < 1e-6  # padded: one sum, other order


def test_the_comparison_can_fail(tk, mssm):
    """A wrong reference (D dropped) or an off-by-one in the column blocks is caught by the same checks."""
    inp = _inputs(96)
    s_tk, o_tk = _run(tk.selective_state_update, inp, dt_softplus=True)
    _, o_bad = _run(mssm.selective_state_update_ref, inp, dt_softplus=True, has_D=False)
    assert _rel(o_tk, o_bad) > 1e-2
    short = {**inp, "B": inp["B"].clone()}
    short["B"][..., -1] = 0  # as if the last column were not covered
    s_short, _ = _run(mssm.selective_state_update, short, dt_softplus=True)
    assert not torch.equal(s_tk, s_short)


def test_cpu_path_without_interpreter_is_the_reference(tk, monkeypatch):
    """Imported without TRITON_INTERPRET, CPU tensors go through the PyTorch reference."""
    monkeypatch.setattr(tk, "INTERPRET", False)
    inp = _inputs(40)
    s1, o1 = _run(tk.selective_state_update, inp, dt_softplus=True)
    s2, o2 = _run(tk.state_update_ref, inp, dt_softplus=True)
    assert torch.equal(s1, s2) and torch.equal(o1, o2)


def test_use_state_kernel_patches_and_restores(monkeypatch):
    import types

    from tracekit.kernels import state_update as su

    fake = types.ModuleType("mamba_ssm.modules.mamba2")
    orig = object()
    fake.selective_state_update = orig
    monkeypatch.setitem(sys.modules, "mamba_ssm.modules.mamba2", fake)
    with su.use_state_kernel("tracekit") as patched:
        assert "mamba_ssm.modules.mamba2" in patched
        assert fake.selective_state_update is su.selective_state_update
    assert fake.selective_state_update is orig
    with su.use_state_kernel("mamba-ssm") as patched:
        assert patched == [] and fake.selective_state_update is orig
    with pytest.raises(ValueError, match="choose from"), su.use_state_kernel("cuda"):
        pass
