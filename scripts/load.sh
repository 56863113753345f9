#!/usr/bin/env bash
# Throughput of the whole opsready stack (request id, tracing with JSON logs
# to a file, metrics, problem layer, timeout, load shedding, panic catcher)
# against bare axum on the same trivial route, in the same run: the two
# binaries of examples/bare, `stack` and `bare`, serve the same handler.
# Each server is pinned to core 0 and wrk to core 1.
#
# Rounds alternate bare and full and the medians are compared, since a
# shared machine's speed drifts between runs. Besides requests per second it
# reports the server's CPU time per request (user and system time of the
# process, from /proc, over the requests wrk completed): on a virtual machine
# whose host takes cycles away (steal time), requests per second swing with
# the neighbours, while CPU per request stays put. Both servers saturate core
# 0, so the throughput share is the inverse ratio of CPU per request.
#
#   scripts/load.sh            # 3 rounds of 10 s per server
#   DURATION=30s ROUNDS=5 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-10s}"
rounds="${ROUNDS:-3}"
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }

cargo build --release -p bare --bins >&2
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

# pid url -> "requests-per-second cpu-microseconds-per-request"
measure() {
  local before after out
  before=$(cpu_ticks "$1")
  out=$(taskset -c 1 wrk -t1 -c32 -d"$duration" "$2")
  after=$(cpu_ticks "$1")
  awk -v ticks="$((after - before))" -v hz="$(getconf CLK_TCK)" '
    /requests in/ { requests = $1 }
    /Requests\/sec/ { rps = $2 }
    END { printf "%s %.3f\n", rps, ticks / hz * 1e6 / requests }' <<< "$out"
}

# pid -> user + system clock ticks of the process so far
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

BARE_ADDR=127.0.0.1:18090 taskset -c 0 target/release/bare &
bare_pid=$!
pids+=("$bare_pid")
STACK__SERVER__ADDR=127.0.0.1:18080 STACK__ADMIN__ADDR=127.0.0.1:19091 \
  STACK__TELEMETRY__LOG__FORMAT=json \
  taskset -c 0 target/release/stack > "$work/stack.log" &
full_pid=$!
pids+=("$full_pid")
wait_port 127.0.0.1:18090
wait_port 127.0.0.1:18080

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for round in $(seq 1 "$rounds"); do
  read -r b bcpu < <(measure "$bare_pid" http://127.0.0.1:18090/hello)
  read -r f fcpu < <(measure "$full_pid" http://127.0.0.1:18080/hello)
  echo "$b" >> "$work/bare"
  echo "$f" >> "$work/full"
  echo "$bcpu" >> "$work/bare-cpu"
  echo "$fcpu" >> "$work/full-cpu"
  awk -v r="$round" -v b="$b" -v f="$f" -v bc="$bcpu" -v fc="$fcpu" 'BEGIN {
    printf "round %d: bare %.0f req/s, %.2f us CPU/req; opsready %.0f req/s, %.2f us CPU/req (%.0f%% by req/s, %.0f%% by CPU)\n", r, b, bc, f, fc, 100 * f / b, 100 * bc / fc
  }' >&2
done
bare=$(median < "$work/bare")
full=$(median < "$work/full")
bare_cpu=$(median < "$work/bare-cpu")
full_cpu=$(median < "$work/full-cpu")
lines=$(wc -l < "$work/stack.log")
awk -v b="$bare" -v f="$full" -v bc="$bare_cpu" -v fc="$full_cpu" -v l="$lines" -v n="$rounds" 'BEGIN {
  printf "medians of %d rounds\n", n
  printf "bare axum        %10.0f req/s  %6.2f us CPU/req\n", b, bc
  printf "opsready stack   %10.0f req/s  %6.2f us CPU/req  (%d log lines written)\n", f, fc, l
  printf "share of bare    %9.0f%% by req/s %5.0f%% by CPU per request\n", 100 * f / b, 100 * bc / fc
}'
