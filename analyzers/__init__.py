"""tracekit.analyzers: functions from a trace database (DuckDB connection) to polars frames / JSON.

Attribution (`tracekit attribute`, docs/attribute.md): components.py + rules/components.toml (the rules),
gemm_shapes.py and model_config.py (shapes -> roles and configs), attribution.py (one component per
kernel), layers.py (layer order without scopes), flops.py / io_bytes.py / devices.py (analytic quantities
and roofline peaks), summary.py (the JSON document), hta_check.py (HTA cross-check), run_manifest.py and
attribute_run.py (collect runs, ingest + attribute).
"""
