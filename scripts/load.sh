#!/usr/bin/env bash
# Throughput of the whole opsready stack (examples/minimal: request id,
# tracing with JSON logs to a file, metrics, problem layer, timeout, panic
# catcher) against bare axum (examples/bare) on the same trivial route, in
# the same run, each server pinned to core 0 and wrk to core 1.
#
#   scripts/load.sh            # 10 s per run
#   DURATION=30s scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-10s}"
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }

cargo build --release -p minimal -p bare >&2
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://$1/hello" && return 0
    sleep 0.1
  done
  echo "nothing answers on $1" >&2
  exit 1
}

rps() { # url -> requests per second
  taskset -c 1 wrk -t1 -c32 -d"$duration" --latency "$1" | awk '/Requests\/sec/ {print $2}'
}

BARE_ADDR=127.0.0.1:18090 taskset -c 0 target/release/bare &
pids+=($!)
MINIMAL__SERVER__ADDR=127.0.0.1:18080 MINIMAL__ADMIN__ADDR=127.0.0.1:19091 \
  MINIMAL__TELEMETRY__LOG__FORMAT=json \
  taskset -c 0 target/release/minimal > "$work/minimal.log" &
pids+=($!)
wait_port 127.0.0.1:18090
wait_port 127.0.0.1:18080

bare=$(rps http://127.0.0.1:18090/hello)
full=$(rps http://127.0.0.1:18080/hello)
lines=$(wc -l < "$work/minimal.log")
awk -v b="$bare" -v f="$full" -v l="$lines" 'BEGIN {
  printf "bare axum        %10.0f req/s\n", b
  printf "opsready stack   %10.0f req/s  (%.0f%% of bare; %d log lines written)\n", f, 100 * f / b, l
}'
