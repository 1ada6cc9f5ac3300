"""`prune compare`'s result, compare.json: the run's context and one row per measured point (Table 2).

tracekit/prune/compare.py builds and writes it; `tracekit diff DIR#LABEL`, `tracekit report` and the
renderers (reports/compare.py) read it through `CompareResult`. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tracekit.errors import UsageError

COMPARE = "compare.json"
PLAN = "compare_plan.json"  # what the collect phase ran (variants, model, backend), for the analyze phase


@dataclasses.dataclass(frozen=True)
class CompareResult:
    """All measured points plus the run's context; `rows` is the stable machine format (docs/prune.md)."""

    arch: str
    model: dict[str, Any]
    method: str
    backend: str
    device: str
    dtype: str
    batch: int
    rows: list[dict[str, Any]]
    out: str
    # `tracekit diff` of each variant row against its dense row (component rows of docs/diff.md); absent in
    # results written before it existed, whose compare.md then re-renders unchanged.
    component_diff: list[dict[str, Any]] | None = None
    # the decode state update the mamba-ssm backend ran (`--state-kernel`); None in results from before it
    state_kernel: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CompareResult:
        return cls(**doc)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, path: str | Path) -> CompareResult:
        """compare.json, or the compare.json of a folder; UsageError (one line) when it is not one."""
        path = Path(path)
        if path.is_dir():
            path = path / COMPARE
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"{path}: not a prune-compare result ({exc})") from None

    def write(self, out_dir: Path) -> Path:
        path = out_dir / COMPARE
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    def labelled(self, label: str) -> list[dict[str, Any]]:
        """The rows of one variant run (`dense` or `VARIANT_rRATIO`)."""
        return [r for r in self.rows if compare_label(r) == label]

    @property
    def labels(self) -> list[str]:
        return sorted({compare_label(r) for r in self.rows})


def compare_label(row: dict[str, Any]) -> str:
    """`dense`, or `VARIANT_rRATIO` (the run folder `prune compare` writes): how a compare row is named."""
    return "dense" if row["variant"] == "dense" else f"{row['variant']}_r{row['ratio']:g}"


def is_compare_dir(path: Path) -> bool:
    return (path / COMPARE).is_file()


def write_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """compare_plan.json: the arch, model, method, backend, device, dtype, batch, state kernel and variants
    (label, variant, ratio, d_state, k) the collect phase ran."""
    (out_dir / PLAN).write_text(json.dumps(plan, indent=2) + "\n")


def read_plan(out_dir: Path) -> dict[str, Any]:
    """compare_plan.json of a collect-phase `prune compare` folder; UsageError when it is not one."""
    try:
        return json.loads((out_dir / PLAN).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out_dir / PLAN}: not a compare run ({exc})") from None
