"""The Python data stack against `augur serve` (port in argv[1]): SQLAlchemy 2 with psycopg 3
and psycopg2 (connect, Inspector, Core, text() with parameters, begin_nested), pandas
(to_sql fail/append/replace, chunksize, method='multi', read_sql with parameters and
chunksize, a typed round trip with NULLs), a model trained and scored through SQLAlchemy,
ADBC (fetch_arrow_table, adbc_ingest create/append) and Polars (read_database_uri with
connectorx and ADBC, write_database). Prints 'python stack: all checks passed'."""

import sys
import warnings
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

warnings.filterwarnings("ignore")
PORT = int(sys.argv[1])
URL = f"postgresql://augur@127.0.0.1:{PORT}/augur"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def plain(df):
    """Rows as Python values with None for every kind of missing value."""
    return [
        tuple(None if pd.isna(v) else v for v in row)
        for row in df.astype(object).itertuples(index=False)
    ]


FRAME = pd.DataFrame(
    {
        "i": pd.array([1, None, 3], dtype="Int64"),
        "f": [1.5, None, -2.25],
        "s": ["a", None, "c"],
        "b": pd.array([True, None, False], dtype="boolean"),
        "d": [date(2024, 1, 31), None, date(2024, 2, 29)],
        "ts": [datetime(2024, 1, 1, 12, 30), None, datetime(2024, 3, 1, 1, 2, 3)],
        "amount": [Decimal("10.25"), None, Decimal("-3.50")],
    }
)
TYPES = {"amount": sa.Numeric(12, 2), "d": sa.Date(), "ts": sa.DateTime()}


def sqlalchemy_and_pandas(driver):
    engine = sa.create_engine(f"postgresql+{driver}://augur@127.0.0.1:{PORT}/augur")
    table = f"frame_{driver}"
    with engine.connect() as conn:
        check(conn.execute(sa.text("SELECT 1")).scalar() == 1, "select 1")
        version = conn.execute(sa.text("SELECT version()")).scalar()
        check(version.startswith("PostgreSQL ") and "Augur" in version, version)
    # to_sql: fail, then append, then replace (in chunks, several rows per INSERT).
    FRAME.to_sql(table, engine, index=False, dtype=TYPES)
    try:
        FRAME.to_sql(table, engine, index=False, if_exists="fail")
        raise AssertionError("if_exists='fail' on an existing table did not fail")
    except ValueError:
        pass
    FRAME.to_sql(table, engine, index=False, if_exists="append", dtype=TYPES)
    count = pd.read_sql(f"SELECT count(*) AS n FROM {table}", engine)["n"][0]
    check(count == 6, f"{driver}: after append {count}")
    FRAME.to_sql(
        table, engine, index=False, if_exists="replace", dtype=TYPES, chunksize=2, method="multi"
    )
    back = pd.read_sql(f"SELECT * FROM {table} ORDER BY i NULLS LAST", engine)
    expected = plain(FRAME.sort_values("i", na_position="last"))
    got = plain(back)
    check(got == expected, f"{driver}: round trip\n{got}\n!=\n{expected}")
    # read_sql with bound parameters and in chunks.
    one = pd.read_sql(sa.text(f"SELECT s FROM {table} WHERE i = :i"), engine, params={"i": 3})
    check(list(one["s"]) == ["c"], f"{driver}: parameters {one}")
    sizes = [len(c) for c in pd.read_sql(f"SELECT * FROM {table}", engine, chunksize=2)]
    check(sum(sizes) == 3 and max(sizes) <= 2, f"{driver}: chunks {sizes}")
    # Inspector.
    inspector = sa.inspect(engine)
    check(table in inspector.get_table_names(), f"{driver}: tables")
    check("public" in inspector.get_schema_names(), f"{driver}: schemas")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE VIEW {table}_v AS SELECT i, s FROM {table}"))
    check(f"{table}_v" in inspector.get_view_names(), f"{driver}: views")
    columns = {c["name"]: c for c in inspector.get_columns(table)}
    check(isinstance(columns["i"]["type"], sa.BigInteger), f"{driver}: i {columns['i']}")
    check(isinstance(columns["f"]["type"], sa.Float), f"{driver}: f {columns['f']}")
    check(isinstance(columns["s"]["type"], sa.String), f"{driver}: s {columns['s']}")
    check(isinstance(columns["amount"]["type"], sa.Numeric), f"{driver}: amount")
    check(inspector.get_pk_constraint(table)["constrained_columns"] == [], "pk")
    check(inspector.get_foreign_keys(table) == [], "fk")
    check(inspector.get_indexes(table) == [], "indexes")
    check(inspector.get_unique_constraints(table) == [], "unique")
    check(inspector.get_check_constraints(table) == [], "check")
    # Core on a reflected table.
    reflected = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(reflected.c.s).where(reflected.c.f < 0).order_by(reflected.c.i)
        ).fetchall()
        check(rows == [("c",)], f"{driver}: core select {rows}")
    # A savepoint rolled back undoes its insert; the outer transaction's stays.
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(sa.text(f"INSERT INTO {table} (i, s) VALUES (10, 'kept')"))
            nested = conn.begin_nested()
            conn.execute(sa.text(f"INSERT INTO {table} (i, s) VALUES (11, 'undone')"))
            nested.rollback()
    names = set(pd.read_sql(f"SELECT s FROM {table} WHERE i >= 10", engine)["s"])
    check(names == {"kept"}, f"{driver}: savepoint {names}")
    # A whole transaction rolled back leaves nothing behind, tables included.
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(sa.text(f"CREATE TABLE {table}_tmp AS SELECT 1 AS x"))
        conn.execute(sa.text(f"INSERT INTO {table} (i) VALUES (99)"))
        trans.rollback()
    check(f"{table}_tmp" not in sa.inspect(engine).get_table_names(), "rolled back create")
    left = pd.read_sql(f"SELECT count(*) AS n FROM {table} WHERE i = 99", engine)["n"][0]
    check(left == 0, f"{driver}: rolled back insert {left}")
    engine.dispose()


def model_through_sqlalchemy():
    engine = sa.create_engine(f"postgresql+psycopg://augur@127.0.0.1:{PORT}/augur")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE applicants AS SELECT x, CASE WHEN x * 7 % 10 < 4 THEN 1 ELSE 0 END "
                "AS y FROM (SELECT CAST(value AS DOUBLE) / 10 AS x FROM generate_series(1, 200))"
            )
        )
        conn.execute(sa.text("TRAIN MODEL risk USING logistic_regression PREDICT y AS SELECT x, y FROM applicants"))
    scored = pd.read_sql(
        sa.text("SELECT x, predict_proba('risk', x) AS p FROM applicants WHERE x < :cut ORDER BY x"),
        engine,
        params={"cut": 1.05},
    )
    check(len(scored) == 10, f"scored rows: {len(scored)}")
    check(scored["p"].between(0, 1).all(), f"probabilities: {scored['p'].tolist()}")
    engine.dispose()


def adbc_and_polars():
    import adbc_driver_postgresql.dbapi as adbc
    import polars as pl
    import pyarrow as pa

    with adbc.connect(URL) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 AS one, 'x' AS s, CAST(2.5 AS DOUBLE) AS f")
        table = cur.fetch_arrow_table()
        check(table.to_pylist() == [{"one": 1, "s": "x", "f": 2.5}], f"adbc read {table}")
        data = pa.table({"a": [1, 2, None], "b": ["x", None, "z"], "c": [0.5, 1.5, None]})
        n = cur.adbc_ingest("ingested", data, mode="create")
        conn.commit()
        check(n in (3, -1), f"adbc ingest rows {n}")
        cur.adbc_ingest("ingested", data.slice(0, 1), mode="append")
        conn.commit()
        cur.execute("SELECT a, b, c FROM ingested ORDER BY a NULLS LAST, b")
        rows = cur.fetch_arrow_table().to_pylist()
        check(len(rows) == 4 and rows[0] == {"a": 1, "b": "x", "c": 0.5}, f"adbc rows {rows}")
        check(rows[-1] == {"a": None, "b": "z", "c": None}, f"adbc nulls {rows}")
        cur.close()
    query = "SELECT a, b FROM ingested WHERE a IS NOT NULL ORDER BY a, b"
    for engine in ("connectorx", "adbc"):
        frame = pl.read_database_uri(query, URL, engine=engine)
        check(frame.to_dicts() == [{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": None}],
              f"polars {engine}: {frame}")
    pl.DataFrame({"k": [1, 2, 3], "v": ["p", "q", None]}).write_database("from_polars", URL, engine="adbc")
    back = pl.read_database_uri("SELECT k, v FROM from_polars ORDER BY k", URL, engine="connectorx")
    check(back.to_dicts()[2] == {"k": 3, "v": None}, f"polars write {back}")


for driver in ("psycopg", "psycopg2"):
    sqlalchemy_and_pandas(driver)
model_through_sqlalchemy()
adbc_and_polars()
print("python stack: all checks passed")
