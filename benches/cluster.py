#!/usr/bin/env python3
"""Augur on a Ballista cluster against Augur alone, on one machine, in one run.

A scheduler and two executors (`augur scheduler`, `augur executor`, release build) on
127.0.0.1; each executor runs one task at a time, so the cluster uses the machine's two cores
as the single process does (one partition per core). Measured:
  * TPC-H (tpchgen-cli Parquet, external tables): every query locally and on the cluster,
    median of --repeat runs each, answers compared;
  * the fixed cost of a job: a query over a 25-row table;
  * TRAIN MODEL (logistic regression) over --train-rows rows of Parquet: locally, and on the
    cluster (input read there, encoded rows written once to scratch files, loss and gradient
    summed by the executors every optimiser evaluation); time per iteration, same objective.
Writes benches/results/cluster.md.

Needs: pip install tpchgen-cli; cargo build --release.
"""
import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import release_binary  # noqa: E402
from tpch import TABLES, agree, augur_query, generate, geomean  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def free_port(pair=False):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not pair:
            return port
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
        finally:
            t.close()


def wait_port(port, limit=60):
    start = time.time()
    while time.time() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


class Cluster:
    def __init__(self, binary, work, executors=2, tasks=1):
        self.procs = []
        port = free_port()
        self.url = f"df://127.0.0.1:{port}"
        self.procs.append(subprocess.Popen([binary, "scheduler", "--listen", f"127.0.0.1:{port}"],
                                           stderr=subprocess.DEVNULL))
        wait_port(port)
        for i in range(executors):
            flight = free_port(pair=True)
            self.procs.append(subprocess.Popen(
                [binary, "executor", "--scheduler", f"127.0.0.1:{port}", "--listen", f"127.0.0.1:{flight}",
                 "--work-dir", os.path.join(work, f"executor{i}"), "--concurrent-tasks", str(tasks)],
                stderr=subprocess.DEVNULL))
            wait_port(flight)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def timed(binary, setup, sql, repeat, cluster=None):
    """(rows, per-run seconds) of `sql` run `repeat` times in one process, on `cluster` if given."""
    settings = [f"augur.cluster = '{cluster}'"] if cluster else []
    return augur_query(binary, (None, setup), sql, repeat, settings)


def train_once(binary, sql, cluster=None):
    """One TRAIN in one process, with what DESCRIBE MODEL says of it: iterations, final
    objective, seconds in all, seconds fitting, data passes and seconds per pass."""
    args = [binary, "-q", "--format", "csv"]
    if cluster:
        args += ["-c", f"SET augur.cluster = '{cluster}'"]
    args += ["-c", sql, "-c", "DESCRIBE MODEL m"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    described, objective = {}, None
    for row in csv.reader(io.StringIO(out.stdout)):
        if len(row) == 3 and row[0] == "training":
            described[row[1]] = row[2]
        elif len(row) > 6 and row[0] == "m":
            # TRAIN's own row: model,version,model_type,rows_used,rows_held_out,iterations,final_objective,…
            objective = float(row[6])
    return {
        "iterations": int(described["total iterations"]),
        "objective": objective,
        "seconds": float(described["seconds"]),
        "fit": float(described["fit seconds"]),
        "passes": int(described["data passes"]),
        "per_pass": float(described["seconds per pass"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--sf", type=float, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--train-rows", type=int, default=10_000_000)
    ap.add_argument("--queries", default=",".join(str(i) for i in range(1, 23)))
    args = ap.parse_args()
    binary = args.augur
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: cargo build --release (CARGO_TARGET_DIR picks the build)")
    data = generate(args.sf)
    setup = [f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data}/{t}.parquet'" for t in TABLES]
    work = tempfile.mkdtemp(prefix="augur-cluster-bench-")
    cluster = Cluster(binary, work)
    rows, disagreements, training = [], [], []
    try:
        # Warm-up: executors registered, files in the page cache.
        timed(binary, setup, "SELECT count(*) FROM lineitem", 1, cluster.url)
        # A filter, so the count is not answered from Parquet statistics without a scan.
        fixed = "SELECT count(*) FROM nation WHERE n_name <> ''"
        _, local_fixed = timed(binary, setup, fixed, args.repeat)
        _, cluster_fixed = timed(binary, setup, fixed, args.repeat, cluster.url)
        for q in [int(x) for x in args.queries.split(",") if x]:
            sql = open(os.path.join(HERE, "tpch", "queries", f"q{q}.sql")).read()
            local_rows, local_t = timed(binary, setup, sql, args.repeat)
            cluster_rows, cluster_t = timed(binary, setup, sql, args.repeat, cluster.url)
            problem = agree(cluster_rows, local_rows)
            if problem:
                disagreements.append(f"Q{q}: {problem}")
            rows.append((f"Q{q}", statistics.median(local_t), statistics.median(cluster_t)))
            print(f"Q{q}: local {rows[-1][1]:.3f} s, cluster {rows[-1][2]:.3f} s", file=sys.stderr)

        # Training: on the cluster the input is read there, encoded once into scratch files,
        # and every evaluation's sums are a job. The label depends on three features, so the
        # optimiser iterates; the difference between max_iter = 10 and max_iter = 1 is the
        # cost of the iterations alone (reading and encoding are paid once by both).
        train = os.path.join(work, "train.parquet")
        n = args.train_rows
        features = ", ".join(f"(random() - 0.5) AS x{i}" for i in range(16))
        subprocess.run([binary, "-q", "-c",
                        f"COPY (SELECT *, CASE WHEN x0 + 0.5 * x1 - 0.5 * x2 + (random() - 0.5) * 0.5 > 0 "
                        f"THEN 1 ELSE 0 END AS y FROM (SELECT {features} FROM generate_series(1, {n}))) "
                        f"TO '{train}'"], check=True)
        train_sql = (f"TRAIN MODEL m USING logistic_regression PREDICT y WITH (max_iter = 10) "
                     f"AS SELECT * FROM '{train}'")
        for where in (None, cluster.url):
            trained = train_once(binary, train_sql, where)
            training.append(trained)
            print(f"TRAIN on {where or 'this process'}: {trained}", file=sys.stderr)
        (local, remote) = training
        if local["iterations"] != remote["iterations"] or \
                abs(local["objective"] - remote["objective"]) > 1e-9 * abs(local["objective"]):
            disagreements.append(f"TRAIN: local {local} vs cluster {remote}")
    finally:
        cluster.stop()

    when = time.strftime("%Y-%m-%d %H:%M")
    out = [f"# Augur on a Ballista cluster vs Augur alone",
           "",
           f"Machine: 2 cores; one scheduler and two executors (one task slot each) on 127.0.0.1 "
           f"against one process (one partition per core); TPC-H SF{args.sf:g} Parquet (tpchgen-cli), "
           f"external tables; median of {args.repeat} runs; {binary}; {when}.",
           ""]
    if rows:
        g_local = geomean([r[1] for r in rows])
        g_cluster = geomean([r[2] for r in rows])
        out += ["| query | local | cluster | cluster / local |",
                "|---|---:|---:|---:|"]
        for name, a, b in rows:
            out.append(f"| {name} | {a:.3f} s | {b:.3f} s | {b / a:.2f} |")
        out.append(f"| **geometric mean** | **{g_local:.3f} s** | **{g_cluster:.3f} s** | "
                   f"**{g_cluster / g_local:.2f}** |")
        out.append("")
    out += [f"Fixed cost of a job (a filtered count over `nation`, 25 rows): local "
            f"{statistics.median(local_fixed) * 1000:.0f} ms, cluster "
            f"{statistics.median(cluster_fixed) * 1000:.0f} ms.",
            "",
            f"TRAIN MODEL (logistic regression, {n:,} rows × 16 features, Parquet, max_iter = 10; "
            f"one run each; times from DESCRIBE MODEL):",
            "",
            "| | iterations | data passes | training (after the read) | besides the optimiser (split, encode, metrics; cluster: writing the rows) | optimiser | per pass |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, t in zip(("local", "cluster"), training):
        out.append(f"| {name} | {t['iterations']} | {t['passes']} | {t['seconds']:.2f} s | "
                   f"{t['seconds'] - t['fit']:.2f} s | {t['fit']:.2f} s | {t['per_pass'] * 1000:.0f} ms |")
    if len(training) == 2:
        # The encoded rows: 16 features and the label as doubles (no weights), written once.
        encoded = n * 17 * 8
        remote = training[1]
        rate = encoded / max(remote["per_pass"], 1e-9) / 2
        out += ["",
                f"On the cluster a pass is one Ballista job over the encoded rows, written once to the "
                f"executors' scratch files (≈ {encoded / 1e9:.2f} GB) and re-read by every pass; its "
                f"shuffle is one partial state per task (loss, count and 17 gradient terms). Rate per "
                f"executor core, job cost included: {rate / 1e9:.2f} GB/s."]
    out += ["",
            "All answers agree with local execution (final objectives to 1e-9)." if not disagreements
            else "Disagreements: " + "; ".join(disagreements)]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "cluster.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
