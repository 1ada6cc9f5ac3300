"""Plain `torch.profiler` GPU traces, attributed with no flags, within 2 points of the scoped reference (issue #19).

The fixtures in tests/data/gpu_plain/ were recorded on the GPU machine by benchmarks/plain_profile_matrix.py (no
tracekit code in the recording process; 130m widths, 6 layers, random weights). Each one's reference shares come
from `tracekit collect` of the same point on the same GPU (scopes: layer.{i}, component.*), attributed through those
scopes; `reference.json` keeps them with the machine, and benchmarks/results/structure_matrix_gpu.md has the whole
matrix. Nothing in the plain trace tells tracekit the model, the layers or the components: they come from the
kernel stream's own structure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tracekit.analyzers.components import COMPONENTS

import tracekit

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu_plain"
REFERENCE = json.loads((DATA / "reference.json").read_text())


def in_layer_shares(report: dict) -> dict[str, float]:
    """Each component's share (%) of the kernel time inside the layers."""
    got = dict.fromkeys(COMPONENTS, 0)
    for row in report["components"]:
        if row["layer"] is not None:
            got[row["component"]] += row["gpu_time_ns"]
    total = sum(got.values())
    assert total > 0, "no kernel was placed in a layer"
    return {c: 100 * got[c] / total for c in COMPONENTS}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_plain_gpu_trace_within_two_points_of_the_scoped_reference(name, tmp_path):
    ref = REFERENCE[name]
    report = tracekit.open(tmp_path / "t.duckdb").attribute(DATA / name, by="layer").to_dict()
    assert report["time_source"] == "gpu" and report["mamba_found"]
    got = in_layer_shares(report)
    err = {c: abs(got[c] - ref["shares_ref"][c]) for c in COMPONENTS}
    assert max(err.values()) <= 2.0, (ref["gpu"], {c: (round(ref["shares_ref"][c], 2), round(got[c], 2)) for c in err})


# On HF's unfused path the repeated block is found from in_proj to the next block's norm: the first block's norm and
# the last block (followed by norm_f, not a block norm) fall outside, so 5 of 6 layers are found. The same lost block
# keeps HF decode steps from being split into layers (benchmarks/results/structure_matrix_gpu.md, "Gaps").
FIRST_LAYER_GAP = pytest.mark.xfail(strict=True, reason="HF: the layer template starts at in_proj; edge blocks lost")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=FIRST_LAYER_GAP) if n.startswith("hf_") else n for n in sorted(REFERENCE)]
)
def test_plain_gpu_trace_every_layer_found(name, tmp_path):
    report = tracekit.open(tmp_path / "t.duckdb").attribute(DATA / name, by="layer").to_dict()
    layers = {row["layer"] for row in report["components"] if row["layer"] is not None}
    assert layers == set(range(REFERENCE[name]["n_layer"])), layers
