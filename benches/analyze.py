#!/usr/bin/env python3
"""ANALYZE on TPC-H CSV files: what it costs, and what it buys the join order, against DuckDB
on the same files in the same run.

CSV scans report no statistics, so before ANALYZE Augur's join-order search has no row counts
and joins run as written. The bench times (1) `ANALYZE` of all eight tables against DuckDB
computing the same statistics (row count; per column non-NULL count,
`approx_count_distinct`, min, max) over the same files, and (2) TPC-H's many-join queries over
external CSV tables before and after `ANALYZE`, with DuckDB over `read_csv` views of the
same files. Answers are checked against DuckDB's every run.

Usage: python3 benches/analyze.py [--augur PATH] [--sf 1] [--repeat 3] [--queries 5,7,8,9,10]
Writes benches/results/analyze.md. Needs: pip install duckdb tpchgen-cli.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import release_binary, run_times  # noqa: E402
from tpch import QUERIES, TABLES, agree, augur_query, generate  # noqa: E402


def duckdb_statistics(con, data):
    """Seconds for DuckDB to compute what ANALYZE stores, table by table."""
    t0 = time.perf_counter()
    for t in TABLES:
        columns = [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
        parts = ["count(*)"]
        for c in columns:
            parts += [f"count({c})", f"approx_count_distinct({c})", f"min({c})", f"max({c})"]
        con.execute(f"SELECT {', '.join(parts)} FROM {t}").fetchall()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--sf", type=float, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", default="5,7,8,9,10")
    args = ap.parse_args()
    import duckdb

    data = generate(args.sf, "csv")
    work = tempfile.mkdtemp(prefix="augur-analyze-bench-")
    try:
        db = os.path.join(work, "db")
        setup = [f"CREATE EXTERNAL TABLE {t} STORED AS CSV LOCATION '{data}/{t}.csv' "
                 "OPTIONS ('format.has_header' 'true');" for t in TABLES]
        subprocess.run([args.augur, db, "-q"] + sum((["-c", s] for s in setup), []),
                       check=True)
        con = duckdb.connect()
        con.execute("SET threads = 2")
        for t in TABLES:
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_csv('{data}/{t}.csv')")

        queries = [int(q) for q in args.queries.split(",")]
        texts = {q: open(os.path.join(QUERIES, f"q{q}.sql")).read() for q in queries}
        rows = {}

        def timed(label, q, runner):
            answer, times = runner()
            expected = rows.setdefault(q, None)
            if expected is not None:
                wrong = agree(answer, expected)
                if wrong:
                    raise SystemExit(f"Q{q} {label}: {wrong}")
            return statistics.median(times)

        before, after, duck = {}, {}, {}
        for q in queries:
            answer, times = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                answer = con.execute(texts[q]).fetchall()
                times.append(time.perf_counter() - t0)
            rows[q] = answer
            duck[q] = statistics.median(times)
            before[q] = timed("before ANALYZE", q,
                              lambda: augur_query(args.augur, (db, []), texts[q], args.repeat))
            print(f"Q{q}: duckdb {duck[q]:.2f} s, augur before ANALYZE {before[q]:.2f} s",
                  flush=True)

        analyze_times = []
        for _ in range(args.repeat):
            out = subprocess.run([args.augur, db, "-q", "-c", ".timer on", "-c", "ANALYZE"],
                                 check=True, capture_output=True, text=True)
            analyze_times.append(run_times(out.stderr)[0])
        ours_analyze = statistics.median(analyze_times)
        theirs_analyze = statistics.median(duckdb_statistics(con, data) for _ in range(args.repeat))
        print(f"ANALYZE: augur {ours_analyze:.2f} s, duckdb {theirs_analyze:.2f} s", flush=True)

        for q in queries:
            after[q] = timed("after ANALYZE", q,
                             lambda: augur_query(args.augur, (db, []), texts[q], args.repeat))
            print(f"Q{q}: augur after ANALYZE {after[q]:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    version = subprocess.run([args.augur, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# ANALYZE on CSV tables: Augur vs DuckDB",
        "",
        f"{version} (release build) vs DuckDB {duckdb.__version__} (threads = 2); TPC-H "
        f"SF{args.sf:g} as CSV (tpchgen-cli), external tables / `read_csv` views; "
        f"{platform.machine()}, {os.cpu_count()} cores; median of {args.repeat} runs, query "
        "time inside one process; every answer checked against DuckDB's.",
        "",
        "| step | augur s | duckdb s | augur ÷ duckdb |",
        "|---|---:|---:|---:|",
        f"| statistics of all 8 tables (`ANALYZE`; DuckDB: the same aggregates) | "
        f"{ours_analyze:.2f} | {theirs_analyze:.2f} | {ours_analyze / theirs_analyze:.2f} |",
        "",
        "| query | augur before `ANALYZE` s | augur after s | after ÷ before | duckdb s | "
        "after ÷ duckdb |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for q in queries:
        lines.append(f"| Q{q} | {before[q]:.2f} | {after[q]:.2f} | {after[q] / before[q]:.2f} | "
                     f"{duck[q]:.2f} | {after[q] / duck[q]:.2f} |")
    text = "\n".join(lines + [""])
    print(text)
    with open(os.path.join(HERE, "results", "analyze.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
