"""One shard of a multi-device sweep: `python -m tracekit.collectors.worker --spec F --shard I ...`.

Started by `sweep._run_sharded`, one per device, with CUDA_VISIBLE_DEVICES naming its GPU; writes
`manifest.shard{I}.json` in the run directory. Exit code 130 after Ctrl-C, 1 after an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from tracekit.collectors.spec import spec_from_json
from tracekit.collectors.sweep import run_collect


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tracekit.collectors.worker")
    ap.add_argument("--spec", required=True)
    ap.add_argument("--shard", type=int, required=True)
    ap.add_argument("--num-shards", type=int, required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--label", required=True)
    a = ap.parse_args(argv)
    spec = dataclasses.replace(spec_from_json(Path(a.spec).read_text()), device=a.device)
    try:
        run_collect(spec, shard=(a.shard, a.num_shards), device_label=a.label)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
