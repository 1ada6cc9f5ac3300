"""Peak memory bandwidth and dense 16-bit tensor FLOP rate of known GPUs (vendor spec sheets).

Dense = without 2:4 sparsity (spec sheets often print the sparse figure, twice as large). Sources:
NVIDIA H100 datasheet (SXM5: 3.35 TB/s, 989 TFLOP/s BF16; PCIe: 2.0 TB/s, 756; NVL: 3.9 TB/s, 835),
H200 datasheet (4.8 TB/s, 989), A100 datasheet (40GB SXM 1.555 TB/s, 80GB SXM 2.039 TB/s, 80GB PCIe
1.935 TB/s; 312 TFLOP/s BF16), L4 (300 GB/s, 121), L40S (864 GB/s, 362), A10 (600 GB/s, 125),
V100 SXM2 (900 GB/s, 125 FP16), RTX 4090 (1008 GB/s, 165 BF16 with FP32 accumulate).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DevicePeak:
    name: str
    bandwidth_gbps: float  # GB/s (1e9 bytes/s)
    tflops_bf16: float  # dense tensor-core TFLOP/s at 16-bit inputs


# (substring of the CUDA device name, lower case) -> peak; the first match wins, most specific first.
_PEAKS: tuple[tuple[str, DevicePeak], ...] = (
    ("h100 nvl", DevicePeak("H100 NVL", 3900, 835)),
    ("h100 pcie", DevicePeak("H100 PCIe", 2000, 756)),
    ("h100", DevicePeak("H100 SXM5", 3350, 989)),
    ("h200", DevicePeak("H200 SXM", 4800, 989)),
    ("gh200", DevicePeak("GH200", 4000, 989)),
    ("a100-sxm4-40gb", DevicePeak("A100 40GB SXM", 1555, 312)),
    ("a100-pcie-40gb", DevicePeak("A100 40GB PCIe", 1555, 312)),
    ("a100 80gb pcie", DevicePeak("A100 80GB PCIe", 1935, 312)),
    ("a100-sxm4-80gb", DevicePeak("A100 80GB SXM", 2039, 312)),
    ("a100", DevicePeak("A100 80GB SXM", 2039, 312)),
    ("l40s", DevicePeak("L40S", 864, 362)),
    ("l4", DevicePeak("L4", 300, 121)),
    ("a10", DevicePeak("A10", 600, 125)),
    ("v100", DevicePeak("V100 SXM2", 900, 125)),
    ("4090", DevicePeak("RTX 4090", 1008, 165)),
)


def device_peak(device_name: str | None) -> DevicePeak | None:
    """The peak for a CUDA device name such as 'NVIDIA H100 80GB HBM3'; None if unknown (e.g. CPU)."""
    if not device_name:
        return None
    low = device_name.lower()
    for key, peak in _PEAKS:
        if key in low:
            return peak
    return None
