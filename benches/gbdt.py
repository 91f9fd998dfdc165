#!/usr/bin/env python3
"""Boosted-trees benchmark: Augur's TRAIN MODEL … USING boosted_trees against LightGBM and
XGBoost (hist), same data, same parameters, same cores, one run.

Data: a 28-feature synthetic binary classification set with interactions (numpy, fixed seeds),
written once as Parquet: a training file of N rows and a 500,000-row test file.
For each N (--sizes) and num_leaves (--leaves), 100 trees, learning rate 0.1, max_bin 255,
each peer runs in its own process (so peak memory is its own):
  * augur: `TRAIN MODEL` reading the Parquet file (release build, fresh process): whole process
    and the fit alone (Augur's own timing, binning included), then held-out AUC by evaluate();
  * LightGBM: pandas reads the file; Dataset construction + train timed as "fit"; the model is
    saved and scored in a second process (so the training process's peak memory is its own);
  * XGBoost: tree_method=hist, grow_policy=lossguide, max_leaves = num_leaves, max_depth=0,
    eta 0.1, max_bin 255, min_child_weight 1e-3 (LightGBM's min_sum_hessian_in_leaf).
Then scoring on the test file with the 1M-row, 31-leaf models: predict rows/s (Augur's
predict() over the file in SQL; LightGBM's booster.predict on the array already in memory)
and explain rows/s (Augur's explain(); LightGBM's pred_contrib) on 50,000 rows.
Ratios are peer ÷ augur (above 1: augur is faster). Writes benches/results/gbdt.md.

Usage: python3 benches/gbdt.py [--sizes 1000000,10000000] [--leaves 31,255] [--augur PATH]
Needs: pip install lightgbm xgboost-cpu pyarrow pandas numpy; cargo build --release.
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
from common import augur, release_binary, run_time  # noqa: E402

FEATURES = [f"f{i:02d}" for i in range(28)]


def make(path, rows, seed):
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 28)).astype(np.float64)
    logit = (x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.5 * x[:, 3] ** 2 - 0.5
             + 0.8 * (x[:, 4] > 0.5) * x[:, 5] + 0.3 * x[:, 6:12].sum(axis=1) - 0.2 * np.abs(x[:, 12]))
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    df = pd.DataFrame(x, columns=FEATURES)
    df["y"] = y
    df.to_parquet(path, index=False, row_group_size=131072)


def auc(score, y):
    import numpy as np
    import pandas as pd
    ranks = pd.Series(score).rank(method="average").to_numpy()
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fit(kind, train, model_path, leaves, threads, launched):
    """Child process one: read the training file, fit, save the model. Prints JSON; its peak
    memory is the fit's alone. `whole` runs from the parent's launch to the end of the fit
    (interpreter start and imports included, as Augur's process start is)."""
    import pandas as pd
    t0 = time.perf_counter()
    df = pd.read_parquet(train)
    x, y = df[FEATURES].to_numpy(), df["y"].to_numpy()
    del df
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    if kind == "lightgbm":
        import lightgbm as lgb
        params = {"objective": "binary", "num_leaves": leaves, "learning_rate": 0.1, "max_bin": 255,
                  "num_threads": threads, "verbose": -1, "seed": 42}
        model = lgb.train(params, lgb.Dataset(x, y), num_boost_round=100)
        seconds = time.perf_counter() - t0
        model.save_model(model_path)
        version = lgb.__version__
    else:
        import xgboost as xgb
        params = {"objective": "binary:logistic", "tree_method": "hist", "grow_policy": "lossguide",
                  "max_leaves": leaves, "max_depth": 0, "eta": 0.1, "max_bin": 255, "nthread": threads,
                  "min_child_weight": 1e-3, "seed": 42}
        model = xgb.train(params, xgb.QuantileDMatrix(x, y, max_bin=255), num_boost_round=100)
        seconds = time.perf_counter() - t0
        model.save_model(model_path)
        version = xgb.__version__
    print(json.dumps({"load": load, "fit": seconds, "whole": time.time() - launched, "version": version}))


def score(kind, test, model_path, threads):
    """Child process two: held-out AUC, predict and pred_contrib throughput of the saved model."""
    import pandas as pd
    tdf = pd.read_parquet(test)
    tx, ty = tdf[FEATURES].to_numpy(), tdf["y"].to_numpy()
    if kind == "lightgbm":
        import lightgbm as lgb
        model = lgb.Booster(model_file=model_path, params={"num_threads": threads})
        predict = lambda a: model.predict(a)  # noqa: E731
        contrib = lambda a: model.predict(a, pred_contrib=True)  # noqa: E731
    else:
        import xgboost as xgb
        model = xgb.Booster(params={"nthread": threads}, model_file=model_path)
        predict = lambda a: model.inplace_predict(a)  # noqa: E731
        contrib = lambda a: model.predict(xgb.DMatrix(a), pred_contribs=True)  # noqa: E731
    t0 = time.perf_counter()
    scores = predict(tx)
    predict_s = time.perf_counter() - t0
    few = tx[:50000]
    t0 = time.perf_counter()
    contrib(few)
    explain_s = time.perf_counter() - t0
    print(json.dumps({"auc": auc(scores, ty), "predict_rows_s": len(tx) / predict_s,
                      "explain_rows_s": len(few) / explain_s}))


def measured(cmd):
    """(seconds, peak RSS in MB, stdout, stderr) of one child process."""
    with tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read()
    if status != 0:
        raise SystemExit(f"{cmd[:3]} failed: {text}")
    return wall, usage.ru_maxrss / 1024, out, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augur", default=release_binary())
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--leaves", default="31,255")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--fit", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--score", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit:
        kind, train, model_path, leaves, launched = args.fit
        fit(kind, train, model_path, int(leaves), args.threads, float(launched))
        return
    if args.score:
        kind, test, model_path = args.score
        score(kind, test, model_path, args.threads)
        return
    work = tempfile.mkdtemp(prefix="augur-gbdt-bench-")
    test = os.path.join(work, "test.parquet")
    make(test, 500_000, 2)
    rows = []
    scoring = None
    for n in (int(s) for s in args.sizes.split(",")):
        train = os.path.join(work, f"train_{n}.parquet")
        make(train, n, 1)
        for leaves in (int(x) for x in args.leaves.split(",")):
            db = os.path.join(work, f"db_{n}_{leaves}")
            wall, rss, out, _ = measured([args.augur, db, "-q", "-c",
                                          f"TRAIN MODEL m USING boosted_trees PREDICT y WITH (num_leaves = {leaves}, "
                                          f"num_iterations = 100, learning_rate = 0.1, max_bin = 255) "
                                          f"AS SELECT * FROM '{train}'"])
            info_out, _ = augur(args.augur, "DESCRIBE MODEL m", db=db)
            info = dict(line.split(",", 2)[1:] for line in info_out.splitlines()[1:] if line.count(",") >= 2)
            a_auc = float(augur(args.augur, f"SELECT auc_roc FROM evaluate(m, (SELECT * FROM '{test}'))", db=db)[0]
                          .splitlines()[-1])
            result = {"augur": {"whole": wall, "fit": float(info["fit seconds"]), "rss": rss, "auc": a_auc}}
            for kind in ("lightgbm", "xgboost"):
                model_path = os.path.join(work, f"{kind}.model")
                _, prss, pout, _ = measured([sys.executable, __file__, "--threads", str(args.threads),
                                             "--fit", kind, train, model_path, str(leaves), repr(time.time())])
                r = json.loads(pout.strip().splitlines()[-1])
                r["rss"] = prss
                _, _, sout, _ = measured([sys.executable, __file__, "--threads", str(args.threads),
                                          "--score", kind, test, model_path])
                r.update(json.loads(sout.strip().splitlines()[-1]))
                result[kind] = r
            rows.append((n, leaves, result))
            if scoring is None:
                _, err = augur(args.augur, ".timer on",
                               f"SELECT count(probability) FROM predict(m, (SELECT * FROM '{test}'))", db=db)
                predict_rs = 500_000 / run_time(err)
                _, err = augur(args.augur, ".timer on",
                               f"SELECT sum(raw_score) FROM explain(m, (SELECT * FROM '{test}' LIMIT 50000))", db=db)
                explain_rs = 50_000 / run_time(err)
                scoring = (n, leaves, predict_rs, explain_rs, result["lightgbm"], result["xgboost"])
            shutil.rmtree(db, ignore_errors=True)
        os.remove(train)
    lgb_v = rows[0][2]["lightgbm"]["version"]
    xgb_v = rows[0][2]["xgboost"]["version"]
    lines = [f"# Boosted trees benchmark — {time.strftime('%Y-%m-%d')}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores; {args.threads} threads for every peer; "
             f"LightGBM {lgb_v}, XGBoost {xgb_v} (hist, lossguide); augur release build. 28 features, "
             "100 trees, learning rate 0.1, max_bin 255; AUC on a separate 500,000-row test file.", "",
             "Training (seconds; ratio = peer ÷ augur, above 1: augur faster). *Whole* is from process "
             "launch to the trained model: Augur's whole `TRAIN MODEL` process (reading the Parquet file, "
             "storing the model); for the peers, interpreter start, imports, pandas reading the file, and "
             "the fit. *Fit* is binning + boosting (LightGBM's Dataset construction + train, XGBoost's "
             "QuantileDMatrix + train). Peak memory is of the training process.", "",
             "| rows | leaves | augur whole | augur fit | LightGBM whole | LightGBM fit | ratio whole / fit | XGBoost whole | XGBoost fit | ratio whole / fit | AUC augur | AUC LightGBM | AUC XGBoost | peak MB augur / LightGBM / XGBoost |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n, leaves, r in rows:
        a, l, x = r["augur"], r["lightgbm"], r["xgboost"]
        lines.append(f"| {n:,} | {leaves} | {a['whole']:.1f} | {a['fit']:.1f} | {l['whole']:.1f} | {l['fit']:.1f} | "
                     f"{l['whole'] / a['whole']:.2f} / {l['fit'] / a['fit']:.2f} | {x['whole']:.1f} | {x['fit']:.1f} | "
                     f"{x['whole'] / a['whole']:.2f} / {x['fit'] / a['fit']:.2f} | "
                     f"{a['auc']:.4f} | {l['auc']:.4f} | {x['auc']:.4f} | {a['rss']:.0f} / {l['rss']:.0f} / {x['rss']:.0f} |")
    if scoring:
        n, leaves, p, e, l, x = scoring
        lines += ["", f"Scoring with the {n:,}-row, {leaves}-leaf models (rows/s; ratio = augur ÷ peer):", "",
                  "| | augur | LightGBM | ratio | XGBoost | ratio |", "|---|---:|---:|---:|---:|---:|",
                  f"| predict (500,000 rows) | {p:,.0f} | {l['predict_rows_s']:,.0f} | {p / l['predict_rows_s']:.2f} | "
                  f"{x['predict_rows_s']:,.0f} | {p / x['predict_rows_s']:.2f} |",
                  f"| explain / pred_contrib (50,000 rows) | {e:,.0f} | {l['explain_rows_s']:,.0f} | "
                  f"{e / l['explain_rows_s']:.2f} | {x['explain_rows_s']:,.0f} | {e / x['explain_rows_s']:.2f} |",
                  "", "Augur's predict and explain read the test file in SQL; the peers score arrays already in memory."]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "gbdt.md"), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
