#!/usr/bin/env python3
"""Foundation benchmark: Augur against DuckDB, same machine, same run, same files.

Measures (median of REPEAT runs, wall clock, each a fresh process):
  1. start-up: `augur -c "SELECT 1"` vs the DuckDB CLI `duckdb -c "SELECT 1"` (pip duckdb-cli)
  2. load: a 1M-row CSV into a table (CREATE TABLE AS SELECT * FROM file)
  3. group-by: over the loaded table, by transaction_type and risk_score

Usage: python3 benches/foundation.py [--augur PATH] [--rows N] [--repeat K]
Writes a Markdown table to stdout and benches/results/foundation.md.
Needs: pip install duckdb duckdb-cli; a built augur (default: $CARGO_TARGET_DIR/release/augur).
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
REPO = os.path.dirname(HERE)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/augur-target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=os.path.join(target, "release", "augur"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import duckdb
    import duckdb_cli
    duck_cli = os.path.join(os.path.dirname(duckdb_cli.__file__), "duckdb")
    cli_version = subprocess.run([duck_cli, "--version"], capture_output=True, text=True).stdout.split()[0]

    work = tempfile.mkdtemp(prefix="augur-bench-")
    csv = os.path.join(work, "tx.csv")
    with open(csv, "w") as f:
        subprocess.run([sys.executable, os.path.join(REPO, "testdata", "gen_transactions.py"),
                        str(args.rows), "7"], stdout=f, check=True)
    size_mb = os.path.getsize(csv) / 1e6

    def augur(*sql, db=None):
        cmd = [args.augur] + ([db] if db else []) + [x for s in sql for x in ("-c", s)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    load = f"CREATE TABLE tx AS SELECT * FROM '{csv}'"
    group = ("SELECT transaction_type, risk_score, count(*), avg(transaction_amount), "
             "sum(balance) FROM tx GROUP BY 1, 2 ORDER BY 1, 2")

    results = []
    # 1. start-up, fresh process each time, for both engines
    a = timed(lambda: augur("SELECT 1"), args.repeat)
    d = timed(lambda: subprocess.run([duck_cli, "-c", "SELECT 1"], check=True,
                                     stdout=subprocess.DEVNULL), args.repeat)
    results.append(("start-up: `-c \"SELECT 1\"`, whole process (DuckDB CLI)", a, d))

    # 2. load the CSV into a stored table (database directory / database file)
    def augur_load():
        db = os.path.join(work, "augur_db")
        shutil.rmtree(db, ignore_errors=True)
        augur(load, db=db)

    def duck_load():
        path = os.path.join(work, "duck.db")
        if os.path.exists(path):
            os.remove(path)
        con = duckdb.connect(path)
        con.execute(load)
        con.close()

    results.append((f"load {args.rows:,}-row CSV ({size_mb:.0f} MB) into a table", timed(augur_load, args.repeat), timed(duck_load, args.repeat)))

    # 3. group-by over the stored table, query time only for both: augur's own timer
    #    (.timer on, printed on stderr) and DuckDB's execute+fetch in an open connection.
    db = os.path.join(work, "augur_db")

    def augur_query_time():
        out = subprocess.run([args.augur, db, "-c", ".timer on", "-c", group], check=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return float([l for l in out.stderr.splitlines() if l.startswith("Run Time:")][-1].split()[2])

    a = statistics.median(augur_query_time() for _ in range(args.repeat))
    con = duckdb.connect(os.path.join(work, "duck.db"))
    d = timed(lambda: con.execute(group).fetchall(), args.repeat)
    results.append(("group-by over the stored table (query time)", a, d))
    con.close()
    a = timed(lambda: augur(group, db=db), args.repeat)
    # The CLI (1.5) cannot open files of the Python package (2.0): it loads its own copy.
    duck_db = os.path.join(work, "duck_cli.db")
    subprocess.run([duck_cli, duck_db, "-c", load], check=True, stdout=subprocess.DEVNULL)
    d = timed(lambda: subprocess.run([duck_cli, duck_db, "-c", group], check=True,
                                     stdout=subprocess.DEVNULL), args.repeat)
    results.append(("same group-by, whole process: open, query, print (DuckDB CLI)", a, d))

    lines = [f"# Foundation benchmark — {time.strftime('%Y-%m-%d')}",
             "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; DuckDB {duckdb.__version__} (Python), "
             f"DuckDB CLI {cli_version}; augur release build {args.augur}; median of {args.repeat} runs",
             "",
             "| measure | augur (s) | duckdb (s) | augur / duckdb |",
             "|---|---:|---:|---:|"]
    for name, a, d in results:
        lines.append(f"| {name} | {a:.3f} | {d:.3f} | {a / d:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "foundation.md"), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
