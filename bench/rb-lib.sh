# Helpers shared by redis-benchmark.sh and ceiling.sh (sourced, not run,
# from the module root).
for t in redis-server redis-benchmark; do
  command -v $t >/dev/null || { echo "$t not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
rounds=${ROUNDS:-3}
# The work directory: on disk, not tmpfs (durable writes must reach a disk);
# every pid added to pids is killed and the directory removed on exit.
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/tc-$(basename "$0" .sh).XXXXXX")
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
# redis-benchmark's request count and key range per value size: a key range
# that keeps the working set in memory, runs of a few seconds each.
requests() { case $1 in 1024) echo 200000;; 120832) echo 20000;; *) echo 800;; esac; }
keyspace() { case $1 in 1024) echo 10000;; 120832) echo 1000;; *) echo 100;; esac; }
wait_sock() { for _ in $(seq 400); do [ -S "$1" ] && return; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }
# run SOCK TEST SIZE -> "rps p99": 16 clients
run() {
  redis-benchmark -s "$1" -t "$2" -n "$(requests "$3")" -c 16 -d "$3" -r "$(keyspace "$3")" --csv 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{print $2, $7}'
}
# median of the numbers on stdin, one per line
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
