"""Helpers the benchmark scripts share: where the release build is, running it, its timer."""
import os
import subprocess


def release_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/augur-target"))
    return os.path.join(target, "release", "augur")


def augur(binary, *sql, env=None, db=None):
    """Run `augur [DB] -q -c SQL …`; returns (stdout, stderr); raises if a statement fails."""
    args = [binary] + ([db] if db else []) + ["-q"]
    for s in sql:
        args += ["-c", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return out.stdout, out.stderr


def run_times(stderr):
    """Seconds of each statement timed with `.timer on`, in order."""
    return [float(l.split()[2]) for l in stderr.splitlines() if l.startswith("Run Time")]


def run_time(stderr):
    """Seconds of the last statement timed with `.timer on`."""
    return run_times(stderr)[-1]
