#!/usr/bin/env bash
# cluster.sh: the docker-compose topology as plain processes on one machine,
# with nothing but Go: three NATS JetStream nodes (deploy/natsd, the
# nats-server module in-process) and three tiercached daemons, each on its
# own NATS node, sharing their values as one fleet cache (peer fill).
# Everything listens on 127.0.0.1.
#
#   deploy/cluster.sh            start, print how to use it, run until Ctrl-C
#   deploy/cluster.sh --smoke    start, roll out clip v2 and check every
#                                daemon, then that a value SET on tc-1 is
#                                served by tc-2 and tc-3 (needs redis-cli),
#                                stop; exit status
#
# Ctrl-C (or SIGTERM) stops the daemons gracefully (SIGTERM; each exits 0
# once its L1-only entries are on disk), then the NATS nodes.
#
# Environment:
#   CLUSTER_DIR   state, sockets and logs (default ${TMPDIR:-/tmp}/tiercache-cluster;
#                 kept between runs, so a restart is warm; remove it to start afresh)
#   PORT_BASE     NATS clients on PORT_BASE+1..3, routes on +11..13, NATS
#                 monitoring on +21..23, daemon metrics on +31..33, peer
#                 fill on +41..43 (default 14200)
#   PEER_PASSWORD the peers' password (default: a random one, kept in
#                 CLUSTER_DIR/peer-password, mode 0600); the daemons read it
#                 with --peer-password-file, so it is not in ps
#   MEM_MAX, DISK_MAX   per daemon (default 256MiB, 2GiB)
#
# The programs are built with "go build" into CLUSTER_DIR/bin rather than
# started with "go run": go run would stand between this script and each
# program, and the signals and exit codes below must reach the program
# itself.
set -euo pipefail

smoke=0
case "${1:-}" in
  --smoke) smoke=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/tiercache-cluster}
base=${PORT_BASE:-14200}
mem_max=${MEM_MAX:-256MiB}
disk_max=${DISK_MAX:-2GiB}
bin=$dir/bin
mkdir -p "$bin" "$dir/logs"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }

log "building into $bin"
(cd "$root" && go build -o "$bin/" ./cmd/tiercached ./cmd/tierctl ./deploy/natsd ./deploy/healthcheck)

# Every background job gets its own process group (job control), so that
# Ctrl-C reaches this script only and the trap below stops the programs in
# order, each with one signal.
set -m

nats_pids=()
daemon_pids=()
names=()

stop_all() {
  trap - INT TERM EXIT
  local status=0 pid code i
  if ((${#daemon_pids[@]})); then
    log "stopping the daemons (SIGTERM)"
    kill -TERM "${daemon_pids[@]}" 2>/dev/null || true
    for i in "${!daemon_pids[@]}"; do
      pid=${daemon_pids[$i]}
      code=0
      wait "$pid" || code=$?
      log "tc-$((i + 1)) (pid $pid) exited with $code"
      ((code == 0)) || status=1
    done
  fi
  if ((${#nats_pids[@]})); then
    log "stopping the NATS nodes"
    kill -TERM "${nats_pids[@]}" 2>/dev/null || true
    for pid in "${nats_pids[@]}"; do wait "$pid" || true; done
  fi
  return $status
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'code=$?; stop_all || code=1; exit $code' EXIT

# poll CMD...: run CMD every 100ms until it succeeds, at most 60s.
poll() {
  local what=$1; shift
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out waiting for $what"
      return 1
    fi
    sleep 0.1 # the polling interval
  done
}

routes=""
for i in 1 2 3; do
  routes+="${routes:+,}nats-route://127.0.0.1:$((base + 10 + i))"
done
nats_urls=""
for i in 1 2 3; do
  nats_urls+="${nats_urls:+,}nats://127.0.0.1:$((base + i))"
done

for i in 1 2 3; do
  mkdir -p "$dir/nats-$i"
  "$bin/natsd" --name "nats-$i" --listen "127.0.0.1:$((base + i))" \
    --http "127.0.0.1:$((base + 20 + i))" \
    --cluster-name tiercache --cluster "127.0.0.1:$((base + 10 + i))" --routes "$routes" \
    --store-dir "$dir/nats-$i" >"$dir/logs/nats-$i.log" 2>&1 &
  nats_pids+=($!)
done
for i in 1 2 3; do
  # nats-server's /healthz is 200 once JetStream is up with a meta leader.
  poll "nats-$i" "$bin/healthcheck" "http://127.0.0.1:$((base + 20 + i))/healthz"
done
log "NATS cluster ready: $nats_urls"

replicas=(--models-replicas 3) # the registry buckets on all three NATS nodes

# The peers' password, in a file only this user reads.
peer_pass_file=$dir/peer-password
(
  umask 077
  if [[ -n ${PEER_PASSWORD:-} ]]; then
    printf '%s\n' "$PEER_PASSWORD" >"$peer_pass_file"
  elif [[ ! -s $peer_pass_file ]]; then
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$peer_pass_file"
  fi
)

for i in 1 2 3; do
  name=tc-$i
  names+=("$name")
  mkdir -p "$dir/$name"
  "$bin/tiercached" --node-id "$name" --nats "nats://127.0.0.1:$((base + i))" \
    --socket "$dir/$name/tiercache.sock" --data-dir "$dir/$name/data" \
    --mem-max "$mem_max" --disk-max "$disk_max" \
    --metrics "127.0.0.1:$((base + 30 + i))" --log-format json "${replicas[@]}" \
    --peer-listen "127.0.0.1:$((base + 40 + i))" --peer-password-file "$peer_pass_file" \
    >"$dir/logs/$name.log" 2>&1 &
  daemon_pids+=($!)
done
for i in 1 2 3; do
  if ! poll "tc-$i" "$bin/healthcheck" "http://127.0.0.1:$((base + 30 + i))/healthz"; then
    tail -n 5 "$dir/logs/tc-$i.log" >&2
    exit 1
  fi
done
log "daemons ready"

if ((smoke)); then
  "$bin/tierctl" --socket "$dir/tc-1/tiercache.sock" rollout clip v2 --wait 10s
  if ! command -v redis-cli >/dev/null; then
    log "redis-cli not installed: skipping the per-daemon checks"
    exit 0
  fi
  fail=0
  for i in 1 2 3; do
    sock=$dir/tc-$i/tiercache.sock
    got=$(redis-cli -s "$sock" MODEL.GET clip)
    stale=$(redis-cli -s "$sock" SET '{clip@v1}x' old)
    if [[ $got == v2 && $stale == "STALE clip is at v2" ]]; then
      log "tc-$i: MODEL.GET clip = $got; SET {clip@v1}x: $stale"
    else
      log "tc-$i: MODEL.GET clip = '$got', SET {clip@v1}x = '$stale'; want v2 and STALE clip is at v2"
      fail=1
    fi
  done
  # Peer fill: a value SET on tc-1 is served by the others, from its owner
  # (forwarded writes are asynchronous: poll).
  sock1=$dir/tc-1/tiercache.sock
  for k in 1 2 3 4 5 6 7 8; do redis-cli -s "$sock1" SET "smoke:peer:$k" "v$k" >/dev/null; done
  for i in 2 3; do
    sock=$dir/tc-$i/tiercache.sock
    peer_get() { local k; for k in 1 2 3 4 5 6 7 8; do [[ $(redis-cli -s "$sock" GET "smoke:peer:$k") == "v$k" ]] || return 1; done; }
    if poll "tc-$i to serve tc-1's values" peer_get; then
      log "tc-$i: $(redis-cli -s "$sock" INFO peers | grep -E '^(peers_live|peer_hits):' | tr -d '\r' | tr '\n' ' ')"
    else
      fail=1
    fi
  done
  exit $fail
fi

cat >&2 <<EOF

tiercache cluster running (state in $dir, logs in $dir/logs):
  NATS       $nats_urls   (monitoring: http://127.0.0.1:$((base + 21))/jsz)
  tc-1       socket $dir/tc-1/tiercache.sock   metrics http://127.0.0.1:$((base + 31))/metrics
  tc-2       socket $dir/tc-2/tiercache.sock   metrics http://127.0.0.1:$((base + 32))/metrics
  tc-3       socket $dir/tc-3/tiercache.sock   metrics http://127.0.0.1:$((base + 33))/metrics
  peer fill  127.0.0.1:$((base + 41))..$((base + 43)), password in $peer_pass_file

  $bin/tierctl --socket $dir/tc-1/tiercache.sock rollout clip v2 --wait 10s
  $bin/tierctl --socket $dir/tc-2/tiercache.sock stats
  redis-cli -s $dir/tc-3/tiercache.sock MODEL.GET clip
  redis-cli -s $dir/tc-1/tiercache.sock SET k v; redis-cli -s $dir/tc-2/tiercache.sock GET k

Ctrl-C stops everything.
EOF
# Until Ctrl-C, or until a program dies on its own.
wait -n "${nats_pids[@]}" "${daemon_pids[@]}" || true
log "a program exited on its own; stopping the rest"
exit 1
