#!/usr/bin/env bash
# Small records through L2: REQUESTS (default 2,000,000) pipelined SETs of
# 1 KB to random keys out of as many (redis-benchmark -c 16 -P 16 -r
# REQUESTS), so that L1 (--mem-max 256MiB) overflows and every SET reaches
# Pebble: write-through directly, write-back through demotion. Compared with
# Redis with appendonly yes and appendfsync everysec, in alternating rounds,
# each server started on an empty directory and alone while it runs. Prints
# a Markdown table of SETs/s, p99 and peak RSS (VmHWM), medians of ROUNDS.
#
#   bench/small-records.sh
#   REQUESTS=500000 ROUNDS=1 bench/small-records.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/rb-lib.sh
go build -o "$dir/tiercached" ./cmd/tiercached
n=${REQUESTS:-2000000}

# run_one NAME: starts the server NAME on an empty directory, runs the
# benchmark, prints "rps p99 peak_rss_MiB" and stops the server.
run_one() {
  rm -rf "$dir/data" && mkdir -p "$dir/data"
  case $1 in
    redis-aof)
      redis-server --unixsocket "$dir/s.sock" --port 0 --save '' --appendonly yes --appendfsync everysec \
        --dir "$dir/data" >/dev/null &
      ;;
    *)
      "$dir/tiercached" --socket "$dir/s.sock" --data-dir "$dir/data" --mem-max 256MiB \
        --write-policy "${1#tiercached-}" --nats off --log-level error &
      ;;
  esac
  local pid=$!
  pids+=($pid)
  wait_sock "$dir/s.sock"
  local out
  out=$(redis-benchmark -s "$dir/s.sock" -t set -n "$n" -r "$n" -c 16 -P 16 -d 1024 --csv 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{print $2, $7}')
  echo "$out $(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$dir/s.sock"
}

servers="redis-aof tiercached-through tiercached-back"
declare -A rps=() p99=() rss=()
for r in $(seq "$rounds"); do
  for s in $servers; do
    read -r a b c <<<"$(run_one "$s")"
    rps[$s]+="$a "; p99[$s]+="$b "; rss[$s]+="$c "
    echo "round $r $s: $a SETs/s, p99 $b ms, peak RSS $c MiB" >&2
  done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
base=$(med "${rps[redis-aof]}")
echo "| server | SETs/s | ÷ redis-aof | p99 ms | peak RSS MiB |"
echo "|---|---|---|---|---|"
for s in $servers; do
  v=$(med "${rps[$s]}")
  printf "| %s | %.0f | %.2f | %s | %s |\n" "$s" "$v" "$(echo "$v / $base" | bc -l)" "$(med "${p99[$s]}")" "$(med "${rss[$s]}")"
done
