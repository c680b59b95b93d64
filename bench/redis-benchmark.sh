#!/usr/bin/env bash
# Runs redis-benchmark against tiercached and redis-server, both on Unix
# sockets in a temporary directory, and prints a Markdown table of
# throughput and p99 latency with their ratios.
#
#   bench/redis-benchmark.sh                 # write-through and write-back
#   POLICIES=back bench/redis-benchmark.sh   # one policy
#
# 16 clients, -t set,get, values of 1 KB, 118 KB and 4 MB, a key range that
# keeps the working set in L1 (and in Redis' memory).
set -euo pipefail
cd "$(dirname "$0")/.."
for t in redis-server redis-benchmark; do
  command -v $t >/dev/null || { echo "$t not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
go build -o "$dir/tiercached" ./cmd/tiercached

requests() { case $1 in 1024) echo 200000;; 120832) echo 20000;; *) echo 800;; esac; }
keyspace() { case $1 in 1024) echo 10000;; 120832) echo 1000;; *) echo 100;; esac; }
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }
# run SOCK TEST SIZE -> "rps p99"
run() {
  redis-benchmark -s "$1" -t "$2" -n "$(requests "$3")" -c 16 -d "$3" -r "$(keyspace "$3")" --csv 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{print $2, $7}'
}

redis-server --unixsocket "$dir/redis.sock" --port 0 --save '' --appendonly no >/dev/null &
pids+=($!)
wait_sock "$dir/redis.sock"

echo "| policy | size | test | redis-server rps | tiercached rps | ratio | redis p99 ms | tiercached p99 ms |"
echo "|---|---|---|---|---|---|---|---|"
for policy in ${POLICIES:-through back}; do
  "$dir/tiercached" --socket "$dir/tc-$policy.sock" --data-dir "$dir/data-$policy" --mem-max 2GiB \
    --write-policy "$policy" --nats off --log-level error &
  pids+=($!)
  wait_sock "$dir/tc-$policy.sock"
  for size in 1024 120832 4194304; do
    for t in set get; do
      read -r rr rp <<<"$(run "$dir/redis.sock" $t $size)"
      read -r cr cp <<<"$(run "$dir/tc-$policy.sock" $t $size)"
      printf "| %s | %s | %s | %.0f | %.0f | %.2f | %s | %s |\n" "$policy" "$size" "$t" "$rr" "$cr" "$(echo "$cr / $rr" | bc -l)" "$rp" "$cp"
    done
  done
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
