"""Makes testdata/legacy/db: a database directory in the layout Augur wrote before stored
tables were Delta tables (catalog format 1: each table's Parquet files listed in
catalog.json, data under data/), for the upgrade test. The layout is the one
src/catalog/store.rs read and wrote up to commit 5a9fc0d: Parquet with ZSTD and no Arrow
schema metadata, column types in Arrow's Display form.

Usage: python3 testdata/legacy/make.py
"""

import datetime
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
DB = os.path.join(HERE, "db")
shutil.rmtree(DB, ignore_errors=True)
os.makedirs(os.path.join(DB, "data"))
os.makedirs(os.path.join(DB, "tmp"))

people = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("born", pa.date32()),
        pa.field("seen", pa.timestamp("ns")),
    ]
)
batches = [
    pa.table(
        {
            "id": [1, 2],
            "name": ["ann", None],
            "score": [1.5, None],
            "born": [datetime.date(1990, 1, 2), None],
            "seen": [datetime.datetime(2026, 1, 1, 10, 0, 0), None],
        },
        schema=people,
    ),
    pa.table(
        {
            "id": [3],
            "name": ["carl"],
            "score": [-2.25],
            "born": [datetime.date(2001, 12, 31)],
            "seen": [datetime.datetime(2026, 11, 30, 23, 59, 59)],
        },
        schema=people,
    ),
]
files = []
for i, t in enumerate(batches):
    rel = f"data/people-18000000000000000-1-{i}.parquet"
    pq.write_table(t.replace_schema_metadata(None), os.path.join(DB, rel), compression="zstd",
                   store_schema=False)
    files.append(rel)
totals = pa.table({"name": ["ann", None, "carl"], "total": [1.5, None, -2.25]})
rel = "data/totals-18000000000000000-1-2.parquet"
pq.write_table(totals, os.path.join(DB, rel), compression="zstd", store_schema=False)

catalog = {
    "format": 1,
    "generation": 4,
    "entries": [
        {
            "kind": "table",
            "name": "people",
            "columns": [
                {"name": "id", "type": "Int64", "nullable": False},
                {"name": "name", "type": "Utf8", "nullable": True},
                {"name": "score", "type": "Float64", "nullable": True},
                {"name": "born", "type": "Date32", "nullable": True},
                {"name": "seen", "type": "Timestamp(ns)", "nullable": True},
            ],
            "files": files,
        },
        {
            "kind": "table",
            "name": "totals",
            "columns": [
                {"name": "name", "type": "Utf8", "nullable": True},
                {"name": "total", "type": "Float64", "nullable": True},
            ],
            "files": [rel],
        },
        {
            "kind": "view",
            "name": "named",
            "sql": "CREATE VIEW named AS SELECT id, name FROM people WHERE name IS NOT NULL",
        },
    ],
    "models": [],
    "functions": [],
}
with open(os.path.join(DB, "catalog.json"), "w") as f:
    json.dump(catalog, f, indent=2)
