#!/usr/bin/env python3
"""Generate testdata/transactions.csv: the seed credit-risk dataset, deterministically.

Usage: python3 testdata/gen_transactions.py [ROWS] [SEED] > testdata/transactions.csv

Columns are the seed's (customer_id, transaction_date, transaction_amount,
transaction_type) plus age, balance, prior_defaults, merchant_category and the
0/1 label risk_score.  The label follows a known logistic model (LABEL_MODEL
below) so trained coefficients can be checked against it.  About 1% of the
feature values are empty (NULL).  Pure standard library: same output on every
machine for the same ROWS and SEED.
"""
import datetime
import math
import random
import sys

TYPES = ["purchase", "withdrawal", "transfer", "payment", "refund"]
TYPE_WEIGHTS = [0.45, 0.2, 0.15, 0.15, 0.05]
MERCHANTS = ["grocery", "travel", "electronics", "gambling", "utilities", "restaurants"]
MERCHANT_WEIGHTS = [0.3, 0.1, 0.15, 0.05, 0.2, 0.2]

# log-odds of risk_score = 1
LABEL_MODEL = {
    "intercept": -3.0,
    "amount_per_1000": 0.35,
    "age_minus_40_per_10": -0.25,
    "balance_per_10000": -0.30,
    "prior_defaults": 0.9,
    "type": {"withdrawal": 0.4, "transfer": 0.6, "refund": -0.5},
    "merchant": {"gambling": 1.2, "travel": 0.3, "electronics": 0.2},
}
NULL_RATE = 0.01


def row(rng, i):
    customer = 1000 + rng.randrange(0, 2000)
    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(0, 366))
    amount = round(rng.lognormvariate(5.5, 1.0), 2)
    ttype = rng.choices(TYPES, TYPE_WEIGHTS)[0]
    age = rng.randint(18, 85)
    balance = round(max(0.0, rng.gauss(8000, 6000)), 2)
    prior = min(5, int(rng.expovariate(2.0)))
    merchant = rng.choices(MERCHANTS, MERCHANT_WEIGHTS)[0]
    m = LABEL_MODEL
    z = (m["intercept"] + m["amount_per_1000"] * amount / 1000
         + m["age_minus_40_per_10"] * (age - 40) / 10
         + m["balance_per_10000"] * balance / 10000
         + m["prior_defaults"] * prior
         + m["type"].get(ttype, 0.0) + m["merchant"].get(merchant, 0.0))
    label = 1 if rng.random() < 1 / (1 + math.exp(-z)) else 0
    values = [customer, day.isoformat(), f"{amount:.2f}", ttype, age,
              f"{balance:.2f}", prior, merchant]
    # NULLs in the features only; the label is always present
    values = ["" if j > 0 and rng.random() < NULL_RATE else v for j, v in enumerate(values)]
    return values + [label]


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 42
    rng = random.Random(seed)
    out = sys.stdout
    out.write("customer_id,transaction_date,transaction_amount,transaction_type,"
              "age,balance,prior_defaults,merchant_category,risk_score\n")
    for i in range(rows):
        out.write(",".join(str(v) for v in row(rng, i)) + "\n")


if __name__ == "__main__":
    main()
