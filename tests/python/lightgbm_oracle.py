"""LightGBM as the oracle for Augur's boosted trees (run by tests/gbdt.rs).

Subcommands:
  import-data DIR ROWS      data with numbers, categories and many NULLs; LightGBM binary and
                            regression models trained on it; their raw scores (every row) and
                            pred_contrib (rows with id < CONTRIB_ROWS)
  check-scores DIR NAME     compare Augur's raw scores (DIR/augur_NAME_raw.csv, every row)
                            and explain() output (DIR/augur_NAME.csv) with LightGBM's
                            (DIR/lgb_NAME.csv): raw within 1e-12, contributions within 1e-9
  score-export DIR NAME     load Augur's exported DIR/NAME.txt in LightGBM, score DIR/data.csv
                            and compare the same way
  quality DIR LABEL OBJ P   train LightGBM with params P (JSON) on rows held = false of
                            DIR/quality.csv, print the held-out AUC or RMSE as JSON
  synthetic DIR KIND ROWS   write DIR/quality.csv: 'classification' (28 features, interactions)
                            or 'regression', with an id
Every comparison prints one JSON line and exits 1 with the worst row when it fails.
"""
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd

CATEGORIES = ["cat1", "cat2"]
CONTRIB_ROWS = 5000


def write_csv(df, path):
    df.to_csv(path, index=False, float_format="%.17g", na_rep="")


def import_data(d, rows):
    rng = np.random.default_rng(7)
    n = int(rows)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-5, 5, n)
    x3 = rng.exponential(2.0, n)
    x4 = rng.integers(0, 20, n).astype(float)
    x5 = np.round(rng.normal(100, 30, n), 2)
    c1 = rng.choice(list("abcdefgh"), n)
    c2 = rng.choice([f"k{i:02d}" for i in range(30)], n)
    effect1 = dict(zip("abcdefgh", rng.normal(0, 1, 8)))
    effect2 = {f"k{i:02d}": v for i, v in enumerate(rng.normal(0, 0.7, 30))}
    logit = (0.8 * x1 - 0.3 * x2 + 0.4 * np.log1p(x3) + 0.05 * (x4 - 10)
             + np.vectorize(effect1.get)(c1) + np.vectorize(effect2.get)(c2)
             + 0.5 * x1 * (x2 > 0) - 0.01 * (x5 - 100))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    target = 3 * x1 + np.sin(x2) * 2 + np.vectorize(effect1.get)(c1) * 4 + rng.normal(0, 1, n)
    df = pd.DataFrame({"id": np.arange(n), "x1": x1, "x2": x2, "x3": x3, "x4": x4, "x5": x5,
                       "cat1": c1, "cat2": c2, "y": y, "target": target})
    # NULL-heavy: whole columns mostly missing, and missing categories.
    for col, share in [("x2", 0.3), ("x3", 0.6), ("x5", 0.05), ("cat1", 0.1), ("cat2", 0.02)]:
        df.loc[rng.random(n) < share, col] = np.nan
    write_csv(df, f"{d}/data.csv")
    features = ["x1", "x2", "x3", "x4", "x5", "cat1", "cat2"]
    X = df[features].copy()
    for c in CATEGORIES:
        X[c] = X[c].astype("category")
    for name, label, objective in [("binary", "y", "binary"), ("regression", "target", "regression")]:
        params = {"objective": objective, "num_leaves": 31, "learning_rate": 0.1, "verbose": -1,
                  "num_threads": 2, "seed": 3, "min_data_per_group": 50, "cat_smooth": 5}
        booster = lgb.train(params, lgb.Dataset(X, df[label]), num_boost_round=60)
        booster.save_model(f"{d}/{name}.txt")
        write_csv(expected(booster, df, X, features), f"{d}/lgb_{name}.csv")
    print(json.dumps({"rows": n}))


def expected(booster, df, X, features):
    """Raw scores of every row; contributions of the first CONTRIB_ROWS (TreeSHAP is slow)."""
    out = pd.DataFrame({"id": df["id"], "raw_score": booster.predict(X, raw_score=True)})
    few = df["id"] < CONTRIB_ROWS
    contrib = booster.predict(X[few], pred_contrib=True)
    out.loc[few, "bias"] = contrib[:, -1]
    for i, f in enumerate(features):
        out.loc[few, f"contribution_{f}"] = contrib[:, i]
    return out


def compare_all(d, name, want):
    raw = compare(want[["id", "raw_score"]], pd.read_csv(f"{d}/augur_{name}_raw.csv"), 1e-12, 1e-9)
    if not raw["ok"]:
        return raw
    few = want[want["id"] < CONTRIB_ROWS]
    contrib = compare(few, pd.read_csv(f"{d}/augur_{name}.csv")[few.columns], 1e-12, 1e-9)
    contrib["raw_rows"] = raw["rows"]
    return contrib


def compare(expected, actual, raw_tol, contrib_tol):
    e = expected.set_index("id").sort_index()
    a = actual.set_index("id").sort_index()
    if len(e) != len(a) or not (e.index == a.index).all():
        return {"ok": False, "why": f"rows differ: {len(e)} expected, {len(a)} from Augur"}
    worst = {}
    ok = True
    for col in e.columns:
        if col not in a.columns:
            return {"ok": False, "why": f"Augur's output has no column {col}"}
        diff = np.abs(e[col].to_numpy(float) - a[col].to_numpy(float))
        m = float(np.nanmax(diff))
        tol = raw_tol if col == "raw_score" else contrib_tol
        worst[col] = m
        if not m <= tol:
            i = int(np.nanargmax(diff))
            ok = False
            worst["failed"] = f"{col} row id {e.index[i]}: LightGBM {e[col].iloc[i]!r}, Augur {a[col].iloc[i]!r}"
    return {"ok": ok, "rows": len(e), "max_abs_diff": worst}


def check_scores(d, name):
    return compare_all(d, name, pd.read_csv(f"{d}/lgb_{name}.csv"))


def score_export(d, name):
    booster = lgb.Booster(model_file=f"{d}/{name}.txt")
    df = pd.read_csv(f"{d}/data.csv")
    features = booster.feature_name()
    X = df[features].copy()
    for c in features:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype("category")
    return compare_all(d, name, expected(booster, df, X, features))


def synthetic(d, kind, rows):
    rng = np.random.default_rng(11)
    n = int(rows)
    X = rng.normal(size=(n, 28))
    if kind == "classification":
        logit = (X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + 0.5 * X[:, 3] ** 2 - 0.5
                 + 0.8 * (X[:, 4] > 0.5) * X[:, 5] + 0.3 * X[:, 6:12].sum(axis=1) - 0.2 * np.abs(X[:, 12]))
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    else:
        y = (X[:, 0] * X[:, 1] * 2 + np.sin(2 * X[:, 2]) * 3 + X[:, 3] ** 2
             + 1.5 * X[:, 4:10].sum(axis=1) + rng.normal(0, 1, n))
    df = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(28)])
    df.insert(0, "id", np.arange(n))
    df["y"] = y
    write_csv(df, f"{d}/quality.csv")
    print(json.dumps({"rows": n}))


def quality(d, label, objective, params):
    df = pd.read_csv(f"{d}/quality.csv")
    held = df["held"].astype(str).str.lower() == "true"
    drop = {label, "held", "id", "customer_id", "transaction_date"}
    features = [c for c in df.columns if c not in drop]
    X = df[features].copy()
    for c in features:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype("category")
    p = {"objective": objective, "verbose": -1, "num_threads": 2, "seed": 42}
    p.update(json.loads(params))
    rounds = p.pop("num_iterations", 100)
    booster = lgb.train(p, lgb.Dataset(X[~held], df.loc[~held, label]), num_boost_round=rounds)
    pred = booster.predict(X[held])
    truth = df.loc[held, label].to_numpy(float)
    if objective == "binary":
        ranks = pd.Series(pred).rank(method="average").to_numpy()
        pos = truth == 1
        n1, n0 = pos.sum(), (~pos).sum()
        auc = (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        return {"auc": float(auc), "rows": int(held.sum())}
    return {"rmse": float(np.sqrt(np.mean((pred - truth) ** 2))), "rows": int(held.sum())}


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "import-data":
        import_data(*args)
        return
    if cmd == "synthetic":
        synthetic(*args)
        return
    result = {"check-scores": check_scores, "score-export": score_export, "quality": quality}[cmd](*args)
    print(json.dumps(result))
    if result.get("ok") is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
