#!/usr/bin/env bash
# The stack as built from another revision against the stack as it is now,
# and bare axum, in the same run: whether a change moved the throughput,
# on a machine whose speed drifts more from day to day than most changes
# move it. Each server is pinned to core 0 and wrk to core 1, as in
# scripts/load.sh; rounds alternate the three servers.
#
#   scripts/ab.sh main~3                    # 15 rounds of 3 s per server
#   ROUNDS=21 DURATION=3s scripts/ab.sh v0.1.0
#
# The other revision is built in a temporary git worktree, into a target
# directory of its own under this checkout's (`target/ab-before`, kept for
# the next run). Prints, per server, the median requests per second and CPU time
# per request, and the share of bare axum, paired round by round.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/load-common.sh
. scripts/lib/load-common.sh
[ $# -eq 1 ] || { echo "usage: scripts/ab.sh REVISION" >&2; exit 2; }
before="$1"
duration="${DURATION:-3s}"
rounds="${ROUNDS:-15}"
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)" >&2; exit 1; }
git rev-parse --verify --quiet "$before^{commit}" >/dev/null \
  || { echo "no such revision: $before" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  git worktree remove --force "$work/tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

git worktree add --quiet --detach "$work/tree" "$before"
# A target directory of its own, kept between runs: sharing this
# checkout's would mix the two revisions' crates, which have the same names
# and versions, by their files' times (the worktree's are newer).
(cd "$work/tree" && CARGO_TARGET_DIR="$target/ab-before" cargo build --release -p bare --bin stack >&2)
cp "$target/ab-before/release/stack" "$work/stack-before"
cargo build --release -p bare --bins >&2

BARE_ADDR=127.0.0.1:18190 taskset -c 0 "$target/release/bare" &
pids+=("$!")
for side in before:18181:19191:"$work/stack-before" now:18180:19190:"$target/release/stack"; do
  IFS=: read -r name port admin binary <<< "$side"
  STACK__SERVER__ADDR=127.0.0.1:$port STACK__ADMIN__ADDR=127.0.0.1:$admin \
    STACK__TELEMETRY__LOG__FORMAT=json \
    taskset -c 0 "$binary" > "$work/$name.log" &
  pids+=("$!")
done
wait_port 127.0.0.1:18190
wait_port 127.0.0.1:18181
wait_port 127.0.0.1:18180

# pid url -> "requests-per-second cpu-us-per-request"
measure() {
  local before after out
  before=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  out=$(taskset -c 1 wrk -t1 -c32 -d"$duration" "$2")
  after=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
    /requests in/ { requests = $1 }
    /Requests\/sec/ { rps = $2 }
    END { printf "%s %.3f\n", rps, (after - before) * 1e6 / hz / requests }' <<< "$out"
}

for round in $(seq 1 "$rounds"); do
  read -r b bcpu < <(measure "${pids[0]}" http://127.0.0.1:18190/hello)
  read -r o ocpu < <(measure "${pids[1]}" http://127.0.0.1:18181/hello)
  read -r n ncpu < <(measure "${pids[2]}" http://127.0.0.1:18180/hello)
  echo "$b" >> "$work/bare"; echo "$bcpu" >> "$work/bare-cpu"
  echo "$o" >> "$work/before"; echo "$ocpu" >> "$work/before-cpu"
  echo "$n" >> "$work/now"; echo "$ncpu" >> "$work/now-cpu"
  awk -v b="$b" -v o="$o" 'BEGIN { printf "%.1f\n", 100 * o / b }' >> "$work/share-before"
  awk -v b="$b" -v n="$n" 'BEGIN { printf "%.1f\n", 100 * n / b }' >> "$work/share-now"
  echo "round $round: bare $b req/s ($bcpu us); $before $o req/s ($ocpu us); now $n req/s ($ncpu us)" >&2
done
echo "medians of $rounds rounds"
for server in "bare:bare axum" "before:stack at $before" "now:stack now"; do
  name=${server%%:*}
  line=$(printf "  %-24s %10.0f req/s  %6.2f us CPU/req" "${server#*:}" \
    "$(median < "$work/$name")" "$(median < "$work/$name-cpu")")
  [ "$name" = bare ] || line="$line  $(median < "$work/share-$name")% of bare, paired"
  echo "$line"
done
