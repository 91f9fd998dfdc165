"""psycopg 3 against `augur serve` (port in argv[1]): parameters, binary cursors, server-side
style fetching, cancel, statement_timeout, errors with SQLSTATEs, notices from training.
Prints 'psycopg: all checks passed' when every check holds; raises otherwise."""

import sys
import threading
import time
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import errors

PORT = int(sys.argv[1])
DSN = f"host=127.0.0.1 port={PORT} dbname=augur user=augur connect_timeout=10"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


with psycopg.connect(DSN, autocommit=True) as conn:
    conn.execute(
        "CREATE TABLE people AS SELECT * FROM (VALUES "
        "(1, 'ada', 36.5, DATE '1815-12-10'), (2, 'alan', 41.0, DATE '1912-06-23'), "
        "(3, 'grace', NULL, DATE '1906-12-09')) v(id, name, score, born)"
    )
    # Parameters of several types, inferred by the server or sent typed by psycopg.
    rows = conn.execute(
        "SELECT id, name, born FROM people WHERE id >= %s AND name <> %s ORDER BY id",
        (2, "alan"),
    ).fetchall()
    check(rows == [(3, "grace", date(1906, 12, 9))], f"parameters: {rows}")
    one = conn.execute("SELECT %s::int + 1, %s::text || '!', %s::float8 * 2", (41, "hi", 1.25)).fetchone()
    check(one == (42, "hi!", 2.5), f"casts: {one}")
    # A NULL parameter and a NULL value.
    row = conn.execute("SELECT score FROM people WHERE name = %s", ("grace",)).fetchone()
    check(row == (None,), f"null: {row}")
    # Binary results.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, name, score, born FROM people ORDER BY id")
        rows = cur.fetchall()
        check(rows[0] == (1, "ada", 36.5, date(1815, 12, 10)), f"binary: {rows[0]}")
        check(len(rows) == 3, f"binary rows: {rows}")
    # Decimal values keep their digits.
    dec = conn.execute("SELECT CAST(12.345 AS DECIMAL(10, 3))").fetchone()[0]
    check(dec == Decimal("12.345"), f"decimal: {dec!r}")
    # executemany through the extended protocol.
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO people (id, name) VALUES (%s, %s)", [(4, "edsger"), (5, "barbara")])
    count = conn.execute("SELECT count(*) FROM people").fetchone()[0]
    check(count == 5, f"after executemany: {count}")
    # Errors carry SQLSTATEs psycopg maps to exception classes.
    for sql, kind in [
        ("SELECT * FROM missing", errors.UndefinedTable),
        ("SELECT missing FROM people", errors.UndefinedColumn),
        ("SELEC 1", errors.SyntaxError),
    ]:
        try:
            conn.execute(sql)
            raise AssertionError(f"{sql}: no error")
        except kind:
            pass
    # statement_timeout stops execution.
    conn.execute("SET statement_timeout = '300ms'")
    started = time.time()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3")
        raise AssertionError("statement_timeout: no error")
    except errors.QueryCanceled:
        check(time.time() - started < 5, "statement_timeout took too long")
    conn.execute("SET statement_timeout = 0")

# Cancel from another thread (psycopg's Connection.cancel sends a CancelRequest).
with psycopg.connect(DSN, autocommit=True) as conn:
    timer = threading.Timer(0.5, conn.cancel)
    timer.start()
    started = time.time()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3")
        raise AssertionError("cancel: no error")
    except errors.QueryCanceled:
        check(time.time() - started < 5, "cancel took too long")
    check(conn.execute("SELECT 1").fetchone() == (1,), "connection unusable after cancel")

# Training warnings arrive as NOTICE messages.
with psycopg.connect(DSN, autocommit=True) as conn:
    notices = []
    conn.add_notice_handler(lambda diag: notices.append((diag.severity, diag.message_primary)))
    summary = conn.execute(
        "TRAIN MODEL flat USING logistic_regression PREDICT y "
        "AS SELECT value AS x, 1 AS y FROM generate_series(1, 50)"
    ).fetchone()
    check(summary[0] == "flat", f"training summary: {summary}")
    check(
        any(sev == "NOTICE" and "constant" in msg for sev, msg in notices),
        f"no NOTICE about the constant label: {notices}",
    )

# Default (non-autocommit) connections: BEGIN/COMMIT are accepted.
with psycopg.connect(DSN) as conn:
    conn.execute("SELECT 1")
    conn.commit()
    conn.execute("SELECT 2")
    conn.rollback()

print("psycopg: all checks passed")
