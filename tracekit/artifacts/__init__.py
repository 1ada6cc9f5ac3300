"""tracekit's artifacts — the files one command writes and another reads — each as one typed class with
`from_json`/`to_json` in one module (standard library only: collectors run on GPU machines without
duckdb/polars):

* `manifest.py`: a collect run's `manifest.json` (`Manifest`, `ManifestPoint`), what a point says about
  its trace (`RunContext`, `RunTrace`) and how a trace finds its run.
* `compare.py`: `prune compare`'s `compare.json` (`CompareResult`) and how its rows are named.

The third, the attribution document of `tracekit attribute --format json`, is `AttributeReport` in
analyzers/report_types.py (it is built there, from DuckDB). Nothing else parses these files.
"""
