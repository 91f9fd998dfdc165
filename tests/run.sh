#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# Usage: ./tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build directory across clones (CI clones afresh; the build need not start over).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/augur-target}"

# Python is used by the data generator checks; nothing else needs installing yet.
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }

# The demo data must be exactly what the generator makes.
python3 testdata/gen_transactions.py > "${TMPDIR:-/tmp}/augur-transactions.csv"
cmp -s "${TMPDIR:-/tmp}/augur-transactions.csv" testdata/transactions.csv \
  || { echo "testdata/transactions.csv differs from testdata/gen_transactions.py output" >&2; exit 1; }

cargo test --workspace "$@"
