#!/usr/bin/env python3
"""Tables that change: Augur's stored (Delta) tables against DuckDB's own tables, same
machine, same run, same data.

On a table of ROWS rows (id, k = id % 1000, v double, s varchar), each engine in its own
database directory runs, one statement at a time with its timer on:

    UPDATE t SET v = v + 1 WHERE id % 100 = 0            -- 1% of the rows
    DELETE FROM t WHERE id % 10 = 1                      -- 10%
    MERGE INTO t USING src ON t.id = src.id …           -- 1M source rows, half matching
    SELECT count(*), sum(v) FROM t VERSION AS OF 1       -- time travel (DuckDB: no versions;
                                                         -- it runs the same scan of t)
and, on a fresh table, INSERTS single-row INSERTs followed by a scan, with Augur's automatic
compaction on (default, 100 files), and INSERTS_UNCOMPACTED of them with it off
(--auto-compact-files 0), DuckDB doing the same counts. Answers (row counts and
sums after each step) are compared between the engines.

Usage: python3 benches/delta.py [--augur PATH] [--rows N] [--inserts N] [--inserts-uncompacted N]
Writes benches/results/delta.md. Needs: pip install duckdb.
"""
import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time

from common import augur, release_binary, run_times

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = ("CREATE TABLE t AS SELECT id, id % 1000 AS k, CAST(id AS DOUBLE) AS v, "
         "'s' || CAST(id % 97 AS VARCHAR) AS s FROM {series}")
SOURCE = ("CREATE TABLE src AS SELECT id * 2 AS id, CAST(id AS DOUBLE) AS v FROM {series}")
STEPS = [
    ("UPDATE 1%", "UPDATE t SET v = v + 1 WHERE id % 100 = 0"),
    ("DELETE 10%", "DELETE FROM t WHERE id % 10 = 1"),
    ("MERGE 1M (half match)",
     "MERGE INTO t USING src ON t.id = src.id "
     "WHEN MATCHED THEN UPDATE SET v = src.v "
     "WHEN NOT MATCHED THEN INSERT (id, k, v, s) VALUES (src.id, src.id % 1000, src.v, 'new')"),
]
CHECK = "SELECT count(*), sum(v) FROM t"


def augur_steps(binary, db, rows, merge_rows):
    series = f"generate_series(1, {rows}) AS g(id)"
    msrc = f"generate_series({rows // 4}, {rows // 4 + merge_rows - 1}) AS g(id)"
    augur(binary, SETUP.format(series=series), SOURCE.format(series=msrc), db=db)
    times, answers = {}, {}
    for name, sql in STEPS:
        out, err = augur(binary, ".timer on", sql, db=db)
        times[name] = run_times(err)[-1]
        out, _ = augur(binary, CHECK, db=db)
        answers[name] = out.strip().splitlines()[-1]
    out, err = augur(binary, ".timer on",
                     "SELECT count(*), sum(v) FROM t VERSION AS OF 1", db=db)
    times["time travel (version 1)"] = run_times(err)[-1]
    answers["time travel (version 1)"] = out.strip().splitlines()[-1]
    return times, answers


def duckdb_steps(path, rows, merge_rows):
    import duckdb
    con = duckdb.connect(path)
    con.execute("SET threads = 2")
    series = f"range(1, {rows + 1}) AS g(id)"
    msrc = f"range({rows // 4}, {rows // 4 + merge_rows}) AS g(id)"
    con.execute(SETUP.format(series=series))
    con.execute(SOURCE.format(series=msrc))
    times, answers = {}, {}
    for name, sql in STEPS:
        t0 = time.perf_counter()
        con.execute(sql)
        times[name] = time.perf_counter() - t0
        n, s = con.execute(CHECK).fetchone()
        answers[name] = f"{n},{s}"
    # DuckDB's own tables keep no versions: the nearest query is the same scan of t.
    t0 = time.perf_counter()
    con.execute("SELECT count(*), sum(v) FROM t").fetchone()
    times["time travel (version 1)"] = time.perf_counter() - t0
    con.close()
    return times, answers


def augur_inserts(binary, db, n, auto):
    flags = [] if auto else ["--auto-compact-files", "0"]
    augur(binary, "CREATE TABLE i (id BIGINT, v DOUBLE)", db=db)
    script = os.path.join(os.path.dirname(db), f"inserts-{auto}.sql")
    with open(script, "w") as f:
        for j in range(n):
            f.write(f"INSERT INTO i VALUES ({j}, {j}.5);\n")
    t0 = time.perf_counter()
    subprocess.run([binary, db, "-q", *flags, "-f", script], check=True, capture_output=True)
    insert_s = time.perf_counter() - t0
    out, err = augur(binary, ".timer on", "SELECT count(*), sum(v) FROM i", db=db)
    return insert_s, run_times(err)[-1], out.strip().splitlines()[-1]


def duckdb_inserts(path, n):
    import duckdb
    con = duckdb.connect(path)
    con.execute("CREATE TABLE i (id BIGINT, v DOUBLE)")
    t0 = time.perf_counter()
    for j in range(n):
        con.execute(f"INSERT INTO i VALUES ({j}, {j}.5)")
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_, s = con.execute("SELECT count(*), sum(v) FROM i").fetchone()
    scan_s = time.perf_counter() - t0
    con.close()
    return insert_s, scan_s, f"{n_},{s}"


def same(a, b):
    (n1, s1), (n2, s2) = a.split(","), b.split(",")
    return int(n1) == int(n2) and abs(float(s1) - float(s2)) <= 1e-9 * max(1.0, abs(float(s2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--merge-rows", type=int, default=1_000_000)
    ap.add_argument("--inserts", type=int, default=10_000)
    # Without compaction every commit re-reads one entry per file, so n inserts cost O(n²):
    # 10,000 would take hours; fewer show the trend.
    ap.add_argument("--inserts-uncompacted", type=int, default=1_000)
    args = ap.parse_args()
    import duckdb

    work = tempfile.mkdtemp(prefix="augur-delta-bench-")
    try:
        a_times, a_answers = augur_steps(args.augur, os.path.join(work, "adb"), args.rows,
                                         args.merge_rows)
        d_times, d_answers = duckdb_steps(os.path.join(work, "d.duckdb"), args.rows,
                                          args.merge_rows)
        for name, _ in STEPS:
            if not same(a_answers[name], d_answers[name]):
                raise SystemExit(f"{name}: augur {a_answers[name]} duckdb {d_answers[name]}")
        counts = {True: args.inserts, False: args.inserts_uncompacted}
        ins, dins = {}, {}
        for auto in (True, False):
            ins[auto] = augur_inserts(args.augur, os.path.join(work, f"idb{auto}"),
                                      counts[auto], auto)
            dins[auto] = duckdb_inserts(os.path.join(work, f"i{auto}.duckdb"), counts[auto])
            if not same(ins[auto][2], dins[auto][2]):
                raise SystemExit(f"inserts: augur {ins[auto][2]} duckdb {dins[auto][2]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "# Tables that change: Augur (Delta tables) against DuckDB (its own tables)",
        "",
        f"{args.rows:,}-row table; MERGE source {args.merge_rows:,} rows, half matching; "
        f"{platform.machine()}, {os.cpu_count()} cores; DuckDB {duckdb.__version__} "
        "(threads = 2). Statement times (Augur's `.timer on`, DuckDB's in-process clock); "
        "row counts and sums agree after every step.",
        "",
        "| statement | augur s | duckdb s | augur ÷ duckdb |",
        "|---|---:|---:|---:|",
    ]
    for name in [n for n, _ in STEPS] + ["time travel (version 1)"]:
        a, d = a_times[name], d_times[name]
        lines.append(f"| {name} | {a:.3f} | {d:.3f} | {a / d:.2f} |")
    lines += [
        "",
        "Single-row INSERTs (one script, one process), then a scan:",
        "",
        "| inserts | engine | inserts s | ms per insert | scan after s |",
        "|---:|---|---:|---:|---:|",
        *[f"| {counts[auto]:,} | {who} | {t[0]:.2f} | {1000 * t[0] / counts[auto]:.1f} | {t[1]:.3f} |"
          for auto in (True, False)
          for who, t in [("augur, auto-compaction (100 files)" if auto else "augur, no compaction", ins[auto]),
                         ("duckdb", dins[auto])]],
        "",
        "DuckDB's time travel row runs the plain scan: its tables keep no versions.",
    ]
    out = os.path.join(HERE, "results", "delta.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
