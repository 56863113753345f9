#!/usr/bin/env bash
# Throughput of the whole opsready stack (request id, tracing with JSON logs
# to a file, metrics, problem layer, timeout, load shedding, panic catcher)
# against bare axum on the same trivial route, in the same run: the binaries
# of examples/bare, `stack` and `bare`, serve the same handler. A third,
# `logged`, is bare axum writing one JSON line per request to a file and
# nothing else: what per-request file logging costs by itself, whatever
# the stack around it. Each server is pinned to core 0 and wrk to core 1.
#
# Rounds alternate the servers and the medians are compared, since a
# shared machine's speed drifts between runs. Besides requests per second it
# reports the server's CPU time per request (user and system time of the
# process, from /proc, over the requests wrk completed), and that time's
# user and system parts: on a virtual machine whose host takes cycles away
# (steal time), requests per second swing with the neighbours, while CPU
# per request stays put. The servers saturate core 0, so the throughput
# share is the inverse ratio of CPU per request. It also reports how busy
# wrk kept core 1: near 100 %, the generator was a limit too.
#
#   scripts/load.sh            # 3 rounds of 10 s per server
#   DURATION=3s ROUNDS=11 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/load-common.sh
. scripts/lib/load-common.sh
duration="${DURATION:-10s}"
rounds="${ROUNDS:-3}"
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }

cargo build --release -p bare --bins >&2
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# pid url -> "requests-per-second cpu-us-per-request user-us system-us
# wrk-busy-percent" (the server's CPU time per request, its user and system
# parts, and how busy wrk kept its own core)
measure() {
  local before after out wrk_cpu TIMEFORMAT='%R %U %S'
  before=$(cpu_ticks "$1")
  # `time` reports on standard error after wrk's output.
  out=$( { time taskset -c 1 wrk -t1 -c32 -d"$duration" "$2"; } 2>&1 )
  after=$(cpu_ticks "$1")
  wrk_cpu=$(tail -n 1 <<< "$out")
  awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" -v wrk="$wrk_cpu" '
    /requests in/ { requests = $1 }
    /Requests\/sec/ { rps = $2 }
    END {
      split(before, b, " "); split(after, a, " "); split(wrk, w, " ")
      scale = 1e6 / hz / requests
      user = (a[1] - b[1]) * scale; sys = (a[2] - b[2]) * scale
      printf "%s %.3f %.3f %.3f %.1f\n", rps, user + sys, user, sys, 100 * (w[2] + w[3]) / w[1]
    }' <<< "$out"
}

# pid -> "user system" clock ticks of the process so far
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

BARE_ADDR=127.0.0.1:18090 taskset -c 0 target/release/bare &
bare_pid=$!
pids+=("$bare_pid")
BARE_ADDR=127.0.0.1:18091 taskset -c 0 target/release/logged > "$work/logged.log" &
logged_pid=$!
pids+=("$logged_pid")
STACK__SERVER__ADDR=127.0.0.1:18080 STACK__ADMIN__ADDR=127.0.0.1:19091 \
  STACK__TELEMETRY__LOG__FORMAT=json \
  taskset -c 0 target/release/stack > "$work/stack.log" &
full_pid=$!
pids+=("$full_pid")
wait_port 127.0.0.1:18090
wait_port 127.0.0.1:18091
wait_port 127.0.0.1:18080

for round in $(seq 1 "$rounds"); do
  read -r b bcpu buser bsys bwrk < <(measure "$bare_pid" http://127.0.0.1:18090/hello)
  read -r l lcpu luser lsys lwrk < <(measure "$logged_pid" http://127.0.0.1:18091/hello)
  read -r f fcpu fuser fsys fwrk < <(measure "$full_pid" http://127.0.0.1:18080/hello)
  echo "$bwrk" >> "$work/bare-wrk"
  echo "$lwrk" >> "$work/logged-wrk"
  echo "$fwrk" >> "$work/full-wrk"
  echo "$buser" >> "$work/bare-user"
  echo "$bsys" >> "$work/bare-sys"
  echo "$luser" >> "$work/logged-user"
  echo "$lsys" >> "$work/logged-sys"
  echo "$fuser" >> "$work/full-user"
  echo "$fsys" >> "$work/full-sys"
  echo "$b" >> "$work/bare"
  echo "$bcpu" >> "$work/bare-cpu"
  echo "$l" >> "$work/logged"
  echo "$lcpu" >> "$work/logged-cpu"
  echo "$f" >> "$work/full"
  echo "$fcpu" >> "$work/full-cpu"
  # Each round's shares, paired: the servers of one round ran back to
  # back, so the machine's drift between rounds cancels out.
  awk -v b="$b" -v f="$f" 'BEGIN { printf "%.1f\n", 100 * f / b }' >> "$work/share-full"
  awk -v b="$b" -v l="$l" 'BEGIN { printf "%.1f\n", 100 * l / b }' >> "$work/share-logged"
  awk -v r="$round" -v b="$b" -v l="$l" -v f="$f" -v bc="$bcpu" -v lc="$lcpu" -v fc="$fcpu" 'BEGIN {
    printf "round %d: bare %.0f req/s, %.2f us CPU/req; logged %.0f req/s, %.2f us; opsready %.0f req/s, %.2f us (%.0f%% of bare by req/s, %.0f%% by CPU)\n", r, b, bc, l, lc, f, fc, 100 * f / b, 100 * bc / fc
  }' >&2
done
bare=$(median < "$work/bare")
logged=$(median < "$work/logged")
full=$(median < "$work/full")
bare_cpu=$(median < "$work/bare-cpu")
logged_cpu=$(median < "$work/logged-cpu")
full_cpu=$(median < "$work/full-cpu")
lines=$(wc -l < "$work/stack.log")
share_full=$(median < "$work/share-full")
share_full_spread=$(quartiles < "$work/share-full")
share_logged=$(median < "$work/share-logged")
share_logged_spread=$(quartiles < "$work/share-logged")
awk -v b="$bare" -v l="$logged" -v f="$full" -v bc="$bare_cpu" -v lc="$logged_cpu" -v fc="$full_cpu" -v n="$lines" -v r="$rounds" 'BEGIN {
  printf "medians of %d rounds\n", r
  printf "bare axum             %10.0f req/s  %6.2f us CPU/req\n", b, bc
  printf "bare axum + log line  %10.0f req/s  %6.2f us CPU/req  %3.0f%% of bare by req/s, %3.0f%% by CPU\n", l, lc, 100 * l / b, 100 * bc / lc
  printf "opsready stack        %10.0f req/s  %6.2f us CPU/req  %3.0f%% of bare by req/s, %3.0f%% by CPU  (%d log lines written)\n", f, fc, 100 * f / b, 100 * bc / fc, n
}'
# User time is the servers' own code; system time is the kernel's work for
# them (sockets, waking wrk, writing the log file). Both are sampled at
# each clock tick, so single rounds are rough; medians are steadier.
echo "CPU per request, user + system (medians):"
for server in "bare:bare axum" "logged:bare axum + log line" "full:opsready stack"; do
  user=$(median < "$work/${server%%:*}-user")
  system=$(median < "$work/${server%%:*}-sys")
  printf "  %-21s %6.2f us user  %6.2f us system\n" "${server#*:}" "$user" "$system"
done
# wrk near 100 % of its core: the load generator, not only the server, set
# the pace of those rounds (see docs/benchmarks.md on wake-ups).
echo "wrk's use of its core (medians):"
for server in "bare:bare axum" "logged:bare axum + log line" "full:opsready stack"; do
  printf "  %-21s %5.1f %%\n" "${server#*:}" "$(median < "$work/${server%%:*}-wrk")"
done
echo "per-round shares of bare (median, middle half of the rounds):"
echo "  bare axum + log line  ${share_logged}% (${share_logged_spread}%)"
echo "  opsready stack        ${share_full}% (${share_full_spread}%)"
# The shared machine switches between a faster and a slower state (the
# CPU per request of every server moves by about a fifth at once), and a
# round whose two servers ran in different states is off by that much
# either way. Each server's rounds are split at the middle of its range of
# CPU per request; rounds where bare axum and the other server fell on the
# same side compare like with like.
matched() {
  paste "$work/bare-cpu" "$work/$1-cpu" "$work/share-$1" | awk '
    { bare[NR] = $1; other[NR] = $2; share[NR] = $3 }
    NR == 1 || $1 < bmin { bmin = $1 } NR == 1 || $1 > bmax { bmax = $1 }
    NR == 1 || $2 < omin { omin = $2 } NR == 1 || $2 > omax { omax = $2 }
    END {
      for (i = 1; i <= NR; i++)
        if ((bare[i] < (bmin + bmax) / 2) == (other[i] < (omin + omax) / 2)) print share[i]
    }' > "$work/matched-$1"
  printf "%s%% (%d of %d rounds)" "$(median < "$work/matched-$1")" "$(wc -l < "$work/matched-$1")" "$rounds"
}
echo "per-round shares of bare, rounds in the same machine state (median):"
echo "  bare axum + log line  $(matched logged)"
echo "  opsready stack        $(matched full)"
