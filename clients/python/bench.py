"""Benchmarks of the tiercache Python client against a running daemon.

    python3 clients/python/bench.py --socket /tmp/tiercache.sock [--rounds 5]

Reports, as ratios measured in the same run (the two sides are called
alternately, and the median of the rounds is reported):
  * get_many of 16 CLIP embeddings (77x768 float16, 118 KB) against 16
    sequential get calls;
  * the client's get (frame decode included) against a raw redis-py GET of
    the same bytes, at 118 KB (goal: under 10% overhead) and 4 MB.
"""

import argparse
import statistics
import time

import numpy as np
import redis
from redis.utils import HIREDIS_AVAILABLE

from tiercache import Cache


def rounds(a, b, n, k):
    """Median over k rounds of the mean time of a and of b, the two called
    alternately within each round (a, b, a, b, ...), so that load changes
    on a shared machine fall on both alike."""
    clock = time.perf_counter
    ta, tb = [], []
    for _ in range(k):
        sa = sb = 0.0
        for _ in range(n):
            t0 = clock()
            a()
            t1 = clock()
            b()
            sb += clock() - t1
            sa += t1 - t0
        ta.append(sa / n)
        tb.append(sb / n)
    return statistics.median(ta), statistics.median(tb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", default="/tmp/tiercache.sock")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    print("redis-py %s, hiredis parser: %s" % (redis.__version__, "yes" if HIREDIS_AVAILABLE else "no"))
    c = Cache(socket=args.socket, timeout=60)
    raw = redis.Redis(unix_socket_path=args.socket, socket_timeout=60)
    g = np.random.default_rng(0)
    clip = [g.standard_normal((77, 768)).astype(np.float16) for _ in range(16)]
    keys = [b"bench:clip:%d" % i for i in range(16)]
    c.put_many(zip(keys, clip))
    for k in keys:  # warm: every value in L1
        c.get(k)

    many, seq = rounds(lambda: c.get_many(keys), lambda: [c.get(k) for k in keys], args.n // 4, args.rounds)
    print("get_many(16 x 118 KB) %.0f us, 16 x get %.0f us: %.2fx faster" % (many * 1e6, seq * 1e6, seq / many))

    for name, arr in [("118 KB", clip[0]), ("4 MB", g.standard_normal((1, 512, 4096)).astype(np.float16))]:
        c.put(b"bench:one", arr)
        t_client, t_raw = rounds(lambda: c.get(b"bench:one"), lambda: raw.get(b"bench:one"), args.n, args.rounds)
        print("get %s: client %.1f us, raw redis-py GET %.1f us: decode overhead %+.1f%%"
              % (name, t_client * 1e6, t_raw * 1e6, (t_client / t_raw - 1) * 100))
    raw.delete(*keys, b"bench:one")


if __name__ == "__main__":
    main()
