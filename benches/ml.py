#!/usr/bin/env python3
"""Training benchmark: Augur's TRAIN MODEL against scikit-learn, same data, same run.

For each size (rows × features) it writes one Parquet file of synthetic data with a known
logistic model (uniform features, label drawn from the model), then measures, median of
--repeat runs:
  * augur: TRAIN MODEL … AS SELECT * FROM 'file.parquet' (release build, a fresh process;
    the time Augur reports for the statement: read + encode + fit) and the optimiser alone;
  * scikit-learn: StandardScaler + LogisticRegression(solver='lbfgs', no penalty, tol=1e-6)
    on the same rows already in memory as numpy (loading the file is not counted for it);
  * the time of one gradient pass against the floor 8·N·d bytes ÷ measured memory bandwidth;
  * predict throughput: rows/s of SELECT count(prediction) FROM predict(m, (SELECT * FROM file)).
  * Spark MLlib (local[2], when pyspark and java are installed): the same Parquet file read by
    spark.read.parquet + VectorAssembler + LogisticRegression(regParam=0, tol=1e-6,
    standardization on), "load + fit" from the read to the fitted model, "fit only" on the
    assembled rows cached in memory; starting the JVM is not counted.
Ratios are peer time ÷ augur time (above 1: augur is faster). "load" for scikit-learn
is DuckDB reading the Parquet into numpy, the fastest way we know to get it there.
Writes a Markdown table to stdout and benches/results/ml.md.

With --baseline OTHER_BUILD, that build's TRAIN runs right before this one's every repeat,
on the same file, and a paired table gives the ratio and both peak memories.

A size NxDcK makes the last K of the D features strings of 5 categories (one-hot for
scikit-learn; Spark is not run on those).

Usage: python3 benches/ml.py [--sizes 1000000x12,10000000x16,10000000x16c2] [--repeat 3] [--baseline OTHER]
Needs: pip install duckdb scikit-learn numpy [pyspark + a JDK for Spark]; cargo build --release.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time

import duckdb
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))


def augur(binary, db, *sql):
    args = [binary, db]
    for s in sql:
        args += ["-c", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout, out.stderr


def timed_train(binary, db, sql):
    """Seconds and peak resident memory (MB) of one whole `augur DB -c SQL` process. The peak
    comes from GNU time: a child started from this (large) Python process would report this
    process's own peak, which Linux carries across exec."""
    t0 = time.perf_counter()
    args = [binary, db, "-c", sql]
    gnu_time = os.path.exists("/usr/bin/time")
    if gnu_time:
        args = ["/usr/bin/time", "-f", "%M"] + args
    out = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{binary}: {out.stderr}")
    peak = float(out.stderr.strip().splitlines()[-1]) / 1024 if gnu_time else float("nan")
    return seconds, peak


def bandwidth_gbs():
    a = np.ones(1 << 27)  # 1 GiB of float64
    a.sum()
    t0 = time.perf_counter()
    for _ in range(5):
        a.sum()
    return 5 * a.nbytes / (time.perf_counter() - t0) / 1e9


def spark_session():
    """A local[2] Spark session, or None when pyspark or java is missing (reported in the table)."""
    if shutil.which("java") is None:
        return None
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return (SparkSession.builder.master("local[2]").appName("augur-bench")
            .config("spark.driver.memory", "12g").config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2").getOrCreate())


def spark_fit(spark, path, d, repeat):
    """Median seconds of (read + assemble + fit) and of fit alone on cached rows."""
    from pyspark.ml.classification import LogisticRegression as SparkLR
    from pyspark.ml.feature import VectorAssembler
    assembler = VectorAssembler(inputCols=[f"f{j}" for j in range(d)], outputCol="features")
    lr = SparkLR(featuresCol="features", labelCol="y", regParam=0.0, elasticNetParam=0.0, tol=1e-6,
                 maxIter=100, standardization=True)
    whole, fit = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        lr.fit(assembler.transform(spark.read.parquet(path)))
        whole.append(time.perf_counter() - t0)
        cached = assembler.transform(spark.read.parquet(path)).select("features", "y").cache()
        cached.count()
        t0 = time.perf_counter()
        lr.fit(cached)
        fit.append(time.perf_counter() - t0)
        cached.unpersist()
    return statistics.median(whole), statistics.median(fit)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/augur-target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=os.path.join(target, "release", "augur"))
    ap.add_argument("--sizes", default="1000000x12,10000000x16")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-spark", action="store_true", help="skip Spark even if pyspark is installed")
    ap.add_argument("--baseline", help="another augur build whose TRAIN is timed in turn with this one's")
    args = ap.parse_args()
    bw = bandwidth_gbs()
    spark = None if args.no_spark else spark_session()
    work = tempfile.mkdtemp(prefix="augur-ml-bench-")
    rows_out = []
    for size in args.sizes.split(","):
        # NxD, or NxDcK: the last K of the D features are strings of 5 categories.
        n, d = (int(x) for x in size.split("c")[0].split("x"))
        k = int(size.split("c")[1]) if "c" in size else 0
        path = os.path.join(work, f"data_{size}.parquet")
        db = os.path.join(work, f"db_{size}")
        beta = [round(0.8 * ((-1) ** j) / (1 + j % 4), 3) for j in range(d)]
        feats = ", ".join(f"random() * 2 - 1 AS f{j}" for j in range(d))
        margin = " + ".join(f"{b} * f{j}" for j, b in enumerate(beta))
        strings = ", ".join(f"'k' || CAST(floor((f{j} + 1) * 2.5) AS INT) AS f{j}" if j >= d - k else f"f{j}"
                            for j in range(d))
        augur(args.augur, db,
              f"COPY (SELECT {strings}, y FROM (SELECT *, CASE WHEN random() < sigmoid(-0.5 + {margin}) "
              f"THEN 1 ELSE 0 END AS y FROM (SELECT {feats} FROM generate_series(1, {n})))) TO '{path}'")
        # The file's pages written back before any timing (as benches/window.py does): its
        # writeback otherwise runs during the first TRAIN measured.
        os.sync()
        train = f"TRAIN MODEL m USING logistic_regression PREDICT y WITH (tol = 1e-6) AS SELECT * FROM '{path}'"
        totals, fits, passes, peaks, base = [], [], [], [], []
        for _ in range(args.repeat):
            # Paired: the baseline right before this build, on the same file.
            if args.baseline:
                base.append(timed_train(args.baseline, db + "-baseline", train))
            seconds, peak = timed_train(args.augur, db, train)
            totals.append(seconds)
            peaks.append(peak)
            out, _ = augur(args.augur, db, "DESCRIBE MODEL m")
            info = dict(line.split(",", 2)[1:] for line in out.splitlines()[1:] if line.count(",") >= 2)
            fits.append(float(info["seconds per pass"]) * int(info["data passes"]))
            passes.append((float(info["seconds per pass"]), int(info["data passes"]), int(info["total iterations"])))
        con = duckdb.connect()
        skl, loads = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            data = con.execute(f"SELECT * FROM '{path}'").fetchnumpy()
            # A category: one-hot columns, the last value dropped (Augur drops the rarest).
            cols = []
            for j in range(d):
                if j >= d - k:
                    _, codes = np.unique(data[f"f{j}"], return_inverse=True)
                    cols += [(codes == c).astype(float) for c in range(codes.max())]
                else:
                    cols.append(data[f"f{j}"])
            x = np.column_stack(cols)
            y = data["y"]
            loads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            z = StandardScaler().fit_transform(x)
            model = LogisticRegression(penalty=None, solver="lbfgs", tol=1e-6, max_iter=100).fit(z, y)
            skl.append(time.perf_counter() - t0)
        del x, z, data
        spark_times = spark_fit(spark, path, d, args.repeat) if spark and not k else None
        _, err = augur(args.augur, db, ".timer on",
                       f"SELECT count(prediction) FROM predict(m, (SELECT * FROM '{path}'))")
        predict_s = float([l for l in err.splitlines() if l.startswith("Run Time")][-1].split()[2])
        per_pass = statistics.median(p[0] for p in passes)
        floor = 8 * n * d / (bw * 1e9)
        rows_out.append((n, size.split("x", 1)[1], statistics.median(totals), statistics.median(fits), statistics.median(skl),
                         statistics.median(loads),
                         passes[0][1], passes[0][2], model.n_iter_[0], per_pass, floor, n / predict_s,
                         spark_times, statistics.median(peaks), base))
        shutil.rmtree(db, ignore_errors=True)
        shutil.rmtree(db + "-baseline", ignore_errors=True)
        os.remove(path)
    lines = [f"# Training benchmark — {time.strftime('%Y-%m-%d')}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, measured read bandwidth {bw:.1f} GB/s; "
             f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; augur release build; median of {args.repeat}.", "",
             "| data | augur TRAIN, whole process (s) | scikit-learn load + fit (s) | ratio | augur fit only (s) | scikit-learn fit only (s) | ratio | augur passes (iterations) | sklearn iterations | s per pass | floor 8·N·d/bw (s) | pass / floor | predict rows/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d, total, fit, skl, load, npass, iters, skl_iters, per_pass, floor, pred, *_ in rows_out:
        lines.append(f"| {n:,}×{d} | {total:.2f} | {load + skl:.2f} | {(load + skl) / total:.2f} | {fit:.2f} | {skl:.2f} | {skl / fit:.2f} | {npass} ({iters}) | {skl_iters} | "
                     f"{per_pass:.4f} | {floor:.4f} | {per_pass / floor:.1f} | {pred:,.0f} |")
    lines += ["", "Peak resident memory of the TRAIN process: " + ", ".join(
        f"{r[0]:,}×{r[1]} {r[13]:,.0f} MB" for r in rows_out) + "."]
    if args.baseline:
        lines += ["", f"Paired with `{args.baseline}` (each run right before this build's, same file):", "",
                  "| data | baseline whole process (s) | this build (s) | this / baseline | baseline peak (MB) | this peak (MB) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in rows_out:
            b_t = statistics.median(x[0] for x in r[14])
            b_m = statistics.median(x[1] for x in r[14])
            lines.append(f"| {r[0]:,}×{r[1]} | {b_t:.2f} | {r[2]:.2f} | {r[2] / b_t:.3f} | {b_m:,.0f} | {r[13]:,.0f} |")
    lines += ["", "Spark MLlib " + (f"{spark.version}, local[2]" if spark else "not run (pyspark or java missing)") + ":", ""]
    if spark:
        lines += ["| data | augur TRAIN, whole process (s) | Spark read + fit (s) | ratio | augur fit only (s) | Spark fit only, cached (s) | ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
    for n, d, total, fit, *_, spark_times, _peak, _base in rows_out:
        if spark_times:
            sw, sf = spark_times
            lines.append(f"| {n:,}×{d} | {total:.2f} | {sw:.2f} | {sw / total:.2f} | {fit:.2f} | {sf:.2f} | {sf / fit:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "ml.md"), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
