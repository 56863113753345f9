#!/usr/bin/env bash
# Instructions per request of `GET /hello` in process, through the whole
# opsready stack or bare axum, counted by callgrind: unlike a time, the count
# is the same from run to run however busy the machine is.
#
#   scripts/instructions.sh          # the stack
#   scripts/instructions.sh bare     # bare axum
#
# Two runs (5,000 and 25,000 requests) of examples/bare's `requests`
# binary; their difference over 20,000 leaves start-up out. One start-up
# cost varies between runs and is left out explicitly: `quanta::Clock::new`
# (the metrics recorder's clock) calibrates against the system clock for a
# fixed time, so under valgrind it runs a varying number of loops, several
# million instructions apart.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-stack}"
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian: apt-get install valgrind)" >&2; exit 1; }

cargo build --release -p bare --bin requests >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# requests -> instructions of a run, less the clock's calibration
count() {
  valgrind --tool=callgrind --callgrind-out-file="$work/$1.out" \
    target/release/requests "$1" "$which" > /dev/null 2> "$work/$1.err" \
    || { cat "$work/$1.err" >&2; exit 1; }
  callgrind_annotate --inclusive=yes "$work/$1.out" | awk '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /quanta::Clock::new / && !calibration { gsub(",", "", $1); calibration = $1 }
    END { print total - calibration }'
}
small=$(count 5000)
large=$(count 25000)
echo "$which: $(( (large - small) / 20000 )) instructions per request"
