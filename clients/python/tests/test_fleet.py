"""Cache.get_or_compute across hosts, unchanged: three tiercached daemons
form a fleet (daemon a runs the embedded NATS server, b and c join it; each
serves peers on loopback), and a stampede of workers on all three computes
each key once for the whole fleet, because a LEASE.GET of a key another
member owns takes the lease at the owner."""

import random
import socket
import threading
import time

import numpy as np
import pytest
import redis

from conftest import Daemon
from tiercache import Cache, cache_key

PEER_PASSWORD = "pyfleet-secret"


def free_port():
    """A loopback port free a moment ago (the embedded NATS server needs a
    fixed one that b and c can be given before a has started)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet_args(node_id, nats):
    return ["--nats", nats, "--node-id", node_id, "--peer-listen", "127.0.0.1:0",
            "--peer-password", PEER_PASSWORD, "--peer-timeout", "5s"]


def peers_info(sock):
    r = redis.Redis(unix_socket_path=sock, socket_timeout=5)
    try:
        return r.info("peers")
    finally:
        r.close()


@pytest.fixture
def fleet(tiercached_bin):
    """Three daemons, a, b and c, each seeing the other two live."""
    daemons = []
    try:
        for attempt in range(3):  # the port picked for NATS may be taken meanwhile
            port = free_port()
            a = Daemon(tiercached_bin, fleet_args("a", "embedded") + ["--nats-listen", "127.0.0.1:%d" % port])
            daemons.append(a)
            try:
                a.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        url = "nats://127.0.0.1:%d" % port
        for node_id in ("b", "c"):
            d = Daemon(tiercached_bin, fleet_args(node_id, url))
            daemons.append(d)
            d.start()
        fleet = daemons[-3:]
        deadline = time.monotonic() + 30
        while True:
            infos = [peers_info(d.socket) for d in fleet]
            if all(i.get("peers") == 2 and i.get("peers_live") == 2 for i in infos):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the fleet did not form within 30 s: INFO peers %r" % infos)
            time.sleep(0.05)  # polling INFO until every member sees the other two
        yield fleet
    finally:
        for d in daemons:
            d.cleanup()


def stampede(sockets, threads_per_daemon=8, nkeys=100, compute_s=0.005):
    """threads_per_daemon threads per socket call get_or_compute on the
    same nkeys new keys at once, each in its own order, each with its own
    Cache. Returns (computations per key, errors, seconds)."""
    run = "%d-%f" % (time.time_ns(), random.random())  # new keys on every run
    keys = [cache_key("pyfleet", "v1", "embed", {"run": run, "i": i}) for i in range(nkeys)]
    want = [np.arange(64, dtype=np.float32) + i for i in range(nkeys)]
    calls = [0] * nkeys
    lock = threading.Lock()
    errors = []
    start = threading.Barrier(len(sockets) * threads_per_daemon)

    def compute(i):
        with lock:
            calls[i] += 1
        time.sleep(compute_s)  # a model's run: long enough for the others to ask meanwhile
        return want[i].copy()

    def worker(sock, seed):
        order = random.Random(seed).sample(range(nkeys), nkeys)
        c = Cache(socket=sock, timeout=90)
        try:
            start.wait(30)
            for i in order:
                got = c.get_or_compute(keys[i], lambda i=i: compute(i))
                if not (isinstance(got, np.ndarray) and got.dtype == want[i].dtype and np.array_equal(got, want[i])):
                    errors.append("%s: key %d: got %r" % (sock, i, got))
        except Exception as e:  # reported by the test, with the others
            errors.append("%s: %r" % (sock, e))
        finally:
            c.close()

    ts = [threading.Thread(target=worker, args=(s, n * threads_per_daemon + w))
          for n, s in enumerate(sockets) for w in range(threads_per_daemon)]
    began = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    took = time.monotonic() - began
    if any(t.is_alive() for t in ts):
        errors.append("workers still running after 120 s")
    return calls, errors, took


def test_fleet_get_or_compute_once_per_key(fleet):
    calls, errors, took = stampede([d.socket for d in fleet])
    assert errors == []
    assert sum(calls) == 100, "computations per key: %r (%.2f s)" % (calls, took)
    assert all(n == 1 for n in calls), calls
    # No lookup of an owner failed (a failed one would have made that lease local).
    infos = [peers_info(d.socket) for d in fleet]
    assert sum(i.get("peer_errors", 0) + i.get("peer_timeouts", 0) for i in infos) == 0, infos
