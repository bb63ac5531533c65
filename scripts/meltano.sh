#!/usr/bin/env bash
# Run Meltano from its own virtualenv (.venv-meltano), creating it on first use, so Meltano's
# dependencies never share a venv with singer-sdk's. The `postgres` extra lets it keep its system
# database (state) in PostgreSQL, as the orchestration recipes do. Any arguments go to `meltano`:
#   bash scripts/meltano.sh --environment demo run tap-polyai target-duckdb
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MELTANO_VERSION="${MELTANO_VERSION:-4.4.1}"
MELTANO_VENV="${MELTANO_VENV:-$ROOT/.venv-meltano}"
PYTHON="${PYTHON:-python3}"
STAMP="$MELTANO_VENV/.meltano-$MELTANO_VERSION-postgres"

# A venv made elsewhere (a CI cache, the test suite's shared one) is used as it is when it holds
# this Meltano version and psycopg, the postgres extra's driver.
if [[ ! -f "$STAMP" && -x "$MELTANO_VENV/bin/meltano" ]] \
    && "$MELTANO_VENV/bin/python" -c "import psycopg, sys; from importlib.metadata import version
sys.exit(version('meltano') != '$MELTANO_VERSION')" 2>/dev/null; then
  : # usable as it is
elif [[ ! -f "$STAMP" ]]; then
  echo "==> creating $MELTANO_VENV (meltano[postgres]==$MELTANO_VERSION); one time, ~40 s" >&2
  "$PYTHON" -m venv "$MELTANO_VENV"
  "$MELTANO_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
    >"$MELTANO_VENV/pip.log" 2>&1
  if ! "$MELTANO_VENV/bin/python" -m pip install -q --disable-pip-version-check \
      "meltano[postgres]==$MELTANO_VERSION" >>"$MELTANO_VENV/pip.log" 2>&1; then
    echo "pip install meltano==$MELTANO_VERSION failed; see $MELTANO_VENV/pip.log" >&2
    exit 1
  fi
  touch "$STAMP"
fi

cd "$ROOT"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
exec "$MELTANO_VENV/bin/meltano" "$@"
