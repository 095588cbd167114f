#!/usr/bin/env bash
# Local stand-ins for Azure services, for tests and the demo: Azurite's Blob service (the lake).
#
#   scripts/devservers.sh start    start Azurite Blob in the background (no-op if it already runs)
#   scripts/devservers.sh stop     stop it
#   scripts/devservers.sh status   say whether it runs; exit 0 if it does, 3 if not
#
# Needs `npm ci` first (Azurite is a devDependency in package.json). Data lives in memory only: every
# start is empty. Setting: AZURITE_BLOB_PORT (default 10000). Pid and log: .inventory/devservers/.
# Point the app at it with LAKE=UseDevelopmentStorage=true (port 10000) or the full connection string
# that `status` prints.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${AZURITE_BLOB_PORT:-10000}"
HOST=127.0.0.1
# Fixed under the checkout, not $INVENTORY_HOME: the servers belong to the checkout, and `stop` must find
# the pid whatever INVENTORY_HOME a test run or the demo has set meanwhile.
STATE="$ROOT/.inventory/devservers"
PIDFILE="$STATE/azurite.pid"
PORTFILE="$STATE/azurite.port"  # the port it was started on, for status/stop under another AZURITE_BLOB_PORT
LOG="$STATE/azurite.log"
BIN="$ROOT/node_modules/.bin/azurite-blob"
START_TIMEOUT_S=30

die() { echo "devservers: $*" >&2; exit 1; }

port_answers() {
  # bash's /dev/tcp: no dependency on nc or curl.
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

running_pid() {
  # The pid from the pid file, if that process is still alive and is an Azurite (not a reused pid).
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q azurite; then
    return 1
  fi
  echo "$pid"
}

conn_string() {
  # The emulator's public, well-known development key (documented by Microsoft; not a secret).
  echo "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://$HOST:$PORT/devstoreaccount1;"
}

start() {
  local pid
  if pid="$(running_pid)"; then
    local port
    port="$(cat "$PORTFILE" 2>/dev/null || echo "$PORT")"
    echo "devservers: Azurite Blob already running (pid $pid) on http://$HOST:$port" >&2
    [[ "$port" == "$PORT" ]] || echo "devservers: note: it listens on $port, not AZURITE_BLOB_PORT=$PORT" >&2
    return 0
  fi
  if port_answers; then
    die "port $PORT on $HOST is already in use by another program; stop it or set AZURITE_BLOB_PORT to a free port"
  fi
  [[ -x "$BIN" ]] || die "Azurite is not installed ($BIN missing): run \`npm ci\` in $ROOT"
  mkdir -p "$STATE"
  rm -f "$PIDFILE"
  # setsid: its own session, so the caller's Ctrl-C or exit does not take it down, and stop can end it.
  setsid "$BIN" --blobHost "$HOST" --blobPort "$PORT" --inMemoryPersistence --disableTelemetry \
    --skipApiVersionCheck --loose --silent >"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$PORT" >"$PORTFILE"
  local waited=0
  until port_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      die "Azurite Blob exited while starting; see $LOG"
    fi
    if ((waited >= START_TIMEOUT_S * 10)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      die "Azurite Blob did not answer on $HOST:$PORT within ${START_TIMEOUT_S}s; see $LOG"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "devservers: Azurite Blob running (pid $pid) on http://$HOST:$PORT; log $LOG" >&2
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "devservers: Azurite Blob not running" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "devservers: Azurite Blob (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$PORTFILE"
  echo "devservers: Azurite Blob stopped" >&2
}

status() {
  local pid
  if pid="$(running_pid)" && [[ -f "$PORTFILE" ]]; then
    PORT="$(cat "$PORTFILE")"
  fi
  if pid="$(running_pid)" && port_answers; then
    echo "devservers: Azurite Blob running (pid $pid) on http://$HOST:$PORT" >&2
    echo "LAKE=$(conn_string)"
    return 0
  fi
  echo "devservers: Azurite Blob not running (start it with: scripts/devservers.sh start)" >&2
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
