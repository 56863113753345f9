# Helpers shared by scripts/load.sh and scripts/ab.sh; sourced, not run.

# Waits until `GET /hello` answers on ADDR (host:port), or exits after
# ten seconds.
wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://$1/hello" && return 0
    sleep 0.1
  done
  echo "nothing answers on $1" >&2
  exit 1
}

# The median of the numbers on standard input, one per line.
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# The middle half of the numbers on standard input: "first quartile-third
# quartile".
quartiles() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 3) / 4)] "-" a[int((3 * NR + 3) / 4)]}'; }
