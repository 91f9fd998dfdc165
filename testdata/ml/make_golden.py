#!/usr/bin/env python3
"""Reference coefficients for Augur's logistic-regression golden tests, from scikit-learn.

Spark's objective (1/n) Σ logloss + λ[α‖β·σ‖₁ + (1−α)/2 ‖β·σ‖²] on features standardized with
the unbiased σ equals scikit-learn's LogisticRegression(solver='saga', l1_ratio=α,
C=1/(n·λ)) on features centered and divided by σ (ddof=1); coefficients are divided back by
σ and the intercept moved back by Σ β·μ.  λ = 0 uses lbfgs without a penalty.  For a case
whose coefficients are all zero the intercept is the exact optimum logit(ȳ).

Writes testdata/ml/golden.csv (the data) and testdata/ml/golden.json (cases and references).
The string column `segment` is one-hot encoded as Spark's StringIndexer + OneHotEncoder do
(categories by frequency, ties by value, the last dropped).  Run: python3 testdata/ml/make_golden.py
"""
import json
import os
import random
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    {"name": "unregularized", "reg_param": 0.0, "elastic_net_param": 0.0},
    {"name": "l2", "reg_param": 0.05, "elastic_net_param": 0.0},
    {"name": "elastic_net", "reg_param": 0.01, "elastic_net_param": 0.5},
    {"name": "lasso", "reg_param": 0.004, "elastic_net_param": 1.0},
    {"name": "all_zero", "reg_param": 0.3, "elastic_net_param": 0.8},
]


def make_rows(n=1500, seed=11):
    rng = random.Random(seed)
    segments = ["retail", "sme", "corporate", "private"]
    weights = [0.5, 0.25, 0.15, 0.10]
    effect = {"retail": 0.0, "sme": 0.4, "corporate": -0.6, "private": 0.9}
    rows = []
    for _ in range(n):
        amount = rng.lognormvariate(6.0, 0.8)
        age = rng.randint(18, 80)
        utilisation = rng.random()
        segment = rng.choices(segments, weights)[0]
        z = -2.0 + 0.0006 * amount - 0.02 * (age - 45) + 1.8 * utilisation + effect[segment]
        label = 1 if rng.random() < 1 / (1 + np.exp(-z)) else 0
        rows.append((round(amount, 2), age, round(utilisation, 4), segment, label))
    return rows


def encode(rows):
    counts = {}
    for r in rows:
        counts[r[3]] = counts.get(r[3], 0) + 1
    order = sorted(counts, key=lambda c: (-counts[c], c))[:-1]  # last one dropped
    names = ["amount", "age", "utilisation"] + [f"segment={c}" for c in order]
    x = np.array([[r[0], r[1], r[2]] + [1.0 if r[3] == c else 0.0 for c in order] for r in rows])
    y = np.array([r[4] for r in rows], dtype=float)
    return names, x, y


def fit(x, y, reg, alpha):
    n = len(y)
    mu = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    z = (x - mu) / sd
    if reg == 0:
        model = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-12, max_iter=100000)
    else:
        model = LogisticRegression(C=1.0 / (n * reg), l1_ratio=alpha, solver="saga",
                                   tol=1e-13, max_iter=1000000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(z, y)
    beta = model.coef_[0] / sd
    intercept = model.intercept_[0] - float(beta @ mu)
    return [float(b) for b in beta], float(intercept)


def main():
    rows = make_rows()
    with open(os.path.join(HERE, "golden.csv"), "w") as f:
        f.write("amount,age,utilisation,segment,label\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    names, x, y = encode(rows)
    out = {"features": names, "rows": len(rows), "cases": []}
    for case in CASES:
        coef, intercept = fit(x, y, case["reg_param"], case["elastic_net_param"])
        if all(c == 0.0 for c in coef):
            # With every coefficient zero the exact optimum of the intercept is logit(mean y);
            # saga stops short of it under strong regularisation, so the exact value is used.
            intercept = float(np.log(y.sum() / (len(y) - y.sum())))
        out["cases"].append(dict(case, coefficients=coef, intercept=intercept))
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
