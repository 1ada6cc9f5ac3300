"""The one colour palette of tracekit's figures and report page: a colour per component, per claim verdict.

Every plot (attribute shares, memory over time, the report's scaling, roofline and pruning figures) and the
report page read it here, so a component looks the same wherever it is drawn.
"""

from __future__ import annotations

COMPONENT_COLORS = {
    "rmsnorm": "#8c8c8c",
    "gated_mlp": "#4c72b0",
    "conv": "#dd8452",
    "ssm": "#c44e52",
    "final_linear": "#55a868",
    "other": "#b0b0b0",
}
NOT_A_COMPONENT = "#e5e5e5"  # what is drawn beside the components (memory allocated before the trace)
VERDICT_COLORS = {"holds": "#1a7f37", "does not hold": "#cf222e", "not measured here": "#6e7781"}
