#!/usr/bin/env bash
# Local stand-ins for Azure, for tests and the demo: Azurite's Blob service (the lake) and a Cosmos DB
# NoSQL API server (@vercel/cosmosdb-server; the stock store).
#
#   scripts/devservers.sh start    start both in the background (each a no-op if it already runs)
#   scripts/devservers.sh stop     stop both
#   scripts/devservers.sh status   say whether they run; exit 0 if both do, 3 if not
#
# Needs `npm ci` first (both are devDependencies in package.json). Data lives in memory only: every
# start is empty. Settings: AZURITE_BLOB_PORT (default 10000), COSMOS_SERVER_PORT (default 8081).
# Pids and logs: .inventory/devservers/. Point the app at them with the connection strings that
# `status` prints (LAKE=..., COSMOS=...). The Cosmos server speaks HTTPS with a self-signed certificate
# (clients must not verify it) and accepts the Cosmos DB emulator's published well-known key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST=127.0.0.1
# Fixed under the checkout, not $INVENTORY_HOME: the servers belong to the checkout, and `stop` must find
# the pids whatever INVENTORY_HOME a test run or the demo has set meanwhile.
STATE="$ROOT/.inventory/devservers"
START_TIMEOUT_S=30

# The emulators' public, well-known development keys (documented by Microsoft; not secrets).
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COSMOS_KEY="C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

SERVICES=(azurite cosmos)

# use_service NAME: set the globals the functions below work on (one service at a time).
use_service() {
  case "$1" in
    azurite)
      LABEL="Azurite Blob"
      PORT="${AZURITE_BLOB_PORT:-10000}"
      PORT_VAR=AZURITE_BLOB_PORT
      BIN="$ROOT/node_modules/.bin/azurite-blob"
      MATCH=azurite  # what its command line must contain (not a reused pid)
      SCHEME=http
      ;;
    cosmos)
      LABEL="Cosmos DB server"
      PORT="${COSMOS_SERVER_PORT:-8081}"
      PORT_VAR=COSMOS_SERVER_PORT
      BIN="$ROOT/node_modules/.bin/cosmosdb-server"
      MATCH=cosmosdb-server
      SCHEME=https
      ;;
    *) die "unknown service $1" ;;
  esac
  PIDFILE="$STATE/$1.pid"
  PORTFILE="$STATE/$1.port"  # the port it was started on, for status/stop under another $PORT_VAR
  LOG="$STATE/$1.log"
}

launch() {
  # setsid: its own session, so the caller's Ctrl-C or exit does not take it down, and stop can end it.
  case "$SERVICE" in
    azurite)
      setsid "$BIN" --blobHost "$HOST" --blobPort "$PORT" --inMemoryPersistence --disableTelemetry \
        --skipApiVersionCheck --loose --silent >"$LOG" 2>&1 </dev/null &
      ;;
    cosmos)
      setsid "$BIN" --host "$HOST" --port "$PORT" >"$LOG" 2>&1 </dev/null &
      ;;
  esac
  LAUNCHED_PID=$!
}

conn_string() {
  case "$SERVICE" in
    azurite) echo "LAKE=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURITE_KEY;BlobEndpoint=http://$HOST:$PORT/devstoreaccount1;" ;;
    cosmos) echo "COSMOS=AccountEndpoint=https://$HOST:$PORT/;AccountKey=$COSMOS_KEY;" ;;
  esac
}

die() { echo "devservers: $*" >&2; exit 1; }

port_answers() {
  # bash's /dev/tcp: no dependency on nc or curl.
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

running_pid() {
  # The pid from the pid file, if that process is still alive and is this service (not a reused pid).
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$MATCH"; then
    return 1
  fi
  echo "$pid"
}

start_one() {
  local pid
  if pid="$(running_pid)"; then
    local port
    port="$(cat "$PORTFILE" 2>/dev/null || echo "$PORT")"
    echo "devservers: $LABEL already running (pid $pid) on $SCHEME://$HOST:$port" >&2
    [[ "$port" == "$PORT" ]] || echo "devservers: note: it listens on $port, not $PORT_VAR=$PORT" >&2
    return 0
  fi
  if port_answers; then
    die "port $PORT on $HOST is already in use by another program; stop it or set $PORT_VAR to a free port"
  fi
  [[ -x "$BIN" ]] || die "$LABEL is not installed ($BIN missing): run \`npm ci\` in $ROOT"
  mkdir -p "$STATE"
  rm -f "$PIDFILE"
  launch
  pid="$LAUNCHED_PID"
  echo "$pid" >"$PIDFILE"
  echo "$PORT" >"$PORTFILE"
  local waited=0
  until port_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      die "$LABEL exited while starting; see $LOG"
    fi
    if ((waited >= START_TIMEOUT_S * 10)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      die "$LABEL did not answer on $HOST:$PORT within ${START_TIMEOUT_S}s; see $LOG"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "devservers: $LABEL running (pid $pid) on $SCHEME://$HOST:$PORT; log $LOG" >&2
}

stop_one() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "devservers: $LABEL not running" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "devservers: $LABEL (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$PORTFILE"
  echo "devservers: $LABEL stopped" >&2
}

status_one() {
  local pid
  if pid="$(running_pid)" && [[ -f "$PORTFILE" ]]; then
    PORT="$(cat "$PORTFILE")"
  fi
  if pid="$(running_pid)" && port_answers; then
    echo "devservers: $LABEL running (pid $pid) on $SCHEME://$HOST:$PORT" >&2
    conn_string
    return 0
  fi
  echo "devservers: $LABEL not running (start it with: scripts/devservers.sh start)" >&2
  return 3
}

start() {
  local started=()
  for SERVICE in "${SERVICES[@]}"; do
    use_service "$SERVICE"
    if running_pid >/dev/null; then
      start_one  # just says so
      continue
    fi
    # If one fails to start, stop the ones this call started: no half-started set is left behind.
    if ! (start_one); then
      for SERVICE in "${started[@]}"; do use_service "$SERVICE"; stop_one; done
      exit 1
    fi
    started+=("$SERVICE")
  done
}

stop() {
  for SERVICE in "${SERVICES[@]}"; do use_service "$SERVICE"; stop_one; done
}

status() {
  local rc=0
  for SERVICE in "${SERVICES[@]}"; do use_service "$SERVICE"; status_one || rc=3; done
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
