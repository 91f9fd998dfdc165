#!/usr/bin/env python3
"""Top-N per group (`row_number()` / `rank()` ≤ k over a partitioned window) and median /
quantile aggregates, Augur against DuckDB, same machine, same run, same Parquet file.

The query keeps the two largest values per group and folds them into one row (so printing
does not count):

    SELECT count(*), sum(v) FROM (
      SELECT g, v, row_number() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM 'x.parquet')
    WHERE rn <= 2

at low (1,000 groups) and high (1,000,000 groups) cardinality, over 10M rows. The same files
answer `median(f)` and `percentile_cont(0.9) WITHIN GROUP (ORDER BY f)` over a double column,
without grouping and grouped by g (folded into count and sum the same way). Each engine
runs it REPEAT times in one process (`.timer on`; DuckDB's `.timer on` likewise), median
query time reported; answers are compared. The engines take turns (--rounds, each round one
Augur process and one DuckDB series), and the median is over every round's runs, so a slow
spell of the machine falls on both rather than on whichever ran during it.

Usage: python3 benches/window.py [--augur PATH] [--rows N] [--repeat K] [--rounds R]
Writes benches/results/window.md (both tables). Needs: pip install duckdb duckdb-cli numpy pyarrow.
"""
import argparse
import os
import platform
import shutil
import statistics
import tempfile

from common import augur, release_binary, run_times

HERE = os.path.dirname(os.path.abspath(__file__))

# Median and a quantile: over the whole column, and per group (folded as above).
QUANTILES = {
    "median": "median(f)",
    "percentile_cont(0.9)": "percentile_cont(0.9) WITHIN GROUP (ORDER BY f)",
}
WHOLE = "SELECT count(*) AS n, sum(q) AS s FROM (SELECT {agg} AS q FROM '{path}')"
GROUPED = "SELECT count(*) AS n, sum(q) AS s FROM (SELECT g, {agg} AS q FROM '{path}' GROUP BY g)"

QUERY = ("SELECT count(*) AS n, sum(v) AS s FROM (SELECT g, v, {fn}() OVER (PARTITION BY g "
         "ORDER BY v DESC) AS rn FROM '{path}') WHERE rn{plus} <= 2")


def augur_times(binary, sql, repeat):
    out, err = augur(binary, ".timer on", *([sql] * repeat))
    return run_times(err), out.strip().splitlines()[1]


def duckdb_times(sql, repeat):
    import duckdb
    import time
    con = duckdb.connect()
    con.execute("SET threads = 2")
    times, answer = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = con.execute(sql).fetchone()
        times.append(time.perf_counter() - t0)
    return times, f"{answer[0]},{answer[1]}"


def in_turns(rounds, *runners):
    """Each runner `rounds` times, taking turns; per runner the median of all its times and
    its answers (one per round)."""
    times = [[] for _ in runners]
    answers = [[] for _ in runners]
    for _ in range(rounds):
        for i, run in enumerate(runners):
            t, answer = run()
            times[i] += t
            answers[i].append(answer)
    return [(statistics.median(t), a) for t, a in zip(times, answers)]


def same(a, b):
    """Answers "count,sum" agree: the count exactly, the sum within 1e-6 relative. DataFusion
    truncates percentile_cont's interpolation weight to six decimals (DuckDB does not), and
    the engines add the per-group quantiles in different orders."""
    (na, sa), (nb, sb) = a.split(","), b.split(",")
    return na == nb and abs(float(sa) - float(sb)) <= 1e-6 * max(1.0, abs(float(sb)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    work = tempfile.mkdtemp(prefix="augur-window-bench-")
    lines = [
        "# Top-N per group: Augur against DuckDB",
        "",
        f"{args.rows:,} rows of (g bigint, v bigint, distinct v per group); {platform.machine()}, "
        f"{os.cpu_count()} cores; DuckDB {duckdb.__version__} (threads = 2); median query time "
        f"of {args.rounds} rounds × {args.repeat} runs (one process per round; the engines take "
        "turns); the answers (count, sum) agree.",
        "",
        "| groups | function | augur s | augur, `rn + 0 <= 2` (full sort) s | duckdb s | augur ÷ duckdb |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    quantile_lines = [
        "",
        "# Median and quantiles: Augur against DuckDB",
        "",
        f"The same files; f is a double column (uniform random). {args.rounds} × {args.repeat} runs each, in turns, median "
        "query time; the answers (count, sum of the quantiles) agree.",
        "",
        "| groups | aggregate | augur s | duckdb s | augur ÷ duckdb |",
        "|---:|---|---:|---:|---:|",
    ]
    try:
        rng = np.random.default_rng(5)
        for groups in [1_000, 1_000_000]:
            path = os.path.join(work, f"x{groups}.parquet")
            g = rng.integers(0, groups, args.rows)
            v = rng.permutation(args.rows)  # distinct values: row_number has one answer
            f = rng.random(args.rows)
            pq.write_table(pa.table({"g": g, "v": v, "f": f}), path, row_group_size=1 << 20)
            # The file's pages written back before any timing: otherwise the writeback ran
            # during the first query measured (Augur's row_number, 1.05-1.2x its time later).
            os.sync()
            for fn in ["row_number", "rank"]:
                sql = QUERY.format(fn=fn, path=path, plus="")
                # The same query written so the top-N rule does not apply (`rn + 0 <= 2`):
                # DataFusion's window over a full sort, as before the rule.
                full_sort = QUERY.format(fn=fn, path=path, plus=" + 0")
                (ours, ours_answers), (theirs, their_answers) = in_turns(
                    args.rounds,
                    lambda: augur_times(args.augur, sql, args.repeat),
                    lambda: duckdb_times(sql, args.repeat))
                sorted_, sorted_answer = augur_times(args.augur, full_sort, args.repeat)
                sorted_ = statistics.median(sorted_)
                ours_answer, their_answer = ours_answers[0], their_answers[0]
                if len(set(ours_answers + their_answers + [sorted_answer])) != 1:
                    raise SystemExit(f"answers differ for {fn} at {groups} groups: "
                                     f"augur {ours_answer} (sorted: {sorted_answer}), "
                                     f"duckdb {their_answer}")
                lines.append(f"| {groups:,} | {fn} | {ours:.3f} | {sorted_:.3f} | {theirs:.3f} | "
                             f"{ours / theirs:.2f} |")
                print(lines[-1], flush=True)
            shapes = [("whole column", WHOLE)] if groups == 1_000 else []
            for label, shape in shapes + [(f"{groups:,}", GROUPED)]:
                for name, agg in QUANTILES.items():
                    sql = shape.format(agg=agg, path=path)
                    (ours, ours_answers), (theirs, their_answers) = in_turns(
                        args.rounds,
                        lambda: augur_times(args.augur, sql, args.repeat),
                        lambda: duckdb_times(sql, args.repeat))
                    ours_answer, their_answer = ours_answers[0], their_answers[0]
                    if not all(same(a, their_answer) for a in ours_answers + their_answers):
                        raise SystemExit(f"answers differ for {name} over {label} groups: "
                                         f"augur {ours_answer}, duckdb {their_answer}")
                    quantile_lines.append(f"| {label} | {name} | {ours:.3f} | {theirs:.3f} | "
                                          f"{ours / theirs:.2f} |")
                    print(quantile_lines[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines + quantile_lines + [""])
    print(text)
    with open(os.path.join(HERE, "results", "window.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
