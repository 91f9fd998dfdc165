#!/usr/bin/env python3
"""Expected values of tests/slt/udfs.slt, computed without Augur: numpy, scikit-learn
(roc_auc_score, log_loss, brier_score_loss), scipy (ks_2samp) and a Python copy of the
split hash of udfs/src/split.rs. Prints each value as the slt runner shows it (6 decimals).

Usage: python3 udfs/testdata/slt_expected.py   (needs numpy, scikit-learn, scipy)
"""
import math
import numpy as np
from sklearn.metrics import roc_auc_score, log_loss, brier_score_loss
from scipy.stats import ks_2samp

def fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NULL"
    r = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if r == "-0" else r

v = np.arange(1, 20001)
raw = v * 7919 % 1000
score = raw / 1000.0
p = (raw + 0.5) / 1000.0
label = ((raw / 1000.0 + (v * 31 % 17) / 17.0) > 1.0).astype(int)
score_ok = v % 10 != 0
label_ok = v % 7 != 0
e = np.where(v % 13 == 0, 0.0, ((v % 10) + 1) / 55.0)
a = np.where(v % 17 == 0, 0.0, ((v * 3 % 11) + 1) / 66.0)
w = (v % 5).astype(float)
bin_i = np.where(v % 9 == 0, -999, np.where((label == 0) & (v % 50 == 1), 10, v % 6))  # -999 = NULL

def metrics(s, y, pp):
    auc = roc_auc_score(y, s)
    ks = ks_2samp(s[y == 1], s[y == 0]).statistic
    return dict(auc=auc, gini=2 * auc - 1, ks=ks, logloss=log_loss(y, pp), brier=brier_score_loss(y, pp))

print("all rows:", {k: fmt(x) for k, x in metrics(score, label, p).items()})
m = score_ok & label_ok
print("null-filtered (score_n, label_n):", {k: fmt(x) for k, x in metrics(score[m], label[m], p[m]).items()})
for g in range(3):
    sel = v % 3 == g
    mm = metrics(score[sel], label[sel], p[sel])
    print("group", g, fmt(mm["auc"]), fmt(mm["gini"]), fmt(mm["ks"]))
# single row v = 1
print("v=1: score", score[0], "p", p[0], "label", label[0], "logloss", fmt(-math.log(p[0]) if label[0] else -math.log(1 - p[0])), "brier", fmt((p[0] - label[0]) ** 2))

def woe_table(bins, y, numeric):
    keys = sorted(set(bins.tolist()) - {-999}, key=(lambda k: k) if numeric else (lambda k: "b%d" % k))
    if -999 in set(bins.tolist()):
        keys.append(-999)
    E = (y == 1).sum(); N = (y == 0).sum()
    rows = []; iv = 0.0
    for k in keys:
        sel = bins == k
        ev = int((y[sel] == 1).sum()); ne = int((y[sel] == 0).sum())
        ea, na = (ev + 0.5, ne + 0.5) if ev == 0 or ne == 0 else (ev, ne)
        de, dn = ea / E, na / N
        wv = math.log(dn / de)
        iv += (dn - de) * wv
        name = "NULL" if k == -999 else (str(k) if numeric else "b%d" % k)
        rows.append((name, ev, ne, fmt(wv)))
    return rows, iv

rows, iv = woe_table(bin_i, label, True)
print("woe int bins:"); [print(*r) for r in rows]; print("iv int:", fmt(iv))
rows, iv = woe_table(bin_i, label, False)
print("woe text bins:"); [print(*r) for r in rows]; print("iv text:", fmt(iv))
# woe with NULL labels (label_n): rows with NULL label dropped, NULL bins kept
rows, iv = woe_table(bin_i[label_ok], label[label_ok], True)
print("iv with null labels:", fmt(iv), "rows", rows[-1])

def psi(e, a):
    e = np.where(e <= 0, 1e-4, e); a = np.where(a <= 0, 1e-4, a)
    return float(np.sum((a - e) * np.log(a / e)))
print("psi all:", fmt(psi(e, a)))
print("psi null-filtered (e where v%10<>0):", fmt(psi(e[score_ok], a[score_ok])))
print("psi v=1:", fmt(psi(e[:1], a[:1])))
print("weighted_avg:", fmt(np.average(score, weights=w)))
print("weighted_avg null-filtered (score_n):", fmt(np.average(score[score_ok], weights=w[score_ok])))
print("winsorize sum:", fmt(np.clip(score, 0.1, 0.9).sum()), "per-row bounds:", fmt(np.clip(score, e, e + 0.5).sum()))

# hash_split: FNV-1a then SplitMix64 finaliser with the seed, on key text + 0x1f
M = (1 << 64) - 1
def unit_hash(key: bytes, seed: int) -> float:
    h = 0xcbf29ce484222325
    for b in key:
        h ^= b
        h = (h * 0x100000001b3) & M
    z = h ^ ((seed * 0x9e3779b97f4a7c15) & M)
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)
key = lambda x: (str(x) + "\x1f").encode()
print("hash_split(v, 42, 0.3) count:", sum(unit_hash(key(x), 42) < 0.3 for x in v.tolist()))
print("hash_split(v, v % 3, 0.5) count:", sum(unit_hash(key(x), x % 3) < 0.5 for x in v.tolist()))
print("hash_split(v=1, 42, 0.3):", unit_hash(key(1), 42) < 0.3)
print("hash_split(NULL, 42, 0.5):", unit_hash(b"\x00NULL\x1f", 42) < 0.5, unit_hash(b"\x00NULL\x1f", 42))
print("hash_split('abc', 1, 0.5):", unit_hash(b"abc\x1f", 1), unit_hash(b"abc\x1f", 1) < 0.5)

# small hand-sized woe example
print("small woe:", repr(math.log((1/2)/(1/2))), repr(math.log((1.5/2)/(0.5/2))), repr(math.log((0.5/2)/(1.5/2))))
print("small iv:", fmt(((1.5/2)-(0.5/2))*math.log(3) + ((0.5/2)-(1.5/2))*math.log(1/3)))
print("small psi:", fmt(sum((aa - ee) * math.log(aa / ee) for ee, aa in [(0.2, 0.25), (0.3, 0.25), (0.5, 0.5), (1e-4, 0.1)])))
ok = v % 4 != 0
print("weighted_avg with NULL weights (v%4=0):", fmt(np.average(score[ok], weights=w[ok])))
print("psi v=1 check:", fmt((4/66 - 2/55) * math.log((4/66) / (2/55))))
