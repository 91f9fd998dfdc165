#!/usr/bin/env python3
"""Credit-scorecard benchmark: Augur's woe_binning + scorecard + drift against optbinning's
Scorecard (BinningProcess of OptimalBinning + scikit-learn LogisticRegression, pdo/odds
scaling) and ScorecardMonitoring, same data, same constraints, same machine, one run.

Data: N rows × 12 characteristics (9 numbers with NULLs and a special value, 3 strings),
a 0/1 label from a logistic model (numpy, fixed seed), written once as Parquet, plus a second
"period" of N rows with shifted distributions for drift.
  * augur (release build, fresh process per step): TRAIN MODEL … USING woe_binning, then
    TRAIN MODEL … USING scorecard (binning = …), whole process times; then drift() of the
    second period against the scorecard.
  * optbinning: pandas reads the file; Scorecard(BinningProcess(max_n_bins = 10,
    min_bin_size = 0.05, max_n_prebins = 20, quantile pre-binning, special codes),
    LogisticRegression(lbfgs), pdo 20 / base 600 / odds 50).fit; then ScorecardMonitoring
    .fit on the second period (PSI per characteristic and of the score).
Both bin with quantile pre-bins and maximise IV per characteristic. Ratios are peer ÷ augur
(above 1: augur is faster). Writes benches/results/credit.md.

With --onnx: scoring throughput of an exported logistic regression and boosted trees (9 numeric inputs) in
onnxruntime (session.run on the array already in memory) against Augur's own
predict_proba over the Parquet file (whole process, read included); writes
benches/results/credit-onnx.md.

Usage: python3 benches/credit.py [--rows 10000000] [--augur PATH] [--onnx]
Needs: pip install optbinning scikit-learn onnxruntime pyarrow pandas numpy; cargo build --release.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import release_binary  # noqa: E402

NUMBERS = [f"n{i}" for i in range(9)]
STRINGS = ["s0", "s1", "s2"]
SPECIAL = -1.0


def make(path, rows, seed, shift=0.0):
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    cols = {}
    logit = np.full(rows, -2.5)
    for i, name in enumerate(NUMBERS):
        x = rng.normal(50 + shift * (i % 3), 15, rows).round(2)
        logit += (0.03 if i % 2 else -0.03) * (x - 50) * (1 + i / 10)
        x[rng.random(rows) < 0.02] = np.nan
        x[rng.random(rows) < 0.01] = SPECIAL
        cols[name] = x
    for i, name in enumerate(STRINGS):
        k = 5 + 5 * i
        codes = rng.integers(0, k, rows)
        logit += (codes - k / 2) * 0.05
        cols[name] = np.array([f"c{j}" for j in range(k)])[codes]
    cols["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    pd.DataFrame(cols).to_parquet(path, index=False, row_group_size=131072)


def timed(args):
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{args[:3]} failed:\n{out.stderr}")
    return time.perf_counter() - t0, out.stdout


def run_augur(binary, train, later, work):
    db = os.path.join(work, "db")
    features = ", ".join(NUMBERS + STRINGS)
    base = [binary, db, "-q", "--format", "csv"]
    binning, _ = timed(base + ["-c",
        "TRAIN MODEL b USING woe_binning PREDICT y WITH (max_bins = 10, min_bin_share = 0.05, "
        f"max_prebins = 20, monotonic_trend = 'auto', special_values = '-1') "
        f"AS SELECT {features}, y FROM '{train}'"])
    scorecard, _ = timed(base + ["-c",
        "TRAIN MODEL sc USING scorecard PREDICT y WITH (binning = 'b', pdo = 20, base_score = 600, "
        f"base_odds = 50) AS SELECT {features}, y FROM '{train}'"])
    drift, out = timed(base + ["-c",
        f"SELECT DISTINCT feature, feature_psi FROM drift(sc, (SELECT * FROM '{later}')) ORDER BY feature"])
    psi = {l.split(",")[0]: float(l.split(",")[1]) for l in out.strip().splitlines()[1:]}
    return {"binning": binning, "scorecard": scorecard, "drift": drift, "psi": psi}


def run_optbinning(train, later):
    """In this process: optbinning's Scorecard and ScorecardMonitoring."""
    import pandas as pd
    from optbinning import BinningProcess, Scorecard
    from optbinning.scorecard import ScorecardMonitoring
    from sklearn.linear_model import LogisticRegression
    t0 = time.perf_counter()
    df = pd.read_parquet(train)
    read = time.perf_counter() - t0
    x, y = df[NUMBERS + STRINGS], df["y"].to_numpy()
    t0 = time.perf_counter()
    process = BinningProcess(
        NUMBERS + STRINGS, categorical_variables=STRINGS, special_codes=[SPECIAL],
        binning_fit_params={v: {"max_n_bins": 10, "min_bin_size": 0.05, "max_n_prebins": 20,
                                "prebinning_method": "quantile",
                                "monotonic_trend": "auto_asc_desc" if v in NUMBERS else "ascending"}
                            for v in NUMBERS + STRINGS})
    card = Scorecard(binning_process=process, estimator=LogisticRegression(max_iter=1000),
                     scaling_method="pdo_odds",
                     scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600})
    card.fit(x, y)
    fit = time.perf_counter() - t0
    later_df = pd.read_parquet(later)
    t0 = time.perf_counter()
    monitoring = ScorecardMonitoring(scorecard=card, psi_method="cart", psi_n_bins=10)
    monitoring.fit(later_df[NUMBERS + STRINGS], later_df["y"].to_numpy(), x, y)
    drift = time.perf_counter() - t0
    return {"read": read, "fit": fit, "drift": drift}


def run_onnx(binary, rows):
    import numpy as np
    import onnxruntime
    import pandas as pd
    work = tempfile.mkdtemp(prefix="augur-onnx-bench-")
    try:
        path = os.path.join(work, "x.parquet")
        rng = np.random.default_rng(3)
        x = rng.normal(size=(rows, 9))
        y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ np.linspace(-1, 1, 9))))).astype(np.int64)
        df = pd.DataFrame(x, columns=NUMBERS)
        df["y"] = y
        df.to_parquet(path, index=False, row_group_size=131072)
        db = os.path.join(work, "db")
        cols = ", ".join(NUMBERS)
        features = df[NUMBERS].to_numpy(np.float64)
        rows_out = []
        # Trees are trained on the first million rows (training speed is not what is measured).
        for name, model, options in [("logistic regression", "logistic_regression", ""),
                                     ("boosted trees, 100 × 31 leaves", "boosted_trees",
                                      "WITH (num_iterations = 100, num_leaves = 31)")]:
            onnx = os.path.join(work, f"{model}.onnx")
            subprocess.run([binary, db, "-q", "-c",
                            f"TRAIN MODEL {model} USING {model} PREDICT y {options} "
                            f"AS SELECT {cols}, y FROM '{path}' LIMIT 1000000",
                            "-c", f"EXPORT MODEL {model} TO '{onnx}' OPTIONS (format = 'onnx')"],
                           check=True, capture_output=True)
            ours, _ = timed([binary, db, "-q", "-c",
                             f"SELECT sum(predict_proba('{model}', {cols})) FROM '{path}'"])
            session = onnxruntime.InferenceSession(onnx)
            t0 = time.perf_counter()
            session.run(None, {"features": features})
            theirs = time.perf_counter() - t0
            rows_out.append((name, ours, theirs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# Scoring exported models: onnxruntime against Augur",
        "",
        f"{rows:,} rows × 9 numbers; {platform.machine()}, {os.cpu_count()} cores; onnxruntime "
        f"{onnxruntime.__version__}. Augur: whole process, Parquet read included; onnxruntime: "
        "session.run on the array already in memory (double TreeEnsemble / MatMul graphs).",
        "",
        "| model | augur predict_proba s | onnxruntime s | onnxruntime ÷ augur |",
        "|---|---:|---:|---:|",
    ]
    for name, ours, theirs in rows_out:
        lines.append(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f} |")
    text = "\n".join(lines + [""])
    print(text)
    with open(os.path.join(HERE, "results", "credit-onnx.md"), "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--augur", default=release_binary())
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--peer-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        print(json.dumps(run_optbinning(*args.peer_child)))
        return
    if args.onnx:
        run_onnx(args.augur, args.rows)
        return
    work = tempfile.mkdtemp(prefix="augur-credit-bench-")
    try:
        train, later = os.path.join(work, "train.parquet"), os.path.join(work, "later.parquet")
        make(train, args.rows, 7)
        make(later, args.rows, 8, shift=3.0)
        augur = run_augur(args.augur, train, later, work)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--peer-child", train, later],
                             capture_output=True, text=True)
        whole = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"optbinning failed:\n{out.stderr[-3000:]}")
        peer = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours_fit = augur["binning"] + augur["scorecard"]
    import optbinning
    import sklearn
    lines = [
        "# Credit scorecard: Augur against optbinning + scikit-learn",
        "",
        f"{args.rows:,} rows × 12 characteristics (9 numbers with NULLs and a special value, 3 strings); "
        f"{platform.machine()}, {os.cpu_count()} cores; optbinning {optbinning.__version__}, "
        f"scikit-learn {sklearn.__version__}. Augur: whole processes (Parquet read included); "
        "optbinning: fit and monitoring calls on data already in pandas (read "
        f"{peer['read']:.1f} s extra), process {whole:.1f} s in all.",
        "",
        "| step | augur s | optbinning + scikit-learn s | ratio (peer ÷ augur) |",
        "|---|---:|---:|---:|",
        f"| binning (12 characteristics) + scorecard | {ours_fit:.2f} "
        f"({augur['binning']:.2f} + {augur['scorecard']:.2f}) | {peer['fit']:.2f} | {peer['fit'] / ours_fit:.1f} |",
        f"| drift: PSI per characteristic and score, {args.rows:,} new rows | {augur['drift']:.2f} | "
        f"{peer['drift']:.2f} | {peer['drift'] / augur['drift']:.1f} |",
        "",
        "Augur's PSI of the second period: " + ", ".join(f"{k} {v:.4f}" for k, v in augur["psi"].items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(HERE, "results", "credit.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
