#!/usr/bin/env bash
# `make demo`: emulator -> tap-polyai -> target-duckdb through Meltano, then `dbt build` of the
# analytics models (transform/) and a report from them. The demo environment in meltano.yml
# selects conversation_details too (PolyScore, tags, language, direction), so dbt builds the
# detail models (var polyai_conversation_details) and the report shows them.
# Idempotent: a fresh DuckDB file and --full-refresh (stored Meltano state ignored) every time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PORT="${DEMO_PORT:-8765}"
CONVERSATIONS="${DEMO_CONVERSATIONS:-500}"
DAYS="${DEMO_DAYS:-14}"
OUT="$ROOT/output"
DB="$OUT/demo.duckdb"
LOG="$OUT/demo-meltano.log"
EMU_LOG="$OUT/demo-emulator.log"
PORT_FILE="$OUT/demo-emulator.port"
START_TS=$(date +%s)

step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - START_TS ))" "$*"; }

EMU_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$EMU_PID" ]] && kill -0 "$EMU_PID" 2>/dev/null; then
    echo "==> stopping the emulator (pid $EMU_PID)"
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then
    echo "demo FAILED (exit $rc). Logs: $LOG, $EMU_LOG" >&2
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

step "bootstrap"
if [[ ! -x .venv/bin/tap-polyai ]]; then
  make bootstrap
fi
mkdir -p "$OUT"
bash scripts/meltano.sh --version >/dev/null

step "starting the emulator: ws-demo/PROJECT-demo, $CONVERSATIONS conversations over $DAYS days"
if .venv/bin/python -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
  echo "    port $PORT is taken; using a free port instead"
  PORT=0
fi
rm -f "$PORT_FILE"
.venv/bin/polyai-emulator --host 127.0.0.1 --port "$PORT" --port-file "$PORT_FILE" \
  --projects ws-demo/PROJECT-demo --conversations "$CONVERSATIONS" --days "$DAYS" \
  --in-progress 3 --seed 0 --api-key demo-key >"$EMU_LOG" 2>&1 &
EMU_PID=$!
for _ in $(seq 1 100); do
  [[ -s "$PORT_FILE" ]] && break
  kill -0 "$EMU_PID" 2>/dev/null || { echo "the emulator exited; see $EMU_LOG" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$PORT_FILE" ]] || { echo "the emulator did not start; see $EMU_LOG" >&2; exit 1; }
PORT="$(cat "$PORT_FILE")"
BASE="http://127.0.0.1:$PORT"
admin() { .venv/bin/python -c "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$BASE/_emulator/$1"; }
HEALTH="$(admin health)"
EMU_NOW="$(.venv/bin/python -c "import json,sys; print(json.loads(sys.argv[1])['now'])" "$HEALTH")"
echo "    listening on $BASE (pid $EMU_PID), emulated now = $EMU_NOW"

# The demo environment in meltano.yml points at 127.0.0.1:8765; these variables override it
# (a free port when 8765 is taken, and a start_date just before the emulator's data).
export TAP_POLYAI_API_URL="$BASE"
TAP_POLYAI_START_DATE="$(.venv/bin/python -c "
import datetime as dt, sys
now = dt.datetime.fromisoformat(sys.argv[1].replace('Z', '+00:00'))
print((now - dt.timedelta(days=int(sys.argv[2]) + 1)).strftime('%Y-%m-%dT%H:%M:%SZ'))" "$EMU_NOW" "$DAYS")"
export TAP_POLYAI_START_DATE

step "meltano install (tap-polyai, target-duckdb, dbt-duckdb)"
# Meltano 4: plugin names only (the words `extractor`, `loader`, `utility` would be taken as
# plugin names).
bash scripts/meltano.sh --environment demo install tap-polyai target-duckdb dbt-duckdb \
  >"$LOG" 2>&1 || { tail -20 "$LOG" >&2; exit 1; }

step "meltano --environment demo run tap-polyai target-duckdb --full-refresh  (log: $LOG)"
rm -f "$DB" "$DB.wal"
if ! bash scripts/meltano.sh --environment demo run tap-polyai target-duckdb --full-refresh \
    >>"$LOG" 2>&1; then
  tail -30 "$LOG" >&2
  exit 1
fi
grep -E "target-duckdb .*Loading [0-9]+ rows" "$LOG" | sed -E 's/.*(Loading .*)/    \1/' || true

# The expected row count comes from the emulator's truth (live conversations), never from
# what the tap happened to request.
# The detail figures too: the emulator's own details of the conversations whose detail has
# settled (finished >= details_settle_minutes, default 30, before the emulator's clock).
DETAILS_TRUTH="$OUT/demo-truth-details.json"
EXPECTED="$(.venv/bin/python scripts/demo_truth.py "$BASE" ws-demo PROJECT-demo --client-env live \
  --details-out "$DETAILS_TRUTH")"
grep -E "tap-polyai .*conversation_details: " "$LOG" | sed -E 's/.*(conversation_details: .*)/    \1/' || true

step "meltano --environment demo invoke dbt-duckdb build --vars '{polyai_conversation_details: true}'  (models and data tests; log: $LOG)"
if ! bash scripts/meltano.sh --environment demo invoke dbt-duckdb build \
    --vars '{polyai_conversation_details: true}' >>"$LOG" 2>&1; then
  grep -E "ERROR|FAIL|Error" "$LOG" | tail -30 >&2
  exit 1
fi
grep -E "Done\. PASS=" "$LOG" | tail -1 | sed -E 's/.*(Done\.)/    dbt: \1/' || true

step "report from the dbt models in $DB (schema analytics)"
.meltano/loaders/target-duckdb/venv/bin/python scripts/demo_report.py "$DB" \
  --schema polyai --models-schema analytics --expect-conversations "$EXPECTED" \
  --expect-details "$DETAILS_TRUTH" --chart-data "$OUT/demo-charts.json"

step "charts of the same models (Vega-Lite, JavaScript inlined: opens offline)"
REPORT="$(.venv/bin/python scripts/demo_charts.py "$OUT/demo-charts.json" "$OUT/demo-report.html")"
echo "    report: $REPORT"

step "done in $(( $(date +%s) - START_TS ))s; the data stays in $DB (schema polyai)"
