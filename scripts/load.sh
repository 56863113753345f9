#!/usr/bin/env bash
# Throughput of the whole opsready stack (examples/minimal: request id,
# tracing with JSON logs to a file, metrics, problem layer, timeout, panic
# catcher) against bare axum (examples/bare) on the same trivial route, in
# the same run, each server pinned to core 0 and wrk to core 1.
#
# Rounds alternate bare and full and the medians are compared, since a
# shared machine's speed drifts between runs.
#
#   scripts/load.sh            # 3 rounds of 10 s per server
#   DURATION=30s ROUNDS=5 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-10s}"
rounds="${ROUNDS:-3}"
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

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
: > "$work/bare"
: > "$work/full"
for round in $(seq 1 "$rounds"); do
  b=$(rps http://127.0.0.1:18090/hello)
  f=$(rps http://127.0.0.1:18080/hello)
  echo "$b" >> "$work/bare"
  echo "$f" >> "$work/full"
  awk -v r="$round" -v b="$b" -v f="$f" 'BEGIN { printf "round %d: bare %.0f, opsready %.0f req/s (%.0f%%)\n", r, b, f, 100 * f / b }' >&2
done
bare=$(median < "$work/bare")
full=$(median < "$work/full")
lines=$(wc -l < "$work/minimal.log")
awk -v b="$bare" -v f="$full" -v l="$lines" -v n="$rounds" 'BEGIN {
  printf "bare axum        %10.0f req/s (median of %d)\n", b, n
  printf "opsready stack   %10.0f req/s  (%.0f%% of bare; %d log lines written)\n", f, 100 * f / b, l
}'
