#!/usr/bin/env python3
"""SQL functions benchmark: Augur's auc() aggregate against scikit-learn's roc_auc_score on
the same 10M rows in the same run, and generate_transactions() throughput.

  * auc: one Parquet file of (score, label) written by Augur; Augur's time is the query time
    it reports (.timer) for SELECT auc(score, label) FROM the file, i.e. reading the file
    included; scikit-learn's is roc_auc_score on numpy arrays already in memory (loading not
    counted). The two answers must agree to 1e-9.
  * generate_transactions: rows/s of SELECT count(*), sum(risk_score) FROM
    generate_transactions(N), next to the Python generator it mirrors (testdata/gen_transactions.py).
Writes a Markdown table to stdout and benches/results/udfs.md.

Usage: python3 benches/udfs.py [--rows 10000000] [--repeat 3]
Needs: pip install duckdb scikit-learn numpy; cargo build --release.
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

import duckdb
import numpy as np
import sklearn
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import augur, release_binary, run_time  # noqa: E402
REPO = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.rows
    work = tempfile.mkdtemp(prefix="augur-udf-bench-")
    path = os.path.join(work, "scores.parquet")
    # Scores with signal and many ties (3 decimals), labels drawn from them.
    augur(args.augur, f"COPY (SELECT round(s, 3) AS score, CASE WHEN random() < s THEN 1 ELSE 0 END AS label "
                      f"FROM (SELECT random() AS s FROM generate_series(1, {n}))) TO '{path}'")
    ours, value = [], None
    for _ in range(args.repeat):
        out, err = augur(args.augur, ".timer on", f"SELECT auc(score, label) AS auc FROM '{path}'")
        ours.append(run_time(err))
        value = float(out.splitlines()[1])
    data = duckdb.connect().execute(f"SELECT score, label FROM '{path}'").fetchnumpy()
    s, y = data["score"], data["label"]
    theirs, reference = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        reference = roc_auc_score(y, s)
        theirs.append(time.perf_counter() - t0)
    if abs(value - reference) > 1e-9:
        sys.exit(f"auc disagrees: augur {value!r}, scikit-learn {reference!r}")

    gen = []
    for _ in range(args.repeat):
        _, err = augur(args.augur, ".timer on", f"SELECT count(*), sum(risk_score) FROM generate_transactions({n})")
        gen.append(run_time(err))
    py_rows = 200_000
    t0 = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "testdata", "gen_transactions.py"), str(py_rows)],
                   check=True, stdout=subprocess.DEVNULL)
    py_rate = py_rows / (time.perf_counter() - t0)
    shutil.rmtree(work, ignore_errors=True)

    a, b, g = statistics.median(ours), statistics.median(theirs), statistics.median(gen)
    text = "\n".join([
        f"# SQL functions benchmark — {time.strftime('%Y-%m-%d')}", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}; augur release build; median of {args.repeat}.", "",
        "| measure | augur | peer | augur advantage (above 1: augur faster) |",
        "|---|---:|---:|---:|",
        f"| auc over {n:,} rows (augur reads Parquet; sklearn roc_auc_score on numpy in memory) | {a:.3f} s | {b:.3f} s | {b / a:.2f} |",
        f"| generate_transactions rows/s (peer: testdata/gen_transactions.py, Python) | {n / g:,.0f} | {py_rate:,.0f} | {(n / g) / py_rate:.0f} |",
        "", f"AUC: augur {value:.12f}, scikit-learn {reference:.12f}.", ""])
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "udfs.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
