"""asyncpg against `augur serve` (port in argv[1]): it speaks only the extended protocol and
decodes results in binary. Prints 'asyncpg: all checks passed' or raises."""

import asyncio
import sys

import asyncpg


async def main(port):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="augur", database="augur",
                                 timeout=10)
    await conn.execute(
        "CREATE TABLE a AS SELECT * FROM (VALUES (1, 'x', 1.5), (2, 'y', NULL)) v(id, s, f)"
    )
    rows = await conn.fetch("SELECT id, s, f FROM a WHERE id >= $1 ORDER BY id", 1)
    assert [tuple(r) for r in rows] == [(1, "x", 1.5), (2, "y", None)], rows
    assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
    statement = await conn.prepare("SELECT s FROM a WHERE id = $1")
    assert [await statement.fetchval(i) for i in (1, 2)] == ["x", "y"]
    try:
        await conn.fetch("SELECT * FROM missing")
        raise AssertionError("no error for a missing table")
    except asyncpg.exceptions.UndefinedTableError:
        pass
    await conn.close()
    print("asyncpg: all checks passed")


asyncio.run(main(int(sys.argv[1])))
