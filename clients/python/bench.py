"""Benchmarks of the tiercache Python client against a running daemon.

    python3 clients/python/bench.py --socket /tmp/tiercache.sock [--rounds 5]

Reports, as ratios measured in the same run (the two sides are called
alternately, and the median of the rounds is reported):
  * get_many of 16 CLIP embeddings (77x768 float16, 118 KB) against 16
    sequential get calls;
  * the client's get (frame decode included) against a raw redis-py GET of
    the same bytes, at 118 KB (goal: under 10% overhead) and 4 MB;
  * AsyncCache.get against a raw redis.asyncio GET of the same 118 KB
    (goal: under 10% overhead), by the per-call median and the mean, and
    raw against raw, which shows how far the machine's load alone moves
    each figure, and raw redis.asyncio against raw redis-py;
  * throughput of 118 KB gets from 64 concurrent tasks on one AsyncCache
    against 64 threads on one Cache (and 64 tasks of raw redis.asyncio
    GETs, for reference), rounds alternated the same way.

--only sync or --only async runs one half.
"""

import argparse
import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import redis
import redis.asyncio
from redis.utils import HIREDIS_AVAILABLE

from tiercache import Cache
from tiercache.aio import AsyncCache


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


async def arounds(a, b, n, k):
    """rounds for coroutine functions a and b, on the running event loop.
    Returns ((mean a, mean b), (median a, median b)): each the median over
    the rounds of that statistic of a round's calls. An await that waits
    for the daemon lets a loaded machine deschedule the process for
    milliseconds, which moves a round's mean; the per-call median is the
    figure those stalls do not move."""
    clock = time.perf_counter
    ma, mb, da, db = [], [], [], []
    for _ in range(k):
        ca, cb = [], []
        for _ in range(n):
            t0 = clock()
            await a()
            t1 = clock()
            await b()
            cb.append(clock() - t1)
            ca.append(t1 - t0)
        ma.append(statistics.mean(ca))
        mb.append(statistics.mean(cb))
        da.append(statistics.median(ca))
        db.append(statistics.median(cb))
    med = statistics.median
    return (med(ma), med(mb)), (med(da), med(db))


def throughput(sides, k):
    """Median over k rounds of each side's calls per second; a side is a
    function that runs one burst and returns how many calls it made. The
    sides run one after the other within a round, each round starting one
    side further on, so that no side always follows the same one."""
    rates = [[] for _ in sides]
    for r in range(k):
        for j in range(len(sides)):
            i = (r + j) % len(sides)
            t0 = time.perf_counter()
            calls = sides[i]()
            rates[i].append(calls / (time.perf_counter() - t0))
    return [statistics.median(x) for x in rates]


def bench_sync(args, g, clip, keys):
    """The synchronous client: get_many against gets, and get against a raw
    redis-py GET at 118 KB and 4 MB."""
    c = Cache(socket=args.socket, timeout=60)
    raw = redis.Redis(unix_socket_path=args.socket, socket_timeout=60)
    many, seq = rounds(lambda: c.get_many(keys), lambda: [c.get(k) for k in keys], args.n // 4, args.rounds)
    print("get_many(16 x 118 KB) %.0f us, 16 x get %.0f us: %.2fx faster" % (many * 1e6, seq * 1e6, seq / many))

    for name, arr in [("118 KB", clip[0]), ("4 MB", g.standard_normal((1, 512, 4096)).astype(np.float16))]:
        c.put(b"bench:one", arr)
        t_client, t_raw = rounds(lambda: c.get(b"bench:one"), lambda: raw.get(b"bench:one"), args.n, args.rounds)
        print("get %s: client %.1f us, raw redis-py GET %.1f us: decode overhead %+.1f%%"
              % (name, t_client * 1e6, t_raw * 1e6, (t_client / t_raw - 1) * 100))
    c.close()
    raw.close()


def bench_async(args, clip, keys, workers=64):
    """AsyncCache: get against a raw redis.asyncio GET at 118 KB, and the
    throughput of workers tasks against workers threads on Cache."""
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    ac = AsyncCache(socket=args.socket, timeout=60)
    araw = redis.asyncio.Redis(unix_socket_path=args.socket, socket_timeout=60)
    run(ac.put(b"bench:one", clip[0]))
    (m_client, m_raw), (d_client, d_raw) = run(
        arounds(lambda: ac.get(b"bench:one"), lambda: araw.get(b"bench:one"), args.n, args.rounds))
    print("AsyncCache.get 118 KB against a raw redis.asyncio GET: per-call median %.1f us against %.1f us, "
          "overhead %+.1f%%; mean %.1f us against %.1f us, %+.1f%%"
          % (d_client * 1e6, d_raw * 1e6, (d_client / d_raw - 1) * 100,
             m_client * 1e6, m_raw * 1e6, (m_client / m_raw - 1) * 100))
    (m1, m2), (d1, d2) = run(arounds(lambda: araw.get(b"bench:one"), lambda: araw.get(b"bench:one"), args.n, args.rounds))
    print("  the noise floor, raw GET against raw GET: per-call median %+.1f%%, mean %+.1f%%"
          % ((d1 / d2 - 1) * 100, (m1 / m2 - 1) * 100))
    sraw = redis.Redis(unix_socket_path=args.socket, socket_timeout=60)

    async def sync_get():
        return sraw.get(b"bench:one")

    _, (d_async, d_sync) = run(arounds(lambda: araw.get(b"bench:one"), sync_get, args.n, args.rounds))
    print("  raw redis.asyncio GET against raw redis-py GET: per-call median %.1f us against %.1f us (%.2fx)"
          % (d_async * 1e6, d_sync * 1e6, d_async / d_sync))
    sraw.close()

    per = args.burst  # gets per worker per burst
    total = workers * per

    async def tasks(get):
        async def worker(w):
            for i in range(per):
                await get(keys[(w + i) % len(keys)])

        await asyncio.gather(*(worker(w) for w in range(workers)))
        return total

    c = Cache(socket=args.socket, timeout=60)
    pool = ThreadPoolExecutor(workers)
    start = threading.Barrier(workers)

    def thread_worker(w):
        start.wait()
        for i in range(per):
            c.get(keys[(w + i) % len(keys)])

    def threads():
        for f in [pool.submit(thread_worker, w) for w in range(workers)]:
            f.result()
        return total

    for _ in range(2):  # warm: every connection of both pools open
        run(tasks(ac.get))
        run(tasks(araw.get))
        threads()
    r_async, r_threads, r_raw = throughput(
        [lambda: run(tasks(ac.get)), threads, lambda: run(tasks(araw.get))], args.rounds)
    print("%d workers x %d gets of 118 KB: AsyncCache %d tasks %.0f gets/s, Cache %d threads %.0f gets/s (%.2fx), "
          "raw redis.asyncio %d tasks %.0f gets/s"
          % (workers, per, workers, r_async, workers, r_threads, r_async / r_threads, workers, r_raw))
    pool.shutdown()
    c.close()
    run(ac.close())
    run(araw.close())
    loop.close()


def main():
    """Runs the benchmarks the command line asks for (see the module doc)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", default="/tmp/tiercache.sock")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--burst", type=int, default=20, help="gets per task or thread in a throughput burst")
    ap.add_argument("--only", choices=["sync", "async"])
    args = ap.parse_args()
    print("redis-py %s, hiredis parser: %s" % (redis.__version__, "yes" if HIREDIS_AVAILABLE else "no"))
    c = Cache(socket=args.socket, timeout=60)
    g = np.random.default_rng(0)
    clip = [g.standard_normal((77, 768)).astype(np.float16) for _ in range(16)]
    keys = [b"bench:clip:%d" % i for i in range(16)]
    c.put_many(zip(keys, clip))
    for k in keys:  # warm: every value in L1
        c.get(k)
    if args.only != "async":
        bench_sync(args, g, clip, keys)
    if args.only != "sync":
        bench_async(args, clip, keys)
    c.r.delete(*keys, b"bench:one")
    c.close()


if __name__ == "__main__":
    main()
