#!/usr/bin/env bash
# Throughput of the whole opsready stack (request id, tracing with JSON logs
# to a file, metrics, problem layer, timeout, load shedding, panic catcher)
# against bare axum on the same trivial route, in the same run: the binaries
# of examples/bare, `stack` and `bare`, serve the same handler. A third,
# `logged`, is bare axum writing one JSON line per request to a file and
# nothing else: what per-request file logging costs by itself, whatever
# the stack around it. A fourth, `handmade`, is the stack a team assembles
# by hand from the usual crates (tower-http's request-id and trace layers, a
# Prometheus layer, tracing-subscriber's JSON lines): the reference point
# the metrics issue quotes. Each server is pinned to core 0 and wrk to
# core 1.
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

# The servers, in the order each round measures them; bare axum first, as
# the others' shares are of its round.
servers=(bare logged handmade full)
declare -A pid
declare -A addr=([bare]=127.0.0.1:18090 [logged]=127.0.0.1:18091 [handmade]=127.0.0.1:18092 [full]=127.0.0.1:18080)
declare -A label=([bare]="bare axum" [logged]="bare axum + log line" [handmade]="hand-assembled stack" [full]="opsready stack")

# pid -> "user system" clock ticks of the process so far
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

BARE_ADDR=127.0.0.1:18090 taskset -c 0 target/release/bare &
pids+=("$!")
pid[bare]=$!
BARE_ADDR=127.0.0.1:18091 taskset -c 0 target/release/logged > "$work/logged.log" &
pids+=("$!")
pid[logged]=$!
BARE_ADDR=127.0.0.1:18092 taskset -c 0 target/release/handmade > "$work/handmade.log" &
pids+=("$!")
pid[handmade]=$!
STACK__SERVER__ADDR=127.0.0.1:18080 STACK__ADMIN__ADDR=127.0.0.1:19091 \
  STACK__TELEMETRY__LOG__FORMAT=json \
  taskset -c 0 target/release/stack > "$work/stack.log" &
pids+=("$!")
pid[full]=$!
for server in "${servers[@]}"; do wait_port "${addr[$server]}"; done

for round in $(seq 1 "$rounds"); do
  summary="round $round:"
  for server in "${servers[@]}"; do
    read -r rps cpu user sys busy < <(measure "${pid[$server]}" "http://${addr[$server]}/hello")
    echo "$rps" >> "$work/$server"
    echo "$cpu" >> "$work/$server-cpu"
    echo "$user" >> "$work/$server-user"
    echo "$sys" >> "$work/$server-sys"
    echo "$busy" >> "$work/$server-wrk"
    if [ "$server" = bare ]; then
      bare_rps=$rps
      summary+=$(printf " bare %.0f req/s, %.2f us CPU/req;" "$rps" "$cpu")
    else
      # Each round's shares, paired: the servers of one round ran back to
      # back, so the machine's drift between rounds cancels out.
      awk -v b="$bare_rps" -v o="$rps" 'BEGIN { printf "%.1f\n", 100 * o / b }' >> "$work/share-$server"
      summary+=$(printf " %s %.0f req/s, %.2f us (%.0f%%);" "$server" "$rps" "$cpu" "$(awk -v b="$bare_rps" -v o="$rps" 'BEGIN { print 100 * o / b }')")
    fi
  done
  echo "${summary%;}" >&2
done

bare=$(median < "$work/bare")
bare_cpu=$(median < "$work/bare-cpu")
echo "medians of $rounds rounds"
for server in "${servers[@]}"; do
  rps=$(median < "$work/$server")
  cpu=$(median < "$work/$server-cpu")
  if [ "$server" = bare ]; then
    printf "%-22s %10.0f req/s  %6.2f us CPU/req\n" "${label[$server]}" "$rps" "$cpu"
  else
    awk -v name="${label[$server]}" -v b="$bare" -v o="$rps" -v bc="$bare_cpu" -v oc="$cpu" 'BEGIN {
      printf "%-22s %10.0f req/s  %6.2f us CPU/req  %3.0f%% of bare by req/s, %3.0f%% by CPU\n", name, o, oc, 100 * o / b, 100 * bc / oc
    }'
  fi
done
echo "log lines the opsready stack wrote: $(wc -l < "$work/stack.log")"
# User time is the servers' own code; system time is the kernel's work for
# them (sockets, waking wrk, writing the log file). Both are sampled at
# each clock tick, so single rounds are rough; medians are steadier.
echo "CPU per request, user + system (medians):"
for server in "${servers[@]}"; do
  printf "  %-21s %6.2f us user  %6.2f us system\n" "${label[$server]}" \
    "$(median < "$work/$server-user")" "$(median < "$work/$server-sys")"
done
# wrk near 100 % of its core: the load generator, not only the server, set
# the pace of those rounds (see docs/benchmarks.md on wake-ups).
echo "wrk's use of its core (medians):"
for server in "${servers[@]}"; do
  printf "  %-21s %5.1f %%\n" "${label[$server]}" "$(median < "$work/$server-wrk")"
done
echo "per-round shares of bare (median, middle half of the rounds):"
for server in "${servers[@]:1}"; do
  printf "  %-21s %s%% (%s%%)\n" "${label[$server]}" \
    "$(median < "$work/share-$server")" "$(quartiles < "$work/share-$server")"
done
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
  if [ -s "$work/matched-$1" ]; then
    printf "%s%% (%d of %d rounds)" "$(median < "$work/matched-$1")" "$(wc -l < "$work/matched-$1")" "$rounds"
  else
    printf "none of %d rounds" "$rounds"
  fi
}
echo "per-round shares of bare, rounds in the same machine state (median):"
for server in "${servers[@]:1}"; do
  printf "  %-21s %s\n" "${label[$server]}" "$(matched "$server")"
done
# Bare axum's rounds fall into a fast and a slow state (see
# docs/benchmarks.md: a server a little faster than wrk rarely has to wake
# it), while a slower server stays in one. The shares in each of bare
# axum's states, split at the middle of its range of CPU per request, show
# how much of a run's share is which state it found. The split is made
# whatever the rounds: it means something when bare axum's CPU per round
# falls into two groups, as in long runs it does.
by_bare_state() {
  paste "$work/bare-cpu" "$work/share-$1" | awk '
    { bare[NR] = $1; share[NR] = $2 }
    NR == 1 || $1 < min { min = $1 } NR == 1 || $1 > max { max = $1 }
    END {
      for (i = 1; i <= NR; i++) print (bare[i] < (min + max) / 2 ? "fast" : "slow"), share[i]
    }' > "$work/states-$1"
  local state shares
  for state in fast slow; do
    shares=$(awk -v s="$state" '$1 == s { print $2 }' "$work/states-$1")
    if [ -n "$shares" ]; then
      printf "%s %s%% (%d rounds)" "$state" "$(median <<< "$shares")" "$(wc -l <<< "$shares")"
    else
      printf "%s: no round" "$state"
    fi
    [ "$state" = fast ] && printf ", "
  done
}
echo "per-round shares of bare, by bare axum's state (median):"
for server in "${servers[@]:1}"; do
  printf "  %-21s %s\n" "${label[$server]}" "$(by_bare_state "$server")"
done
