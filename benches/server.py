"""`augur serve` against PostgreSQL (Debian's server), same machine, same run:
pgbench `SELECT 1` with 1 and 8 clients, a 10M-row result streamed to psycopg (rows/s),
memory with 64 idle connections (PSS from /proc, so shared pages are not counted twice),
bulk loading with COPY FROM STDIN (text, CSV, binary) and reading with COPY TO STDOUT and
ADBC (rows/s), and online scoring: one applicant per prepared statement from 8 clients
(Augur's predict_proba against PostgreSQL evaluating the same logistic formula in SQL).

Usage: python3 benches/server.py [--seconds 10] [--rows 10000000]
Needs a release build (benches/run.py makes it), pgbench and PostgreSQL 15 binaries
(apt-get install postgresql), psycopg (pip install 'psycopg[binary]'). Writes
benches/results/server.md."""
import argparse
import glob
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg

from common import release_binary

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class Augur:
    name = "Augur"

    def __init__(self, binary):
        self.port = free_port()
        # A database directory, as PostgreSQL has one: loads are committed to disk.
        self.dir = tempfile.mkdtemp(prefix="augur-bench-serve-")
        self.proc = subprocess.Popen(
            [binary, "serve", os.path.join(self.dir, "db"), "--listen", f"127.0.0.1:{self.port}"],
            stderr=subprocess.PIPE, text=True)
        self.banner = self.proc.stderr.readline().strip()
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=augur user=augur"
        self.pgbench_db = ["-U", "augur", "augur"]

    def pids(self):
        return [self.proc.pid]

    def version(self):
        return self.banner.split(" on ")[0]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    name = "PostgreSQL"

    def __init__(self):
        bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.dir = tempfile.mkdtemp(prefix="augur-bench-pg-")
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(run_as + [f"{bindir}/initdb", "-D", f"{self.dir}/data", "-A", "trust",
                                 "-U", "postgres"], check=True, capture_output=True)
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", f"{self.dir}/data", "-l",
                                 f"{self.dir}/log", "-w", "start", "-o",
                                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                                 f"-c max_connections=200"], check=True, capture_output=True)
        self.bindir, self.run_as = bindir, run_as
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"
        self.pgbench_db = ["-U", "postgres", "postgres"]
        with open(f"{self.dir}/data/postmaster.pid") as f:
            self.postmaster = int(f.readline())

    def pids(self):
        return [self.postmaster] + children(self.postmaster)

    def version(self):
        with psycopg.connect(self.dsn) as conn:
            return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]

    def stop(self):
        subprocess.run(self.run_as + [f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data", "-m",
                                      "fast", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbench(server, clients, seconds, script):
    out = subprocess.run(
        ["pgbench", "-n", "-f", script, "-c", str(clients), "-j", str(clients), "-T",
         str(seconds), "-h", "127.0.0.1", "-p", str(server.port)] + server.pgbench_db,
        capture_output=True, text=True)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if not match:
        raise RuntimeError(f"pgbench against {server.name} failed:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def stream_rows(server, rows):
    sql = f"SELECT value, value * 2 AS twice FROM generate_series(1, {rows})"
    if server.name == "PostgreSQL":
        sql = f"SELECT value, value * 2 AS twice FROM generate_series(1, {rows}) AS g(value)"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        started = time.perf_counter()
        seen = 0
        last = None
        with conn.cursor(binary=True) as cur:
            cur.execute(sql)
            while batch := cur.fetchmany(100_000):
                seen += len(batch)
                last = batch[-1]
        took = time.perf_counter() - started
    assert seen == rows and last[1] == 2 * last[0], (seen, last)
    return rows / took


COPY_TABLE = "CREATE TABLE loads (id BIGINT, amount DOUBLE PRECISION, name TEXT)"


def copy_data(pg, rows):
    """The same rows in the three COPY formats, made by PostgreSQL's own COPY TO STDOUT."""
    query = (f"SELECT g::bigint AS id, (g * 0.25)::float8 AS amount, 'name ' || (g % 1000) AS name "
             f"FROM generate_series(1, {rows}) g")
    out = {}
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for fmt in ("text", "csv", "binary"):
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT {fmt})") as copy:
                out[fmt] = b"".join(bytes(chunk) for chunk in copy)
    return out


def copy_in(server, data, fmt, rows):
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS loads")
        conn.execute(COPY_TABLE)
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY loads FROM STDIN (FORMAT {fmt})") as copy:
            view = memoryview(data)
            for at in range(0, len(view), 1 << 20):
                copy.write(view[at:at + (1 << 20)])
        took = time.perf_counter() - started
        loaded = conn.execute("SELECT count(*) FROM loads").fetchone()[0]
    assert loaded == rows, (server.name, fmt, loaded)
    return rows / took


def copy_out(server, fmt, rows):
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        started = time.perf_counter()
        size = 0
        with conn.cursor().copy(f"COPY loads TO STDOUT (FORMAT {fmt})") as copy:
            for chunk in copy:
                size += len(chunk)
        took = time.perf_counter() - started
    assert size > rows, (server.name, fmt, size)
    return rows / took


def adbc_read(server, rows):
    import adbc_driver_postgresql.dbapi as adbc
    uri = f"postgresql://{server.dsn.split('user=')[1]}@127.0.0.1:{server.port}/{server.dsn.split('dbname=')[1].split()[0]}"
    with adbc.connect(uri) as conn:
        cur = conn.cursor()
        started = time.perf_counter()
        cur.execute("SELECT * FROM loads")
        table = cur.fetch_arrow_table()
        took = time.perf_counter() - started
        cur.close()
    assert table.num_rows == rows, (server.name, table.num_rows)
    return rows / took


def train_scorer(augur):
    """A logistic model in Augur; its coefficients give PostgreSQL the same formula."""
    with psycopg.connect(augur.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE applicants AS SELECT value AS id, (value % 97) / 97.0 AS utilisation, "
            "(value % 13) AS inquiries, CASE WHEN (value * 7919) % 100 < 20 + (value % 13) * 3 "
            "THEN 1 ELSE 0 END AS default_flag FROM generate_series(1, 20000)")
        conn.execute("TRAIN MODEL risk USING logistic_regression PREDICT default_flag WITH "
                     "(reg_param = 0.01) AS SELECT utilisation, inquiries, default_flag FROM applicants")
        rows = conn.execute("DESCRIBE MODEL risk").fetchall()
    return {name: float(value) for section, name, value in rows if section == "coefficients"}


def score_latency(server, sql, clients, seconds, params):
    """Each client runs `sql` with its own applicant again and again: latencies and total rate."""
    import threading
    latencies = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def work(i):
        with psycopg.connect(server.dsn, autocommit=True, prepare_threshold=0) as conn:
            n = 0
            while time.perf_counter() < stop:
                started = time.perf_counter()
                value = conn.execute(sql, params(i, n)).fetchone()[0]
                latencies[i].append(time.perf_counter() - started)
                assert 0.0 <= value <= 1.0, value
                n += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    every = sorted(x for per in latencies for x in per)
    pick = lambda q: every[min(len(every) - 1, int(q * len(every)))] * 1000
    return {"p50": pick(0.50), "p99": pick(0.99), "rate": len(every) / took}


def idle_memory(server, count=64):
    before = pss_kib(server.pids())
    conns = [psycopg.connect(server.dsn, autocommit=True) for _ in range(count)]
    for c in conns:
        c.execute("SELECT 1").fetchone()
    time.sleep(1)
    after = pss_kib(server.pids())
    for c in conns:
        c.close()
    return before, after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    binary = release_binary()
    if not os.path.exists(binary):
        sys.exit(f"no release build at {binary}: run `cargo build --release` (benches/run.py does)")
    script = os.path.join(tempfile.mkdtemp(), "select1.sql")
    with open(script, "w") as f:
        f.write("SELECT 1;\n")
    results = {}
    pg_for_data = Postgres()
    try:
        data = copy_data(pg_for_data, args.rows)
    finally:
        pg_for_data.stop()
    coefficients = None
    for make in (lambda: Augur(binary), Postgres):
        server = make()
        try:
            name = server.name
            # Memory first, on a fresh server: after the streaming test the allocator keeps
            # what it freed, which would hide what connections cost.
            r = {}
            r["mem_before"], r["mem_after"] = idle_memory(server)
            print(f"{name}: PSS {r['mem_before']} KiB -> {r['mem_after']} KiB with 64 idle "
                  "connections", file=sys.stderr)
            r["version"] = server.version()
            for clients in (1, 8):
                r[f"tps{clients}"] = pgbench(server, clients, args.seconds, script)
                print(f"{name}: pgbench -c {clients}: {r[f'tps{clients}']:.0f} tps", file=sys.stderr)
            r["stream"] = stream_rows(server, args.rows)
            print(f"{name}: {args.rows} rows to psycopg: {r['stream']:.0f} rows/s", file=sys.stderr)
            for fmt in ("binary", "csv", "text"):
                r[f"in_{fmt}"] = copy_in(server, data[fmt], fmt, args.rows)
                print(f"{name}: COPY FROM STDIN {fmt}: {r[f'in_{fmt}']:.0f} rows/s", file=sys.stderr)
            for fmt in ("binary", "csv"):
                r[f"out_{fmt}"] = copy_out(server, fmt, args.rows)
                print(f"{name}: COPY TO STDOUT {fmt}: {r[f'out_{fmt}']:.0f} rows/s", file=sys.stderr)
            r["adbc"] = adbc_read(server, args.rows)
            print(f"{name}: ADBC read: {r['adbc']:.0f} rows/s", file=sys.stderr)
            if name == "Augur":
                coefficients = train_scorer(server)
                sql = "SELECT predict_proba('risk', %s, %s)"
            else:
                c = coefficients
                sql = (f"SELECT 1 / (1 + exp(-({c['intercept']} + {c['utilisation']} * %s::float8 "
                       f"+ {c['inquiries']} * %s::float8)))")
            r["score"] = score_latency(server, sql, 8, args.seconds,
                                       lambda i, n: ((i * 31 + n) % 97 / 97.0, float(n % 13)))
            print(f"{name}: scoring {r['score']}", file=sys.stderr)
            results[name] = r
        finally:
            server.stop()
    a, p = results["Augur"], results["PostgreSQL"]
    mib = lambda k: k / 1024
    lines = [
        "# `augur serve` vs PostgreSQL over the wire",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; "
        f"{a['version']}; {p['version']} (Debian, default settings, trust auth); "
        f"psycopg {psycopg.__version__}; pgbench -T {args.seconds}, simple protocol. "
        "Both servers on 127.0.0.1 in the same run (`python3 benches/server.py`).",
        "",
        "| measure | Augur | PostgreSQL | Augur / PostgreSQL |",
        "|---|---:|---:|---:|",
        f"| pgbench `SELECT 1`, 1 client (tps) | {a['tps1']:.0f} | {p['tps1']:.0f} | {a['tps1'] / p['tps1']:.2f} |",
        f"| pgbench `SELECT 1`, 8 clients (tps) | {a['tps8']:.0f} | {p['tps8']:.0f} | {a['tps8'] / p['tps8']:.2f} |",
        f"| {args.rows:,} rows × 2 bigint to psycopg (rows/s) | {a['stream']:,.0f} | {p['stream']:,.0f} | {a['stream'] / p['stream']:.2f} |",
    ] + [
        f"| COPY FROM STDIN, {fmt}, {args.rows:,} rows × (bigint, float8, text) (rows/s) | {a['in_' + fmt]:,.0f} | {p['in_' + fmt]:,.0f} | {a['in_' + fmt] / p['in_' + fmt]:.2f} |"
        for fmt in ("binary", "csv", "text")
    ] + [
        f"| COPY TO STDOUT, {fmt} (rows/s) | {a['out_' + fmt]:,.0f} | {p['out_' + fmt]:,.0f} | {a['out_' + fmt] / p['out_' + fmt]:.2f} |"
        for fmt in ("binary", "csv")
    ] + [
        f"| ADBC `fetch_arrow_table` of the loaded table (rows/s) | {a['adbc']:,.0f} | {p['adbc']:,.0f} | {a['adbc'] / p['adbc']:.2f} |",
        f"| online scoring, 8 clients, prepared, p50 latency (ms) | {a['score']['p50']:.2f} | {p['score']['p50']:.2f} | {a['score']['p50'] / p['score']['p50']:.2f} |",
        f"| online scoring, 8 clients, prepared, p99 latency (ms) | {a['score']['p99']:.2f} | {p['score']['p99']:.2f} | {a['score']['p99'] / p['score']['p99']:.2f} |",
        f"| online scoring, 8 clients, prepared (scores/s) | {a['score']['rate']:,.0f} | {p['score']['rate']:,.0f} | {a['score']['rate'] / p['score']['rate']:.2f} |",
        f"| memory of a fresh server, no clients (PSS MiB) | {mib(a['mem_before']):.1f} | {mib(p['mem_before']):.1f} | |",
        f"| memory with 64 idle connections (PSS MiB) | {mib(a['mem_after']):.1f} | {mib(p['mem_after']):.1f} | |",
        f"| per idle connection (KiB) | {(a['mem_after'] - a['mem_before']) / 64:.0f} | {(p['mem_after'] - p['mem_before']) / 64:.0f} | |",
        "",
        "PostgreSQL's memory is the postmaster and every backend process, PSS (shared pages "
        "divided among the processes that map them); Augur is one process. The COPY data is "
        "made once by PostgreSQL's own COPY TO STDOUT and sent to both in 1 MiB writes; a load "
        "counts until its commit. Online scoring: Augur runs `predict_proba('risk', $1, $2)` "
        "on a logistic model it trained; PostgreSQL evaluates the same formula with that "
        "model's coefficients.",
        "",
    ]
    out = os.path.join(HERE, "results", "server.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
