"""Engine neutrality of the lake: docs/lake.md's kernel time per component, by DuckDB and by Spark SQL.

    PYTHONPATH=. python benchmarks/lake_spark.py [--traces DIR] [--lake DIR]

Attributes every trace of DIR (default: the 18 H100 traces of benchmarks/results/h100_collect_130m) into a
lake with `tracekit attribute --lake`, then runs the documented SQL (the ```sql block of docs/lake.md that
reads kernel_components) on `tracekit.open_lake` and on Spark SQL in local mode over the same Parquet files,
prints both results and whether they are equal. Needs pyspark and a Java runtime.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documented_sql() -> str:
    blocks = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "lake.md").read_text(), re.S)
    [sql] = [b for b in blocks if "kernel_components" in b]
    return sql.strip().rstrip(";")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, default=ROOT / "benchmarks" / "results" / "h100_collect_130m")
    ap.add_argument("--lake", type=Path, help="lake folder (default: a temporary one)")
    a = ap.parse_args()
    lake = a.lake or Path(tempfile.mkdtemp(prefix="lake-spark-")) / "lake"
    traces = sorted(a.traces.glob("*.json.gz"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tracekit.cli.main", "attribute", "--lake", str(lake), "--format", "csv"]
    for t in traces:
        cmd += ["--trace", str(t)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    sql = documented_sql()
    print(f"lake: {lake} ({len(traces)} traces)\n\nSQL (docs/lake.md):\n{sql}\n")

    sys.path.insert(0, str(ROOT))
    import tracekit

    with tracekit.open_lake(lake) as lk:
        duck = sorted(lk.sql(sql).iter_rows())
    print("DuckDB (tracekit.open_lake):")
    for r in duck:
        print(f"  {r[0]:14} {r[1]:6} {r[2]:14}")

    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for table in ("events", "kernel_components"):
            df = spark.read.option("basePath", str(lake)).parquet(f"{lake}/trace_id=*/{table}.parquet")
            df.createOrReplaceTempView(table)
        got = sorted(tuple(r) for r in spark.sql(sql).collect())
        version = spark.version
    finally:
        spark.stop()
    print(f"\nSpark SQL {version} (local[2], {time.perf_counter() - t0:.1f} s with start-up):")
    for r in got:
        print(f"  {r[0]:14} {r[1]:6} {r[2]:14}")
    print(f"\nequal: {got == duck}")
    sys.exit(0 if got == duck else 1)


if __name__ == "__main__":
    main()
