#!/usr/bin/env bash
# Measures how far the Go runtime itself lets a server go on this machine:
# redis-benchmark against redis-server (no persistence), the write-back
# tiercached (default threads and --threads 1) and bench/ceiling, the
# smallest Go server that answers SET and GET (goroutine per connection with
# 2 and 1 threads, and a Redis-style epoll loop). Prints each system's
# throughput and p99 as the median of ROUNDS alternating rounds, and its
# ratio to Redis measured in the same rounds.
#
#   bench/ceiling.sh                   # 1 KB values, 3 rounds
#   SIZES="1024 120832" ROUNDS=5 bench/ceiling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/rb-lib.sh
go build -o "$dir/tiercached" ./cmd/tiercached
go build -o "$dir/ceiling" ./bench/ceiling

# start NAME: starts system NAME on $dir/NAME.sock; its pid is left in $pid.
start() {
  case $1 in
  redis) redis-server --unixsocket "$dir/$1.sock" --port 0 --save '' --appendonly no --dir "$dir" >/dev/null & ;;
  tiercached) "$dir/tiercached" --socket "$dir/$1.sock" --data-dir "$dir/data" --mem-max 2GiB \
    --write-policy back --nats off --log-level error & ;;
  tiercached-threads1) "$dir/tiercached" --socket "$dir/$1.sock" --data-dir "$dir/data" --mem-max 2GiB \
    --write-policy back --nats off --log-level error --threads 1 & ;;
  ceiling-goroutines) "$dir/ceiling" -socket "$dir/$1.sock" -loop goroutines & ;;
  ceiling-goroutines-threads1) GOMAXPROCS=1 "$dir/ceiling" -socket "$dir/$1.sock" -loop goroutines & ;;
  ceiling-epoll) "$dir/ceiling" -socket "$dir/$1.sock" -loop epoll & ;;
  esac
  pid=$!
}

systems="redis tiercached tiercached-threads1 ceiling-goroutines ceiling-goroutines-threads1 ceiling-epoll"
declare -A rps=() p99=()
for r in $(seq "$rounds"); do
  for s in $systems; do # one system alive at a time
    start $s
    pids+=("$pid")
    wait_sock "$dir/$s.sock"
    for size in ${SIZES:-1024}; do
      for t in set get; do
        read -r a b <<<"$(run "$dir/$s.sock" $t $size)"
        rps[$s$size$t]+="$a "; p99[$s$size$t]+="$b "
      done
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir/data" "$dir/$s.sock"
  done
  echo "round $r done" >&2
done

echo "| system | size | test | rps (median) | ÷ Redis | p99 ms | rounds rps |"
echo "|---|---|---|---|---|---|---|"
for size in ${SIZES:-1024}; do
  for t in set get; do
    base=$(tr ' ' '\n' <<<"${rps[redis$size$t]}" | grep . | median)
    for s in $systems; do
      m=$(tr ' ' '\n' <<<"${rps[$s$size$t]}" | grep . | median)
      p=$(tr ' ' '\n' <<<"${p99[$s$size$t]}" | grep . | median)
      printf "| %s | %s | %s | %.0f | %.2f | %s | %s|\n" "$s" "$size" "$t" "$m" "$(echo "$m / $base" | bc -l)" "$p" "${rps[$s$size$t]}"
    done
  done
done
