"""`augur serve` against PostgreSQL (Debian's server), same machine, same run:
pgbench `SELECT 1` with 1 and 8 clients, a 10M-row result streamed to psycopg (rows/s), and
memory with 64 idle connections (PSS from /proc, so shared pages are not counted twice).

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
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}"],
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
        f"| memory of a fresh server, no clients (PSS MiB) | {mib(a['mem_before']):.1f} | {mib(p['mem_before']):.1f} | |",
        f"| memory with 64 idle connections (PSS MiB) | {mib(a['mem_after']):.1f} | {mib(p['mem_after']):.1f} | |",
        f"| per idle connection (KiB) | {(a['mem_after'] - a['mem_before']) / 64:.0f} | {(p['mem_after'] - p['mem_before']) / 64:.0f} | |",
        "",
        "PostgreSQL's memory is the postmaster and every backend process, PSS (shared pages "
        "divided among the processes that map them); Augur is one process.",
        "",
    ]
    out = os.path.join(HERE, "results", "server.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
