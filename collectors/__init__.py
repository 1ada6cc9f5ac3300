"""tracekit.collectors: run Mamba-1/2 and record Kineto traces plus a manifest.

Runs on the GPU machine, so this package imports only torch, mamba-ssm/causal-conv1d, transformers,
click, rich and the standard library — never duckdb or polars.
"""
