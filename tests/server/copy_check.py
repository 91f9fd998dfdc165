"""COPY and transaction blocks against `augur serve` (port in argv[1]) with psycopg 3:
COPY FROM STDIN in text, CSV and binary, COPY TO STDOUT in all three, a malformed row
(the error names the line; nothing stored), CopyFail mid-stream, a client that disconnects
mid-COPY (nothing stored, the server carries on), and PostgreSQL's transaction rules:
ROLLBACK and ROLLBACK TO undo, a failed block refuses statements, a table another block
holds cannot be written. Prints 'copy: all checks passed'."""

import socket
import struct
import sys
from datetime import date, datetime
from decimal import Decimal

import psycopg
from psycopg import errors

PORT = int(sys.argv[1])
DSN = f"host=127.0.0.1 port={PORT} dbname=augur user=augur connect_timeout=10"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def count(conn, table):
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


with psycopg.connect(DSN, autocommit=True) as conn:
    conn.execute(
        "CREATE TABLE loans (id BIGINT, name TEXT, amount DECIMAL(12, 2), rate DOUBLE, "
        "ok BOOLEAN, opened DATE, seen TIMESTAMP)"
    )
    rows = [
        (1, "ada", Decimal("100.50"), 0.05, True, date(2024, 1, 31), datetime(2024, 1, 31, 9, 30)),
        (2, None, None, None, None, None, None),
        (3, "tab\there, \"quoted\"\nnewline", Decimal("-7.25"), -1.5, False, date(1999, 12, 31),
         datetime(2000, 1, 1, 0, 0, 1)),
    ]
    # Text format, row by row as psycopg writes it (escapes, \N for NULL).
    with conn.cursor().copy("COPY loans FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    check(count(conn, "loans") == 3, "text copy count")
    back = conn.execute("SELECT * FROM loans ORDER BY id").fetchall()
    check(back == rows, f"text copy round trip:\n{back}\n{rows}")
    # Binary format with the column types psycopg is told.
    with conn.cursor().copy("COPY loans FROM STDIN (FORMAT binary)") as copy:
        copy.set_types(["int8", "text", "numeric", "float8", "bool", "date", "timestamp"])
        for row in rows:
            copy.write_row((row[0] + 10,) + row[1:])
    back = conn.execute("SELECT * FROM loans WHERE id > 10 ORDER BY id").fetchall()
    check(back == [(r[0] + 10,) + r[1:] for r in rows], f"binary copy round trip: {back}")
    # CSV with a header, a column list, quoted fields and empty (NULL) values, in chunks.
    data = 'name,id\n"x, ""y""",21\n,22\n""' + ",23\n"
    with conn.cursor().copy("COPY loans (name, id) FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
        for i in range(0, len(data), 5):
            copy.write(data[i : i + 5])
    back = conn.execute("SELECT id, name, amount FROM loans WHERE id > 20 ORDER BY id").fetchall()
    check(back == [(21, 'x, "y"', None), (22, None, None), (23, "", None)], f"csv copy: {back}")
    # Out again in the three formats.
    with conn.cursor().copy("COPY (SELECT id, name FROM loans WHERE id <= 3 ORDER BY id) TO STDOUT") as copy:
        out = [row for row in copy.rows()]
    check(out == [("1", "ada"), ("2", None), ("3", rows[2][1])], f"copy out text: {out}")
    with conn.cursor().copy("COPY (SELECT id, name FROM loans WHERE id <= 2 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)") as copy:
        text = b"".join(bytes(chunk) for chunk in copy).decode()
    check(text == "id,name\n1,ada\n2,\n", f"copy out csv: {text!r}")
    with conn.cursor().copy("COPY (SELECT id, amount, opened FROM loans WHERE id <= 3 ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
        copy.set_types(["int8", "numeric", "date"])
        out = list(copy.rows())
    check(out == [(r[0], r[2], r[5]) for r in rows], f"copy out binary: {out}")
    with conn.cursor().copy("COPY (SELECT id FROM loans WHERE id < 0) TO STDOUT (FORMAT binary)") as copy:
        copy.set_types(["int8"])
        check(list(copy.rows()) == [], "empty binary copy")

    # A malformed row: the error names the line and the column, nothing is stored.
    before = count(conn, "loans")
    try:
        with conn.cursor().copy("COPY loans (id, name) FROM STDIN (FORMAT csv)") as copy:
            copy.write("30,a\n31,b\nthirty-two,c\n33,d\n")
        raise AssertionError("a malformed row was accepted")
    except psycopg.Error as e:
        message = str(e)
        check("line 3" in message and "id" in message and "thirty-two" in message, message)
        # The load's own words, not those of the table writer it passed through.
        check("COPY loans, line 3" in message and "DeltaTable" not in message, message)
        check(e.sqlstate == "22P02", f"sqlstate {e.sqlstate}")
    check(count(conn, "loans") == before, "malformed copy stored rows")
    # Too few fields.
    try:
        with conn.cursor().copy("COPY loans (id, name) FROM STDIN (FORMAT csv)") as copy:
            copy.write("40,a\n41\n")
        raise AssertionError("a short row was accepted")
    except psycopg.Error as e:
        check("line 2" in str(e) and "missing data" in str(e), str(e))
    # CopyFail from the client, mid-stream.
    try:
        with conn.cursor().copy("COPY loans (id) FROM STDIN") as copy:
            copy.write("50\n51\n")
            raise RuntimeError("client gives up")
    except RuntimeError:
        pass
    check(count(conn, "loans") == before, "CopyFail stored rows")
    check(conn.execute("SELECT 1").fetchone() == (1,), "connection after CopyFail")

# A client that disconnects mid-COPY: nothing is stored, the server goes on.
raw = psycopg.connect(DSN, autocommit=True)
copy_cm = raw.cursor().copy("COPY loans (id) FROM STDIN")
copy = copy_cm.__enter__()
copy.write("60\n61\n62\n")
socket.socket(fileno=raw.pgconn.socket).shutdown(socket.SHUT_RDWR)
try:
    raw.close()
except Exception:
    pass

with psycopg.connect(DSN, autocommit=True) as conn:
    left = conn.execute("SELECT count(*) FROM loans WHERE id >= 60").fetchone()[0]
    check(left == 0, f"rows from a disconnected COPY: {left}")

    # ROLLBACK undoes a COPY, an INSERT and a CREATE TABLE made in the block.
    before = count(conn, "loans")
    with psycopg.connect(DSN) as tx:
        with tx.cursor().copy("COPY loans (id) FROM STDIN") as copy:
            copy.write("70\n71\n")
        tx.execute("INSERT INTO loans (id) VALUES (72)")
        tx.execute("CREATE TABLE scratch AS SELECT 1 AS x")
        check(count(tx, "loans") == before + 3, "inside the block")
        tx.rollback()
    check(count(conn, "loans") == before, "rollback kept rows")
    try:
        conn.execute("SELECT * FROM scratch")
        raise AssertionError("rolled back table exists")
    except errors.UndefinedTable:
        pass
    # ROLLBACK TO a savepoint undoes only what came after it.
    with psycopg.connect(DSN) as tx:
        tx.execute("INSERT INTO loans (id) VALUES (80)")
        with tx.transaction():
            tx.execute("INSERT INTO loans (id) VALUES (81)")
        try:
            with tx.transaction():
                tx.execute("INSERT INTO loans (id) VALUES (82)")
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
        tx.commit()
    ids = [r[0] for r in conn.execute("SELECT id FROM loans WHERE id >= 80 ORDER BY id")]
    check(ids == [80, 81], f"savepoints: {ids}")
    # A failed block refuses statements until ROLLBACK (25P02); COMMIT then rolls back.
    with psycopg.connect(DSN) as tx:
        tx.execute("INSERT INTO loans (id) VALUES (90)")
        try:
            tx.execute("SELECT * FROM missing")
        except errors.UndefinedTable:
            pass
        try:
            tx.execute("SELECT 1")
            raise AssertionError("a failed block ran a statement")
        except errors.InFailedSqlTransaction:
            pass
        tx.rollback()
    check(conn.execute("SELECT count(*) FROM loans WHERE id = 90").fetchone()[0] == 0, "failed block")
    # ROLLBACK TO a savepoint recovers a failed block: ReadyForQuery says 'T' again, over
    # the extended protocol and over the simple one (pgconn.exec_ sends a Query message).
    with psycopg.connect(DSN) as tx:
        tx.execute("INSERT INTO loans (id) VALUES (95)")
        tx.execute("SAVEPOINT before_error")
        try:
            tx.execute("SELECT * FROM missing")
        except errors.UndefinedTable:
            pass
        status = psycopg.pq.TransactionStatus
        check(tx.info.transaction_status == status.INERROR, f"failed: {tx.info.transaction_status}")
        tx.execute("ROLLBACK TO SAVEPOINT before_error", prepare=True)
        check(tx.info.transaction_status == status.INTRANS, f"recovered: {tx.info.transaction_status}")
        tx.execute("SELECT %s::int", (1,))
        tx.commit()
    check(conn.execute("SELECT count(*) FROM loans WHERE id = 95").fetchone()[0] == 1, "recovered block")
    with psycopg.connect(DSN) as tx:
        pg = tx.pgconn
        status = psycopg.pq.TransactionStatus
        for sql in [b"BEGIN", b"INSERT INTO loans (id) VALUES (96)", b"SAVEPOINT s1"]:
            pg.exec_(sql)
        check(pg.transaction_status == status.INTRANS, f"simple, in block: {pg.transaction_status}")
        pg.exec_(b"SELECT * FROM missing")
        check(pg.transaction_status == status.INERROR, f"simple, failed: {pg.transaction_status}")
        pg.exec_(b"ROLLBACK TO SAVEPOINT s1")
        check(pg.transaction_status == status.INTRANS, f"simple, recovered: {pg.transaction_status}")
        # Several statements in one Query: the letter is the state after the last.
        pg.exec_(b"SELECT * FROM missing; SELECT 1")
        check(pg.transaction_status == status.INERROR, f"simple, failed again: {pg.transaction_status}")
        pg.exec_(b"ROLLBACK TO s1; INSERT INTO loans (id) VALUES (97)")
        check(pg.transaction_status == status.INTRANS, f"simple, two statements: {pg.transaction_status}")
        pg.exec_(b"COMMIT")
        check(pg.transaction_status == status.IDLE, f"simple, committed: {pg.transaction_status}")
    ids = [r[0] for r in conn.execute("SELECT id FROM loans WHERE id IN (96, 97) ORDER BY id")]
    check(ids == [96, 97], f"simple-protocol block: {ids}")
    # A table one block changed cannot be written by another connection until it ends.
    with psycopg.connect(DSN) as tx:
        tx.execute("INSERT INTO loans (id) VALUES (100)")
        try:
            conn.execute("INSERT INTO loans (id) VALUES (101)")
            raise AssertionError("wrote a table another block holds")
        except errors.LockNotAvailable as e:
            check("another connection" in str(e), str(e))
        # Reading it is fine, and so is writing another table.
        conn.execute("SELECT count(*) FROM loans")
        conn.execute("CREATE TABLE elsewhere AS SELECT 1 AS x")
        tx.commit()
    conn.execute("INSERT INTO loans (id) VALUES (101)")
    ids = [r[0] for r in conn.execute("SELECT id FROM loans WHERE id >= 100 ORDER BY id")]
    check(ids == [100, 101], f"after the block: {ids}")
    # SAVEPOINT outside a block is PostgreSQL's error.
    try:
        conn.execute("SAVEPOINT s")
        raise AssertionError("SAVEPOINT outside a block")
    except errors.NoActiveSqlTransaction:
        pass

print("copy: all checks passed")
