"""transformers' Mamba kernel entry points follow the tensors' device once tracekit has built an hf model.

With mamba-ssm installed (the CUDA machine), transformers 5.x before 5.25 calls its CUDA kernels even for CPU
tensors; tracekit routes CPU calls to the PyTorch reference that each entry point decorates. The entry points
are read from the modules' source here (every top-level function with a kernel decorator), independently of
how tracekit finds them, and each is called: a CPU call must reach the reference straight from tracekit.
"""

from __future__ import annotations

import ast
import functools
import inspect
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tracekit.collectors import backends
from tracekit.collectors.backends import follow_device, hf_class

from tests.analyzers.test_attribute_helpers import tiny_hf_model


class _Reached(Exception):
    """Raised by the tracer when the reference starts, so no kernel needs real arguments."""


def _kernel_decorated_defs(module) -> dict[str, ast.FunctionDef]:
    """`module`'s top-level functions whose decorator is one of transformers' kernel hooks (`use_kernel_*`)."""
    tree = ast.parse(inspect.getsource(module))

    def is_kernel_hook(d: ast.expr) -> bool:
        return "kernel" in ast.unparse(d.func if isinstance(d, ast.Call) else d)

    return {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and any(is_kernel_hook(d) for d in n.decorator_list)
    }


def _arguments(node: ast.FunctionDef, tensor: torch.Tensor) -> tuple[list, dict]:
    """`tensor` for every parameter of `node` that has no default."""
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    required = positional[: len(positional) - len(a.defaults)]
    kwonly = {k.arg: tensor for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None}
    return [tensor] * len(required), kwonly


def _reference_caller(module, name: str, call: Callable[[], object]) -> Path | None:
    """The file whose code called `module`'s own function `name` during `call()`; None when it never ran."""
    callers: list[Path] = []
    path = Path(inspect.getsourcefile(module)).resolve()

    def tracer(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_name == name and Path(code.co_filename).resolve() == path:
            callers.append(Path(frame.f_back.f_code.co_filename).resolve())
            raise _Reached
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    except _Reached:
        pass
    finally:
        sys.settrace(previous)
    return callers[0] if callers else None


@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_every_kernel_entry_point_follows_the_tensors_device(arch):
    module = sys.modules[hf_class(arch).__module__]
    defs = _kernel_decorated_defs(module)
    if not defs:
        pytest.skip(f"{module.__name__} declares no kernel entry points (transformers 4.x picks kernels itself)")
    ours = Path(backends.__file__).resolve()
    for name, node in defs.items():
        entry = getattr(module, name)
        args, kwargs = _arguments(node, torch.zeros(1))
        caller = _reference_caller(module, name, lambda e=entry, a=args, k=kwargs: e(*a, **k))
        assert caller == ours, f"{name} ({type(entry).__name__}): a CPU call reached its reference from {caller}"
        # Other devices keep transformers' own dispatch: its reference, or the package kernel where one is
        # installed (which may refuse meta tensors; tests below check the non-CPU path on each object type).
        args, kwargs = _arguments(node, torch.zeros(1, device="meta"))
        try:
            caller = _reference_caller(module, name, lambda e=entry, a=args, k=kwargs: e(*a, **k))
        except Exception:
            caller = None
        assert caller != ours, f"{name}: a meta-device call went to the reference"


@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_routed_models_still_pickle_and_run(arch):
    """kernels pickles its `Func` entry points by module-level name: they must stay the same objects."""
    model = tiny_hf_model(arch)
    ids = torch.randint(0, 200, (1, 8))
    copy = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, copy(ids).logits)


def _reference(x, y=None):
    return "reference"


@functools.wraps(_reference)
def _kernel(x, y=None, stream=None):
    return "kernel"


def test_follow_device_on_a_wrapping_function():
    f = follow_device(_kernel)
    assert f(torch.zeros(1), stream=1) == "reference"  # kwargs the reference lacks are dropped
    assert f(torch.zeros(1, device="meta")) == "kernel"
    assert follow_device(f) is f and follow_device(_reference) is _reference


def test_follow_device_on_a_kernels_func_module():
    """kernels turns a decorated function into a `Func` nn.Module; it is routed in place."""
    use_kernel_forward_from_hub = pytest.importorskip("kernels").use_kernel_forward_from_hub

    def reference(x, **kwargs):
        return ("reference", sorted(kwargs))

    @functools.wraps(reference)
    def kernel(x, stream=None):
        return "kernel"

    func = use_kernel_forward_from_hub("tracekit_test_kernel")(kernel)
    assert isinstance(func, torch.nn.Module)
    assert follow_device(func) is func
    assert func(torch.zeros(1), stream=1) == ("reference", ["stream"])  # a **kwargs reference gets them all
    assert func(torch.zeros(1, device="meta")) == "kernel"
