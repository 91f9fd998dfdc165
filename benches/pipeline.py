#!/usr/bin/env python3
"""The seed credit-risk pipeline end to end: Augur against PySpark local[2], same CSV, same run.

The job sql/credit_risk.sql replaces, at --rows (default 10M) rows of the demo's data
(`generate_transactions(rows, 42)`, about 1% of feature values NULL), written once as CSV:
  1. read the CSV with a declared schema;
  2. drop rows with a NULL in any column, into a table (Augur: a stored table in a database
     directory; Spark: df.na.drop().persist(), counted);
  3. train a logistic regression on four numeric and two string features (one-hot encoded),
     the demo's hyperparameters: max_iter 100, reg_param 0.001, elastic_net_param 0.8;
  4. predict every clean row and evaluate: ROC AUC over all of them.
Each side is one fresh process (for Spark: python + its JVM, which start-up is part of), timed
from outside, with its peak memory: the resident set of the whole process tree, sampled every
50 ms. Each side also reports its steps' times. Spark runs once per repeat like Augur.

Writes a Markdown table to stdout and benches/results/pipeline.md.

Usage: python3 benches/pipeline.py [--rows 10000000] [--repeat 3] [--augur BIN] [--no-spark]
Needs: pip install psutil pyspark (and a JDK) for the Spark side; cargo build --release.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from common import augur, release_binary

HERE = os.path.dirname(os.path.abspath(__file__))

COLUMNS = [("customer_id", "INT", "IntegerType"), ("transaction_date", "DATE", "DateType"),
           ("transaction_amount", "DOUBLE", "DoubleType"), ("transaction_type", "VARCHAR", "StringType"),
           ("age", "INT", "IntegerType"), ("balance", "DOUBLE", "DoubleType"),
           ("prior_defaults", "INT", "IntegerType"), ("merchant_category", "VARCHAR", "StringType"),
           ("risk_score", "INT", "IntegerType")]
FEATURES = ["transaction_amount", "transaction_type", "age", "balance", "prior_defaults", "merchant_category"]
STRINGS = ["transaction_type", "merchant_category"]


def augur_script(csv):
    schema = ",\n  ".join(f"{c} {t}" for c, t, _ in COLUMNS)
    not_null = " AND ".join(f"{c} IS NOT NULL" for c, _, _ in COLUMNS)
    return f""".timer on
CREATE EXTERNAL TABLE transactions (
  {schema}
) STORED AS CSV LOCATION '{csv}' OPTIONS ('format.has_header' 'true');
CREATE OR REPLACE TABLE clean AS SELECT * FROM transactions WHERE {not_null};
TRAIN MODEL risk USING logistic_regression PREDICT risk_score
  WITH (max_iter = 100, reg_param = 0.001, elastic_net_param = 0.8)
AS SELECT {", ".join(FEATURES)}, risk_score FROM clean;
SELECT count(*) AS scored, auc(probability, risk_score) AS auc FROM predict(risk, (SELECT * FROM clean));
"""


SPARK = """
import sys, time
t0 = time.perf_counter()
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
columns, features, strings, csv = eval(sys.argv[1])
spark = (SparkSession.builder.master("local[2]").appName("augur-pipeline")
         .config("spark.driver.memory", "12g").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
steps = [("start", time.perf_counter() - t0)]
t = time.perf_counter()
schema = T.StructType([T.StructField(c, getattr(T, s)(), True) for c, _, s in columns])
clean = spark.read.schema(schema).option("header", True).csv(csv).na.drop().persist()
n = clean.count()
steps.append(("read + clean", time.perf_counter() - t)); t = time.perf_counter()
indexed = [c + "_idx" for c in strings]
onehot = [c + "_vec" for c in strings]
stages = [StringIndexer(inputCols=strings, outputCols=indexed),
          OneHotEncoder(inputCols=indexed, outputCols=onehot),
          VectorAssembler(inputCols=[onehot[strings.index(c)] if c in strings else c for c in features],
                          outputCol="features"),
          LogisticRegression(featuresCol="features", labelCol="risk_score", maxIter=100,
                             regParam=0.001, elasticNetParam=0.8)]
model = Pipeline(stages=stages).fit(clean)
steps.append(("train", time.perf_counter() - t)); t = time.perf_counter()
auc = BinaryClassificationEvaluator(labelCol="risk_score").evaluate(model.transform(clean))
steps.append(("predict + evaluate", time.perf_counter() - t))
print(n, auc)
for name, s in steps:
    print(f"STEP {name} {s:.3f}", file=sys.stderr)
spark.stop()
"""


def measured(args, cwd=None):
    """(seconds, peak MB of the process tree, stdout, stderr) of one command."""
    t0 = time.perf_counter()
    proc = psutil.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    peak = [0]
    seen = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                children = proc.children(recursive=True)
                seen.update((c.pid, c) for c in children)
                tree = [proc] + children
                rss = 0
                for p in tree:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    # The time ends when the command does, but the next run waits for its whole tree (Spark's
    # JVM can outlive the Python driver by seconds, still using both cores).
    psutil.wait_procs(list(seen.values()), timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{err[-3000:]}")
    return seconds, peak[0] / 2**20, out, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args()
    spark = not args.no_spark and shutil.which("java") is not None
    if spark:
        try:
            import pyspark
        except ImportError:
            spark = False
    work = tempfile.mkdtemp(prefix="augur-pipeline-")
    csv = os.path.join(work, "transactions.csv")
    augur(args.augur, f"COPY (SELECT * FROM generate_transactions({args.rows}, 42)) TO '{csv}' "
          "STORED AS CSV OPTIONS ('format.has_header' 'true')")
    mb = os.path.getsize(csv) / 2**20
    script = os.path.join(work, "pipeline.sql")
    with open(script, "w") as f:
        f.write(augur_script(csv))
    spark_py = os.path.join(work, "pipeline_spark.py")
    with open(spark_py, "w") as f:
        f.write(SPARK)
    ours, theirs = [], []
    for _ in range(args.repeat):
        db = os.path.join(work, "db")
        shutil.rmtree(db, ignore_errors=True)
        s, peak, out, err = measured([args.augur, db, "-q", "-f", script])
        times = [float(l.split()[2]) for l in err.splitlines() if l.startswith("Run Time")]
        scored, auc = out.strip().splitlines()[-1].split(",")
        ours.append((s, peak, times, int(scored), float(auc)))
        if spark:
            spec = repr((COLUMNS, FEATURES, STRINGS, csv))
            s, peak, out, err = measured([sys.executable, spark_py, spec])
            steps = [(l.split()[1:-1], float(l.split()[-1])) for l in err.splitlines() if l.startswith("STEP ")]
            n, auc = out.split()[-2:]
            theirs.append((s, peak, [x for _, x in steps], int(n), float(auc)))
    shutil.rmtree(work, ignore_errors=True)
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    steps = lambda runs, j: statistics.median(r[2][j] for r in runs)
    a_s, a_m = med(ours, 0), med(ours, 1)
    lines = [f"# Seed pipeline, end to end — {time.strftime('%Y-%m-%d')}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores. {args.rows:,} rows of "
             f"`generate_transactions({args.rows}, 42)` as CSV ({mb:,.0f} MB); read with a declared schema, "
             "NULL rows dropped into a table, logistic regression (max_iter 100, reg_param 0.001, "
             "elastic_net_param 0.8) on 4 numeric + 2 string features, every clean row scored, ROC AUC. "
             f"Whole fresh processes timed from outside, median of {args.repeat}; peak = resident set of the "
             "process tree.", "",
             "| engine | whole process (s) | peak memory (MB) | read + clean (s) | train (s) | predict + AUC (s) | rows clean | AUC |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| Augur | {a_s:.2f} | {a_m:,.0f} | {steps(ours, 1):.2f} | {steps(ours, 2):.2f} | {steps(ours, 3):.2f} | "
             f"{ours[0][3]:,} | {ours[0][4]:.4f} |"]
    if theirs:
        import pyspark
        b_s, b_m = med(theirs, 0), med(theirs, 1)
        lines.append(f"| Spark {pyspark.__version__} local[2] | {b_s:.2f} | {b_m:,.0f} | {steps(theirs, 1):.2f} | "
                     f"{steps(theirs, 2):.2f} | {steps(theirs, 3):.2f} | {theirs[0][3]:,} | {theirs[0][4]:.4f} |")
        lines += ["", f"Augur is **{b_s / a_s:.1f}×** faster than Spark end to end (Spark's JVM start-up "
                  f"{steps(theirs, 0):.1f} s included) at **{a_m / b_m:.2f}** of its peak memory; "
                  f"training alone {steps(theirs, 2) / steps(ours, 2):.1f}×."]
        if ours[0][3] != theirs[0][3]:
            lines.append(f"\n**Row counts differ:** Augur {ours[0][3]:,}, Spark {theirs[0][3]:,}.")
    else:
        lines += ["", "Spark not run (pyspark or java missing, or --no-spark)."]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "pipeline.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
