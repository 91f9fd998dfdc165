#!/usr/bin/env python3
"""Object-storage benchmark: the same 1M-row Parquet file scanned from a local S3-compatible
server (moto, as in the tests) and from local disk, in the same run, with a release build.

For each query the time is the query time Augur reports (.timer), median of --repeat runs.
Where the time goes: the server's own throughput (a plain GET of the whole file with
Python's http.client, no Augur) and the number of requests each query made (moto's log).
Writes a Markdown table to stdout and benches/results/s3.md.

Usage: python3 benches/s3.py [--rows 1000000] [--repeat 5]
Needs: pip install 'moto[server]'; cargo build --release.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import augur, release_binary, run_time  # noqa: E402
REPO = os.path.dirname(HERE)

QUERIES = [
    ("count(*) (footer only)", "SELECT count(*) FROM {src}"),
    ("sum of 2 columns", "SELECT sum(transaction_amount), avg(balance) FROM {src}"),
    ("group by over 4 columns",
     "SELECT merchant_category, count(*), avg(transaction_amount), max(age) FROM {src} GROUP BY 1"),
    ("all 9 columns", "SELECT count(DISTINCT customer_id), min(transaction_date), max(transaction_type), "
                      "sum(transaction_amount), sum(age), sum(balance), sum(prior_defaults), "
                      "max(merchant_category), sum(risk_score) FROM {src}"),
]


def same(a, b):
    """Equal value rows (headers name the source); floats within 1e-9 (parallel sums)."""
    def cells(text):
        return sorted(text.splitlines()[1:])
    for x, y in zip(cells(a), cells(b), strict=True):
        for u, v in zip(x.split(","), y.split(","), strict=True):
            try:
                if abs(float(u) - float(v)) > 1e-9 * max(1.0, abs(float(u))):
                    return False
            except ValueError:
                if u != v:
                    return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="augur-s3-bench-")
    log = open(os.path.join(work, "moto.log"), "w")
    server = subprocess.Popen(["python3", os.path.join(REPO, "tests", "s3", "moto_server.py"), "bench"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        info = json.loads(server.stdout.readline())
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL=info["endpoint"], AWS_ALLOW_HTTP="true")
        local = os.path.join(work, "tx.parquet")
        gen = f"SELECT * FROM generate_transactions({args.rows}, 1)"
        augur(args.augur, f"COPY ({gen}) TO '{local}'", f"COPY ({gen}) TO 's3://bench/tx.parquet'", env=env)
        size = os.path.getsize(local)

        # The server alone: one signed GET of the whole object (boto3 comes with moto).
        import boto3
        client = boto3.client("s3", endpoint_url=info["endpoint"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        raw = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            body = client.get_object(Bucket="bench", Key="tx.parquet")["Body"].read()
            raw.append(time.perf_counter() - t0)
        # Written separately, the two files may differ by a few bytes (encoding runs in parallel).
        size = len(body)

        rows = []
        for name, sql in QUERIES:
            times, answers, requests = {}, {}, 0
            for place, src in [("local", f"'{local}'"), ("s3", "'s3://bench/tx.parquet'")]:
                runs = []
                for _ in range(args.repeat):
                    log.flush()
                    before = sum(1 for _ in open(log.name))
                    out, err = augur(args.augur, ".timer on", sql.format(src=src), env=env)
                    runs.append(run_time(err))
                    answers[place] = out
                    if place == "s3":
                        log.flush()
                        requests = sum(1 for _ in open(log.name)) - before
                times[place] = statistics.median(runs)
            if not same(answers["local"], answers["s3"]):
                raise SystemExit(f"{name}: answers differ\nlocal: {answers['local']}\ns3: {answers['s3']}")
            rows.append((name, times["local"], times["s3"], requests))
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    get = statistics.median(raw)
    text = "\n".join([
        f"# Object-storage benchmark — {time.strftime('%Y-%m-%d')}", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. {args.rows:,} rows of generate_transactions, "
        f"one Parquet file of {size / 1e6:.1f} MB, on local disk and on moto (Python S3 server) on "
        f"127.0.0.1. augur release build; median of {args.repeat}; query time from .timer.", "",
        "| query | local disk | S3 (moto) | S3 / local | requests to S3 |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {l:.3f} s | {s:.3f} s | {s / l:.1f}× | {r} |" for n, l, s, r in rows],
        "",
        f"Server alone: one GET of the whole {size / 1e6:.1f} MB object takes {get:.3f} s "
        f"({size / get / 1e6:.0f} MB/s) with no Augur involved.", ""])
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "s3.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
