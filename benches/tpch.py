#!/usr/bin/env python3
"""TPC-H on Augur and DuckDB, same Parquet files, same run, answers checked against each other.

  * Data: tpchgen-cli (pip install tpchgen-cli) writes one Parquet file per table, generated
    once and cached in ~/.cache/augur-bench/tpch-sf<SF>/.
  * Augur: one release-build process per query; the tables are external tables over the files
    (created before timing starts); the query runs --repeat times and the time of each run is
    what `.timer` reports. DuckDB: one connection, views over the same files, the same query
    text --repeat times, timed around execute + fetchall. Median per query.
  * Answers: every query's rows must agree (sorted; numbers within 1e-6 relative, since the
    engines sum decimals and floats in different orders). The queries in tpch/rewrites/ (shapes
    Augur's optimizer rules rewrite, and shapes they must leave alone) are run once each and
    only their answers checked.
  * Output: benches/results/tpch.md (per query, geometric means, ratio), tpch.svg (chart),
    and a line appended to benches/results/tpch-history.md with --label.

Usage: python3 benches/tpch.py [--sf 1] [--repeat 3] [--quick] [--label TEXT] [--queries 1,3,18]
                               [--set datafusion.execution.batch_size=16384 ...]
                               [--tables external|stored|files] [--baseline-tables …]
                               [--memory-limit 4GB]   (SF other than 1 → results/tpch-sf<SF>.md)
Stored (Delta) tables against the Parquet files stored tables used to be:
    python3 benches/tpch.py --tables stored --baseline-tables files   (→ results/tpch-stored.md)
--quick: SF 0.1 and one repetition, for development.
Needs: pip install duckdb tpchgen-cli; cargo build --release.
"""
import argparse
import csv
import io
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import release_binary  # noqa: E402
QUERIES = os.path.join(HERE, "tpch", "queries")
REWRITES = os.path.join(HERE, "tpch", "rewrites")
RESULTS = os.path.join(HERE, "results")
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def generate(sf, fmt="parquet"):
    """The cached data directory for scale factor `sf` in `fmt` (parquet or csv), generated
    on first use."""
    kind = "" if fmt == "parquet" else f"{fmt}-"
    root = os.path.join(os.path.expanduser("~/.cache/augur-bench"), f"tpch-{kind}sf{sf:g}")
    done = os.path.join(root, ".complete")
    if not os.path.exists(done):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        tpchgen = shutil.which("tpchgen-cli") or sys.exit("tpchgen-cli not found: pip install tpchgen-cli")
        print(f"generating TPC-H SF{sf:g} ({fmt}) into {root} …", file=sys.stderr)
        subprocess.run([tpchgen, fmt, "-s", f"{sf:g}", "-o", root], check=True)
        open(done, "w").close()
    return root


def prepare_tables(binary, data, mode, work):
    """Where Augur's queries find the tables: (database argument or None, setup statements).

    external: external tables over tpchgen's files. stored: a database whose stored tables
    (Delta tables) were filled by CREATE TABLE AS from those files. files: external tables over
    Parquet files Augur itself wrote (COPY: its row-group size and compression), the layout
    stored tables had before they were Delta tables."""
    if mode == "external":
        return None, [f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data}/{t}.parquet';" for t in TABLES]
    if mode == "stored":
        db = os.path.join(work, "stored-db")
        if not os.path.exists(db):
            args = [binary, db, "-q"]
            for t in TABLES:
                args += ["-c", f"CREATE TABLE {t} AS SELECT * FROM '{data}/{t}.parquet'"]
            subprocess.run(args, check=True)
        return db, []
    if mode == "files":
        files = os.path.join(work, "augur-files")
        if not os.path.exists(files):
            os.makedirs(files)
            args = [binary, "-q"]
            for t in TABLES:
                args += ["-c", f"COPY (SELECT * FROM '{data}/{t}.parquet') TO '{files}/{t}.parquet'"]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        return None, [f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{files}/{t}.parquet';" for t in TABLES]
    sys.exit(f"unknown table layout {mode!r}: external, stored or files")


PEAK = []  # the peak resident memory (MB) of each Augur process, when GNU time is there


def augur_query(binary, tables, sql, repeat, settings=(), memory_limit=None):
    """Rows (CSV) and per-run seconds of `sql` in one Augur process."""
    db, tables_setup = tables
    setup = [f"SET {s};" for s in settings] + tables_setup
    args = [binary] + ([db] if db else []) + ["-q", "--format", "csv"]
    if memory_limit:
        args += ["--memory-limit", memory_limit]
    for s in setup:
        args += ["-c", s]
    args += ["-c", ".timer on"]
    for _ in range(repeat):
        args += ["-c", sql]
    # GNU time, not a child's rusage: that would report this Python process's own peak.
    gnu_time = os.path.exists("/usr/bin/time")
    if gnu_time:
        args = ["/usr/bin/time", "-f", "peak-kb %M"] + args
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    if gnu_time:
        PEAK.append(int(out.stderr.strip().splitlines()[-1].split()[1]) / 1024)
    times = [float(l.split()[2]) for l in out.stderr.splitlines() if l.startswith("Run Time")]
    lines = out.stdout.splitlines()
    per_run = len(lines) // repeat
    rows = list(csv.reader(io.StringIO("\n".join(lines[1:per_run]))))
    return rows, times


def duckdb_query(con, sql, repeat):
    times, rows = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return rows, times


def normal(value):
    """A comparable form of one cell: floats for numbers, ISO text for dates, '' for NULL."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return text


def agree(ours, theirs):
    a = sorted(([normal(v) for v in r] for r in ours), key=repr)
    b = sorted(([normal(v) for v in r] for r in theirs), key=repr)
    if len(a) != len(b):
        return f"{len(a)} rows vs DuckDB's {len(b)}"
    for x, y in zip(a, b):
        if len(x) != len(y):
            return f"row {x} vs {y}"
        for u, v in zip(x, y):
            if isinstance(u, float) and isinstance(v, float):
                if abs(u - v) > 1e-6 * max(1.0, abs(u), abs(v)):
                    return f"{u} vs DuckDB's {v} in {x}"
            elif u != v:
                return f"{u!r} vs DuckDB's {v!r} in {x}"
    return None


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def svg_chart(rows, title):
    """Horizontal bars per query, Augur and DuckDB, log-free seconds; plain SVG, no plotting library."""
    width, bar, gap, left = 760, 9, 8, 60
    top = 40
    height = top + len(rows) * (2 * bar + gap) + 40
    longest = max(max(a, d) for _, a, d in rows)
    scale = (width - left - 90) / longest
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="14">{title}</text>',
           f'<rect x="{left}" y="26" width="10" height="8" fill="#2b6cb0"/><text x="{left + 14}" y="34">Augur</text>',
           f'<rect x="{left + 70}" y="26" width="10" height="8" fill="#dd8a2b"/><text x="{left + 84}" y="34">DuckDB</text>']
    y = top
    for name, a, d in rows:
        out.append(f'<text x="{left - 6}" y="{y + bar + 3}" text-anchor="end">{name}</text>')
        for value, colour, dy in [(a, "#2b6cb0", 0), (d, "#dd8a2b", bar)]:
            w = max(1.0, value * scale)
            out.append(f'<rect x="{left}" y="{y + dy}" width="{w:.1f}" height="{bar - 1}" fill="{colour}"/>')
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + dy + bar - 2}">{value:.3f} s</text>')
        y += 2 * bar + gap
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--sf", type=float, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--queries", default=",".join(str(i) for i in range(1, 23)))
    ap.add_argument("--baseline", metavar="AUGUR_BINARY",
                    help="a second Augur build timed right after the first on every query, so a change is "
                         "measured against it under the same machine conditions")
    ap.add_argument("--baseline-set", action="append", default=[], metavar="KEY=VALUE",
                    help="settings for the baseline run (with --baseline, or the same binary without "
                         "--set's settings when only this is given)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a session setting for Augur, e.g. datafusion.execution.batch_size=16384 (repeatable)")
    ap.add_argument("--memory-limit", metavar="SIZE",
                    help="Augur's --memory-limit (spilling past it) and DuckDB's memory_limit, e.g. 4GB; "
                         "the report then gives each query's peak memory")
    ap.add_argument("--tables", default="external", choices=["external", "stored", "files"],
                    help="how Augur holds the data: external tables over the generated files (default), "
                         "stored (Delta) tables filled from them, or Parquet files Augur wrote")
    ap.add_argument("--baseline-tables", choices=["external", "stored", "files"],
                    help="the baseline run's table layout (default: --tables)")
    args = ap.parse_args()
    if args.quick:
        args.sf, args.repeat = 0.1, 1
    data = generate(args.sf)
    con = duckdb.connect()
    if args.memory_limit:
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}.parquet')")
    version = subprocess.run([args.augur, "--version"], capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="augur-tpch-")
    tables = prepare_tables(args.augur, data, args.tables, work)
    base_layout = args.baseline_tables or args.tables
    comparing = bool(args.baseline or args.baseline_set or args.baseline_tables)
    base_tables = prepare_tables(args.baseline or args.augur, data, base_layout, work + "-base") if comparing else None

    rows, failures, baseline, peaks = [], [], [], []
    for n in [int(q) for q in args.queries.split(",")]:
        sql = open(os.path.join(QUERIES, f"q{n}.sql")).read().strip()
        try:
            ours, t_ours = augur_query(args.augur, tables, sql, args.repeat, args.set, args.memory_limit)
            peaks.append(PEAK[-1] if PEAK else None)
        except RuntimeError as e:
            failures.append(f"Q{n}: augur failed: {e}")
            continue
        theirs, t_theirs = duckdb_query(con, sql, args.repeat)
        problem = agree(ours, theirs)
        if problem:
            failures.append(f"Q{n}: answers differ: {problem}")
        a, d = statistics.median(t_ours), statistics.median(t_theirs)
        rows.append((f"Q{n}", a, d))
        if comparing:
            _, t_base = augur_query(args.baseline or args.augur, base_tables, sql, args.repeat, args.baseline_set,
                                    args.memory_limit)
            baseline.append(statistics.median(t_base))
        print(f"Q{n:<3} augur {a:7.3f} s  duckdb {d:7.3f} s  ratio {a / d:5.2f}"
              + (f"  baseline {baseline[-1]:7.3f} s" if baseline else ""), file=sys.stderr)

    checked = 0
    for name in sorted(os.listdir(REWRITES)):
        sql = "\n".join(l for l in open(os.path.join(REWRITES, name)) if not l.startswith("--")).strip().rstrip(";")
        try:
            ours, _ = augur_query(args.augur, tables, sql, 1, args.set)
        except RuntimeError as e:
            failures.append(f"{name}: augur failed: {e}")
            continue
        problem = agree(ours, duckdb_query(con, sql, 1)[0])
        if problem:
            failures.append(f"{name}: answers differ: {problem}")
        checked += 1

    ga, gd = geomean([a for _, a, _ in rows]), geomean([d for _, _, d in rows])
    when = time.strftime("%Y-%m-%d %H:%M")
    settings = f" Augur settings: {', '.join(args.set)}." if args.set else ""
    settings += f" Augur's tables: {args.tables}." if args.tables != "external" else ""
    settings += (f" Memory limit {args.memory_limit} (Augur --memory-limit, DuckDB memory_limit)."
                 if args.memory_limit else "")
    head = (f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()} harness; "
            f"{version} (release build) vs DuckDB {duckdb.__version__}; TPC-H SF{args.sf:g} Parquet from "
            f"tpchgen-cli; median of {args.repeat} runs; {when}.{settings}")
    lines = [f"# TPC-H SF{args.sf:g}: Augur vs DuckDB", "", head, "",
             "| query | Augur | DuckDB | Augur / DuckDB |", "|---|---:|---:|---:|",
             *[f"| {q} | {a:.3f} s | {d:.3f} s | {a / d:.2f} |" for q, a, d in rows],
             f"| **geometric mean** | **{ga:.3f} s** | **{gd:.3f} s** | **{ga / gd:.2f}** |", ""]
    if args.memory_limit and all(p is not None for p in peaks):
        lines += [f"Augur's peak resident memory per query (whole process, GNU time): "
                  + ", ".join(f"{q} {p:,.0f} MB" for (q, _, _), p in zip(rows, peaks))
                  + f"; largest {max(peaks):,.0f} MB.", ""]
    if baseline:
        gb = geomean(baseline)
        lines += ["| query | this run | baseline | this / baseline |", "|---|---:|---:|---:|",
                  *[f"| {q} | {a:.3f} s | {b:.3f} s | {a / b:.2f} |" for (q, a, _), b in zip(rows, baseline)], ""]
        lines += [f"Baseline {args.baseline or 'same build'} {args.baseline_set or 'default settings'}, {base_layout} tables: geometric mean {gb:.3f} s; this run / baseline = "
                  f"{ga / gb:.3f} (timed query by query right after this build).", ""]
    if failures:
        lines += ["Failures:", "", *[f"- {f}" for f in failures], ""]
    else:
        lines += [f"All {len(rows)} answers agree with DuckDB's, and so do the {checked} rewrite checks "
                  "(benches/tpch/rewrites/).", ""]
    lines += ["![chart](tpch.svg)", ""]
    text = "\n".join(lines)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(work + "-base", ignore_errors=True)
    if not args.quick and len(rows) == 22:
        os.makedirs(RESULTS, exist_ok=True)
        layout = ("" if args.tables == "external" else f"-{args.tables}") + ("" if args.sf == 1 else f"-sf{args.sf:g}")
        with open(os.path.join(RESULTS, f"tpch{layout}.md"), "w") as f:
            f.write(text)
    if not args.quick and len(rows) == 22 and args.tables == "external" and args.sf == 1:
        with open(os.path.join(RESULTS, "tpch.svg"), "w") as f:
            f.write(svg_chart(rows, f"TPC-H SF{args.sf:g}, seconds per query (lower is better), {when}"))
    history = os.path.join(RESULTS, "tpch-history.md")
    new = not os.path.exists(history)
    with open(history if not args.quick else os.devnull, "a") as f:
        if new:
            f.write("# TPC-H history: geometric-mean ratio Augur / DuckDB after each change\n\n"
                    "| when | SF | change | Augur geo-mean | DuckDB geo-mean | ratio | failures |\n"
                    "|---|---:|---|---:|---:|---:|---:|\n")
        label = (args.label or "-") + (f" (vs baseline: {ga / geomean(baseline):.3f}×)" if baseline else "")
        f.write(f"| {when} | {args.sf:g} | {label} | {ga:.3f} s | {gd:.3f} s | {ga / gd:.2f} | {len(failures)} |\n")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
