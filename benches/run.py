#!/usr/bin/env python3
"""The benchmark harness in one command: installs the peers, builds Augur's release binary,
then runs TPC-H against DuckDB (benches/tpch.py) and training against scikit-learn and Spark
(benches/ml.py). Results land in benches/results/ (Markdown, tpch.svg, tpch-history.md).

Usage: python3 benches/run.py [--quick] [--label TEXT]
--quick: TPC-H SF0.1 with one repetition and the 1M-row training size only, no Spark.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    peers = ["duckdb", "tpchgen-cli", "scikit-learn", "numpy"] + ([] if args.quick else ["pyspark"])
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *peers], check=True)
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/augur-target"))
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, env=env)
    tpch = [sys.executable, os.path.join(HERE, "tpch.py")] + (["--quick"] if args.quick else [])
    if args.label:
        tpch += ["--label", args.label]
    ml = [sys.executable, os.path.join(HERE, "ml.py")]
    if args.quick:
        ml += ["--sizes", "1000000x12", "--repeat", "1", "--no-spark"]
    failed = [cmd[1] for cmd in (tpch, ml) if subprocess.run(cmd, env=env).returncode != 0]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
