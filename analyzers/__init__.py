"""tracekit.analyzers: functions from a trace database (DuckDB connection) to polars frames / JSON.

Attribution (`tracekit attribute`, docs/attribute.md): components.py + rules/components.toml (the rules),
gemm_shapes.py and config_inference.py (shapes -> roles and configs), attribution.py (one component per
kernel), layers.py (layer order without scopes), flops.py / io_bytes.py / devices.py (analytic quantities
and roofline peaks), breakdown.py (per-component time, FLOPs, memory, I/O: the JSON document),
report_types.py (AttributeReport — the attribution document, typed —, RunAttribution and their enums),
hta_check.py (HTA cross-check). Collect manifests and compare results are read through tracekit/artifacts/.
The ingest → attribute loop over traces and runs is tracekit/pipeline.py.
"""
