#!/usr/bin/env bash
# Runs redis-benchmark against tiercached and redis-server, all on Unix
# sockets in a temporary directory, and prints a Markdown table of
# throughput and p99 latency with their ratios.
#
#   bench/redis-benchmark.sh                       # both policies, 3 rounds
#   POLICIES=back ROUNDS=5 bench/redis-benchmark.sh
#   TIERCACHED_ARGS="--threads 1" POLICIES=back bench/redis-benchmark.sh
#
# 16 clients, -t set,get, values of 1 KB, 118 KB and 4 MB, a key range that
# keeps the working set in L1 (and in Redis' memory). Each cell is the
# median of ROUNDS rounds; within a round the peer and tiercached run
# back to back, so both see the same machine. Only one tiercached is alive
# at a time (another one's background work would skew the run). The
# write-back daemon is compared with Redis without persistence, the
# write-through daemon (a durable write every --flush-interval) with Redis
# with appendonly yes and appendfsync everysec. The disk's own fsync'd
# sequential bandwidth (dd oflag=dsync) is printed first: it is the limit
# of durable writes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/rb-lib.sh
go build -o "$dir/tiercached" ./cmd/tiercached

dd_mbs=$(dd if=/dev/zero of="$dir/dd" bs=1M count=256 oflag=dsync 2>&1 | awk '/copied/ {print $(NF-1), $NF}')
rm -f "$dir/dd"
echo "disk, fsync'd sequential writes (dd bs=1M count=256 oflag=dsync): $dd_mbs"
echo

redis-server --unixsocket "$dir/redis.sock" --port 0 --save '' --appendonly no --dir "$dir" >/dev/null &
pids+=($!)
mkdir -p "$dir/aof"
redis-server --unixsocket "$dir/redis-aof.sock" --port 0 --save '' --appendonly yes --appendfsync everysec \
  --dir "$dir/aof" >/dev/null &
pids+=($!)
wait_sock "$dir/redis.sock"
wait_sock "$dir/redis-aof.sock"

echo "| policy | peer | size | test | peer rps | tiercached rps | ratio | peer p99 ms | tiercached p99 ms | tiercached MB/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for policy in ${POLICIES:-back through}; do
  peer=redis; peersock="$dir/redis.sock"
  if [ "$policy" = through ]; then peer=redis-aof; peersock="$dir/redis-aof.sock"; fi
  "$dir/tiercached" --socket "$dir/tc.sock" --data-dir "$dir/data-$policy" --mem-max 2GiB \
    --write-policy "$policy" --nats off --log-level error ${TIERCACHED_ARGS:-} &
  tc=$!
  pids+=($tc)
  wait_sock "$dir/tc.sock"
  declare -A prps=() pp99=() crps=() cp99=()
  for r in $(seq "$rounds"); do
    for size in 1024 120832 4194304; do
      for t in set get; do
        read -r a b <<<"$(run "$peersock" $t $size)"
        prps[$size$t]+="$a "; pp99[$size$t]+="$b "
        read -r a b <<<"$(run "$dir/tc.sock" $t $size)"
        crps[$size$t]+="$a "; cp99[$size$t]+="$b "
        echo "round $r $policy $size $t: ${prps[$size$t]}| ${crps[$size$t]}" >&2
      done
    done
  done
  for size in 1024 120832 4194304; do
    for t in set get; do
      pr=$(tr ' ' '\n' <<<"${prps[$size$t]}" | grep . | median)
      cr=$(tr ' ' '\n' <<<"${crps[$size$t]}" | grep . | median)
      pp=$(tr ' ' '\n' <<<"${pp99[$size$t]}" | grep . | median)
      cp=$(tr ' ' '\n' <<<"${cp99[$size$t]}" | grep . | median)
      printf "| %s | %s | %s | %s | %.0f | %.0f | %.2f | %s | %s | %.0f |\n" "$policy" "$peer" "$size" "$t" \
        "$pr" "$cr" "$(echo "$cr / $pr" | bc -l)" "$pp" "$cp" "$(echo "$cr * $size / 1000000" | bc -l)"
    done
  done
  unset prps pp99 crps cp99
  kill "$tc"; wait "$tc" 2>/dev/null || true
  rm -f "$dir/tc.sock"
done
