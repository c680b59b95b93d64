"""AsyncCache against a real daemon, mirroring test_client.py: round trips,
frames shared with Cache, batches in one round trip, cached computing only
the misses, one computation for a stampede of tasks, rollouts, and a
daemon that is away. The tests run on pytest-asyncio (Debian:
python3-pytest-asyncio)."""

import asyncio
import json
import logging
import struct
import time

import numpy as np
import pytest

from tiercache import Cache, FrameError, StaleVersion, Unavailable, cache_key, frame
from tiercache.aio import AsyncCache

try:
    import pytest_asyncio

    async_fixture = pytest_asyncio.fixture
except ImportError:  # the tests skip (fail under CI): see needs_module
    async_fixture = pytest.fixture

try:
    import torch
except ImportError:
    torch = None

pytestmark = [pytest.mark.needs_module("pytest_asyncio", "python3-pytest-asyncio"), pytest.mark.asyncio]
needs_torch = pytest.mark.needs_module("torch", "python3-torch")

SHAPES = [(77, 768), (1, 77, 768), (1, 512, 4096)]


def rand(shape, dtype, seed=0):
    g = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return g.integers(-128, 127, size=shape).astype(dtype)
    return (g.standard_normal(shape) * 3).astype(dtype)


@async_fixture
async def acache(daemon):
    """An AsyncCache on the test's daemon, closed after the test."""
    c = AsyncCache(socket=daemon.socket, timeout=30)
    yield c
    await c.close()


async def stats(c):
    """The daemon's INFO stats section, through c's pool."""
    return await c.r.info("stats")


async def poll(what, cond, timeout=60):
    """what()'s first value for which cond holds, asked every 10 ms; fails
    the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = await what()
        if cond(v):
            return v
        if time.monotonic() > deadline:
            pytest.fail("still %r after %s s" % (v, timeout))
        await asyncio.sleep(0.01)  # the poll's period


# -- 1. round trips --------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
async def test_numpy_round_trip(acache, shape, dtype):
    a = rand(shape, dtype)
    await acache.put(b"k", a)
    b = await acache.get(b"k")
    assert isinstance(b, np.ndarray)
    assert b.dtype == a.dtype and b.shape == a.shape
    assert np.array_equal(a, b)


async def test_numpy_non_contiguous_and_big_endian(acache):
    a = rand((768, 77), "float32").T
    assert not a.flags["C_CONTIGUOUS"]
    await acache.put(b"t", a)
    assert np.array_equal(await acache.get(b"t"), a)
    be = rand((4, 5), ">f4")
    await acache.put(b"be", be)
    got = await acache.get(b"be")
    assert got.dtype == np.dtype("<f4") and np.array_equal(got, be)


@needs_torch
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
async def test_torch_round_trip(acache, dtype):
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    if dt == torch.int8:
        t = torch.randint(-128, 127, (1, 77, 768), generator=g, dtype=dt)
    else:
        t = (torch.randn((1, 77, 768), generator=g) * 3).to(dt)
    await acache.put(b"k", t)
    u = await acache.get(b"k")
    assert isinstance(u, torch.Tensor)
    assert u.dtype == t.dtype and tuple(u.shape) == tuple(t.shape)
    assert torch.equal(u, t)


async def test_bfloat16_as_raw_bits(daemon):
    bits = np.array([[0x3F80, 0xC000]], dtype="<u2")  # 1.0, -2.0
    raw = frame.encode({"tensor": bits}, {"format": "np"})
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8 : 8 + n])
    hdr["tensor"]["dtype"] = "BF16"
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    async with AsyncCache(socket=daemon.socket, bf16="uint16") as c:
        await c.r.set(b"bf", struct.pack("<Q", len(h)) + h + raw[8 + n :])
        u = await c.get(b"bf")  # written from numpy: read as numpy, with or without torch
        assert u.dtype == np.uint16 and np.array_equal(u, bits)
        with pytest.raises(TypeError, match="bfloat16"):
            await AsyncCache(client=c.r).get(b"bf")  # bf16="error", the default


async def test_put_many_with_and_without_ttl(acache):
    items = [(b"pm%d" % i, np.full((2, 2), i, np.float32)) for i in range(5)]
    await acache.put_many(items)
    await acache.put_many([(b"pt", np.ones(3, np.int8))], ttl=3600)
    got = await acache.get_many([k for k, _ in items] + [b"pt", b"absent"])
    assert [int(g[0, 0]) for g in got[:5]] == list(range(5))
    assert np.array_equal(got[5], np.ones(3, np.int8)) and got[6] is None
    assert 0 < await acache.r.ttl(b"pt") <= 3600
    assert await acache.r.ttl(b"pm0") == -1
    await acache.put_many([])
    assert await acache.get_many([]) == []


# -- 2. the same frames as Cache ---------------------------------------------


async def test_frames_are_the_sync_clients(daemon, acache):
    a = rand((77, 768), "float16")
    with Cache(socket=daemon.socket) as sync:
        await acache.put(b"from-async", a)
        assert np.array_equal(sync.get(b"from-async"), a)
        assert sync.r.get(b"from-async") == sync.encode(a)  # byte for byte
        sync.put(b"from-sync", a * 2)
        assert np.array_equal(await acache.get(b"from-sync"), a * 2)
    await acache.r.set(b"bad", b"\x01")
    with pytest.raises(FrameError):
        await acache.get(b"bad")


# -- 3. batches ---------------------------------------------------------------


async def test_get_many_is_one_round_trip(acache):
    keys = [b"m%d" % i for i in range(16)]
    for i, k in enumerate(keys[::2]):
        await acache.put(k, np.full(3, i, np.float32))
    before = int((await stats(acache))["total_commands_processed"])
    got = await acache.get_many(keys)
    after = int((await stats(acache))["total_commands_processed"])
    assert after - before == 2  # the MGET and the first INFO
    assert [g is None for g in got] == [i % 2 == 1 for i in range(16)]


async def test_cached_computes_only_the_misses_in_one_call(acache):
    calls = []

    @acache.cached(model="clip", version="v1", stage="enc")
    async def encode(prompts):
        calls.append(list(prompts))
        await asyncio.sleep(0)  # a real encoder would await something
        return [np.full((2, 3), len(p), np.float16) for p in prompts]

    first = await encode(["a", "bb", "ccc"])
    assert calls == [["a", "bb", "ccc"]]
    got = await encode(["bb", "dddd", "a", "eeeee", "dddd"])
    assert calls[1] == ["dddd", "eeeee"]  # the misses only, once each, in order
    assert len(calls) == 2
    assert [int(x[0, 0]) for x in got] == [2, 4, 1, 5, 4]
    assert np.array_equal(first[1], got[0])
    assert len(await encode(["a", "bb"])) == 2
    assert len(calls) == 2  # all hits: not called
    assert encode.__name__ == "encode"


async def test_cached_takes_a_plain_function_and_checks_its_results(acache):
    @acache.cached(model="clip", version="v1", stage="plain")
    def encode(prompts):
        return [np.zeros(1, np.float32)] * (len(prompts) + 1)

    with pytest.raises(ValueError, match="returned 3 results for 2 inputs"):
        await encode(["a", "b"])


# -- 4. leases ----------------------------------------------------------------


async def test_fifty_tasks_compute_once(acache):
    k = cache_key("clip", "v1", "enc", {"prompt": "same"})
    want = np.arange(12, dtype=np.float32).reshape(3, 4)
    calls = []
    go = asyncio.Event()

    async def compute():
        calls.append(1)
        await go.wait()  # held until every other task waits on the lease
        return want

    tasks = [asyncio.create_task(acache.get_or_compute(k, compute)) for _ in range(50)]
    await poll(lambda: stats(acache), lambda s: s["lease_waiters"] == 49 or any(t.done() for t in tasks))
    assert len(calls) == 1
    go.set()
    results = await asyncio.gather(*tasks)
    assert len(calls) == 1
    assert all(np.array_equal(r, want) for r in results)
    s = await stats(acache)
    assert s["leases_granted"] == 1 and s["lease_wakeups"] == 49


async def test_a_failing_computation_releases_its_lease(acache):
    k = b"{clip@v1}boom"

    async def fail():
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        await acache.get_or_compute(k, fail)
    status, _ = await acache.r.execute_command("LEASE.GET", k, 60_000)  # no WAIT: granted at once
    assert status == b"lease"


async def test_a_cancelled_computation_releases_its_lease(acache):
    k = b"{clip@v1}cancelled"
    entered = asyncio.Event()

    async def forever():
        entered.set()
        await asyncio.Event().wait()

    t = asyncio.create_task(acache.get_or_compute(k, forever))
    await entered.wait()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    status, _ = await acache.r.execute_command("LEASE.GET", k, 60_000)
    assert status == b"lease"


async def test_a_waiter_outlives_its_socket_timeout(daemon):
    # With a 2 s read timeout a LEASE.GET waits at most 1 s at a time: the
    # waiter asks again until the holder has stored the value, instead of
    # timing out and computing it too.
    k = b"{clip@v1}slow"
    go = asyncio.Event()
    calls = []

    async def compute():
        calls.append(1)
        await go.wait()
        return np.ones(4, np.float32)

    async with AsyncCache(socket=daemon.socket, timeout=2) as holder, \
            AsyncCache(socket=daemon.socket, timeout=2) as waiter:
        h = asyncio.create_task(holder.get_or_compute(k, compute))
        await poll(lambda: stats(holder), lambda s: s["leases_active"] == 1)
        w = asyncio.create_task(waiter.get_or_compute(k, compute))
        await poll(lambda: stats(holder), lambda s: s["lease_waits"] >= 3)  # asked three times: > 2 s
        go.set()
        assert np.array_equal(await w, np.ones(4, np.float32))
        assert np.array_equal(await h, np.ones(4, np.float32))
    assert len(calls) == 1


# -- 5. NaN, rollouts ---------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
async def test_nan_is_refused_and_nothing_stored(acache, bad):
    a = np.zeros((4, 4), np.float16)
    a[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        await acache.put(b"n", a)
    with pytest.raises(ValueError, match="NaN or Inf"):
        await acache.put_many([(b"ok", np.zeros(2, np.float16)), (b"n", a)])
    assert await acache.r.exists(b"n", b"ok") == 0


async def test_rollout_drops_old_entries_and_late_put_raises(acache):
    await acache.r.execute_command("MODEL.ROLLOUT", "clip", "v1")
    k1 = cache_key("clip", "v1", "enc", {"prompt": "a"})
    await acache.put(k1, np.ones(3, np.float32))
    assert await acache.get(k1) is not None
    await acache.r.execute_command("MODEL.ROLLOUT", "clip", "v2")
    assert await acache.get(k1) is None
    with pytest.raises(StaleVersion, match="clip is at v2"):
        await acache.put(k1, np.ones(3, np.float32))
    with pytest.raises(StaleVersion):
        await acache.put_many([(k1, np.ones(3, np.float32))])
    with pytest.raises(StaleVersion):
        await acache.get_or_compute(k1, lambda: np.ones(3, np.float32))
    k2 = cache_key("clip", "v2", "enc", {"prompt": "a"})
    await acache.put(k2, np.ones(3, np.float32))
    assert await acache.get(k2) is not None


# -- 6. many tasks, one pool --------------------------------------------------


async def test_many_tasks_share_one_cache(acache):
    async def one(i):
        k = b"task:%d" % i
        await acache.put(k, np.full(1000, i, np.int8 if i < 100 else np.int16))
        got = await acache.get(k)
        return int(got[0]), (await acache.get_many([k, b"task:absent"]))[1]

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert results == [(i, None) for i in range(200)]
    # The pool keeps its connections: one task after another reuses them.
    before = (await stats(acache))["total_connections_received"]
    for i in range(20):
        assert int((await acache.get(b"task:%d" % i))[0]) == i
    assert (await stats(acache))["total_connections_received"] == before


# -- 7. daemon away -----------------------------------------------------------


async def test_daemon_stopped(daemon, caplog):
    async with AsyncCache(socket=daemon.socket, timeout=5) as c:
        await c.put(b"k", np.ones(2, np.float32))
        daemon.stop()
        with caplog.at_level(logging.WARNING, logger="tiercache"):
            assert await c.get(b"k") is None
            assert await c.get_many([b"k", b"j"]) == [None, None]
            assert await c.get(b"k") is None
        assert sum("unreachable" in r.message for r in caplog.records) == 1  # logged once
        with pytest.raises(Unavailable):
            await c.put(b"k", np.ones(2, np.float32))
        with pytest.raises(Unavailable):
            await c.put_many([(b"k", np.ones(2, np.float32))], ttl=5)
        assert isinstance(Unavailable("x"), ConnectionError)

        async def compute():
            return np.zeros(2, np.float32)

        assert np.array_equal(await c.get_or_compute(b"k", compute), np.zeros(2, np.float32))
        calls = []

        @c.cached(model="m", version="v", stage="s")
        async def f(xs):
            calls.append(xs)
            return [np.zeros(1, np.float32) for _ in xs]

        assert len(await f(["a", "b"])) == 2 and calls == [["a", "b"]]
