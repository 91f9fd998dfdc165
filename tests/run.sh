#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# Usage: ./tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# The build directory is cargo's own (./target), the one `cargo run` uses, so the demo and
# the tests share one build; CI sets CARGO_TARGET_DIR outside the clone to reuse its build.

# Python runs the data generator check and the S3-compatible server (moto) the S3 tests use.
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-pip; }
python3 -c "import moto.server, boto3" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check 'moto[server]' \
  || python3 -m pip install -q --break-system-packages 'moto[server]'

# The wire server's tests drive real clients: psql (Debian postgresql-client), pgjdbc
# (Debian libpostgresql-jdbc-java, run by the JDK), psycopg 3 (PyPI).
command -v psql >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client; }
command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq default-jdk-headless; }
[ -f /usr/share/java/postgresql.jar ] \
  || apt-get install -y -qq libpostgresql-jdbc-java \
  || { apt-get update -qq && apt-get install -y -qq libpostgresql-jdbc-java; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
python3 -c "import psycopg, asyncpg" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check 'psycopg[binary]' asyncpg \
  || python3 -m pip install -q --break-system-packages 'psycopg[binary]' asyncpg
# The Python data stack a risk analyst uses over the wire: SQLAlchemy with psycopg 3 and
# psycopg2, pandas, ADBC (with pyarrow) and Polars (with connectorx).
STACK="sqlalchemy psycopg2-binary pandas pyarrow adbc-driver-postgresql polars connectorx"
python3 -c "import sqlalchemy, psycopg2, pandas, pyarrow, adbc_driver_postgresql, polars, connectorx" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check $STACK \
  || python3 -m pip install -q --break-system-packages $STACK

# The boosted-tree tests compare with the real libraries: LightGBM (scores, TreeSHAP,
# model files, training quality) and XGBoost, with numpy and pandas to drive them.
python3 -c "import lightgbm, xgboost, numpy, pandas" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check lightgbm xgboost-cpu numpy pandas \
  || python3 -m pip install -q --break-system-packages lightgbm xgboost-cpu numpy pandas

# The credit-lifecycle tests compare with optbinning (binning tables, optimal IV),
# scikit-learn (logistic regression on WoE values, calibration), DuckDB (runs the SQL
# export of a scorecard), pypmml (scores the PMML export on the JDK installed above),
# xmlschema with the PMML 4.4 schema from sklearn2pmml's JPMML jar (validates the PMML export)
# and onnxruntime (scores the ONNX export).
CREDIT="optbinning scikit-learn duckdb pypmml onnxruntime xmlschema sklearn2pmml"
python3 -c "import optbinning, sklearn, duckdb, pypmml, onnxruntime, xmlschema, sklearn2pmml" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check $CREDIT \
  || python3 -m pip install -q --break-system-packages $CREDIT

# The Delta Lake tests read Augur's tables with the `deltalake` package and Polars, write
# tables for Augur to read with `deltalake`, and run the same DML in DuckDB.
DELTA="deltalake polars duckdb pyarrow"
python3 -c "import deltalake, polars, duckdb, pyarrow" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check $DELTA \
  || python3 -m pip install -q --break-system-packages $DELTA

# The demo data must be exactly what the generator makes.
python3 testdata/gen_transactions.py > "${TMPDIR:-/tmp}/augur-transactions.csv"
cmp -s "${TMPDIR:-/tmp}/augur-transactions.csv" testdata/transactions.csv \
  || { echo "testdata/transactions.csv differs from testdata/gen_transactions.py output" >&2; exit 1; }

cargo test --workspace "$@"
