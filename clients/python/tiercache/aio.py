"""AsyncCache: the tiercache client for asyncio programs (FastAPI services,
aiohttp workers, async inference engines), on redis.asyncio.

    from tiercache import cache_key
    from tiercache.aio import AsyncCache

    async with AsyncCache() as c:
        k = cache_key(model="openai/clip-vit-large-patch14", version="2024-06",
                      stage="text-encoder", inputs={"prompt": "a cat", "max_length": 77})
        emb = await c.get_or_compute(k, lambda: asyncio.to_thread(encoder, "a cat"))

It is Cache with every method that talks to the daemon a coroutine: the same
arguments, values (safetensors frames), keys (cache_key), errors
(StaleVersion, Unavailable, FrameError) and behaviour when the daemon is
away. Frames, keys, errors and batch bookkeeping are the same code as
Cache's (tiercache.base, tiercache.errors).

# Concurrency

One AsyncCache holds one connection pool; any number of tasks share it. A
command takes a connection from the pool for its duration, so the pool opens
as many connections as there are commands in flight (a task waiting in
get_or_compute holds one while it waits). To bound them, pass your own
client: AsyncCache(client=redis.asyncio.Redis(connection_pool=
redis.asyncio.BlockingConnectionPool(max_connections=N, ...))).

# Caveats

- A cache belongs to the event loop that first uses it (redis.asyncio's
  connections do): make one per loop, and close it (await c.close(), or
  async with) before the loop ends.
- Functions given to get_or_compute and cached may be async def, or plain
  functions; a plain function runs on the event loop and blocks it while it
  computes. Run a blocking encoder in a thread: lambda: asyncio.to_thread(
  encoder, prompt).
- A LEASE.GET waits at most half the socket timeout at a time and is sent
  again while the wait is not over, so a waiter outlives a long
  computation without a read timeout (which would count as the daemon
  being away).
"""

import functools
import inspect

import redis
import redis.asyncio

from .base import Batch, CacheBase, input_key
from .client import socket_path
from .errors import AWAY, StaleVersion, Unavailable, raise_stale

__all__ = ["AsyncCache", "StaleVersion", "Unavailable"]


async def _resolve(x):
    """x, awaited if it is awaitable (the result of an async def)."""
    if inspect.isawaitable(x):
        return await x
    return x


class AsyncCache(CacheBase):
    """A connection pool to a tiercache daemon, for asyncio.

    AsyncCache() uses the socket /tmp/tiercache.sock (or $TIERCACHE_SOCKET);
    AsyncCache(socket=PATH) another socket; AsyncCache(url="redis://host:port")
    TCP; AsyncCache(client=redis.asyncio.Redis(...)) an existing client.
    timeout (seconds) bounds each read from the daemon; bf16 is as in Cache.

    Reads never fail because the daemon is away: they log once and answer
    misses. Writes raise Unavailable.
    """

    def __init__(self, socket=None, url=None, client=None, timeout=10.0, bf16="error"):
        super().__init__(bf16=bf16)
        if client is not None:
            self.r = client
        elif url is not None:
            self.r = redis.asyncio.Redis.from_url(url, socket_timeout=timeout)
        else:
            self.r = redis.asyncio.Redis(unix_socket_path=socket_path(socket), socket_timeout=timeout)
        self._set_wait_slice(self.r.connection_pool.connection_kwargs.get("socket_timeout"))

    # -- values -------------------------------------------------------------

    async def put(self, key, value, ttl=None):
        """Stores a numpy array or torch tensor under key, for ttl seconds
        (None: until evicted). Raises ValueError for NaN/Inf (nothing is
        stored), StaleVersion for a key of an old model version, Unavailable
        when the daemon cannot be reached."""
        data = self.encode(value)
        try:
            await self.r.set(key, data, ex=ttl)
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            raise Unavailable(str(e)) from e

    async def get(self, key):
        """The array stored under key, or None (miss, or daemon away)."""
        try:
            b = await self.r.get(key)
        except AWAY as e:
            self._unavailable(e)
            return None
        self._ok()
        return None if b is None else self.decode(b)

    async def get_many(self, keys):
        """The arrays stored under keys, in one round trip (MGET); None for
        each miss."""
        keys = list(keys)
        if not keys:
            return []
        try:
            bs = await self.r.mget(keys)
        except AWAY as e:
            self._unavailable(e)
            return [None] * len(keys)
        self._ok()
        return [None if b is None else self.decode(b) for b in bs]

    async def put_many(self, items, ttl=None):
        """Stores (key, array) pairs in one round trip (MSET, or SETs with
        their TTL in one pipeline). Every value is checked before any is
        sent."""
        items = [(k, self.encode(v)) for k, v in items]
        if not items:
            return
        try:
            if ttl is None:
                await self.r.mset(dict(items))
            else:
                async with self.r.pipeline(transaction=False) as p:
                    for k, v in items:
                        p.set(k, v, ex=ttl)
                    await p.execute()
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            raise Unavailable(str(e)) from e

    # -- leases ---------------------------------------------------------------

    async def get_or_compute(self, key, fn, ttl=None, lease_ms=60_000, wait_ms=60_000):
        """The value under key; on a miss, fn() computes it (fn may be an
        async def, or return an awaitable), and only one caller per daemon
        runs fn at a time (LEASE.GET): the others wait up to wait_ms for its
        result without blocking the event loop. If the holder fails, is
        cancelled or its lease_ms runs out, a waiter takes the lease over.
        If the daemon is away, fn runs and its result is returned
        uncached."""
        try:
            status, v = await self._lease_get(key, lease_ms, wait_ms)
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            self._unavailable(e)
            return await _resolve(fn())
        self._ok()
        if status == b"hit":
            return self.decode(v)
        if status == b"lease":
            try:
                value = await _resolve(fn())
                await self.put(key, value, ttl=ttl)  # completes the lease, wakes the waiters
            except BaseException:  # cancellation too: a waiter must not wait out lease_ms
                await self._release(key, v)
                raise
            return value
        # "miss": the holder took longer than wait_ms.
        value = await _resolve(fn())
        try:
            await self.put(key, value, ttl=ttl)
        except Unavailable as e:
            self._unavailable(e)
        return value

    async def _lease_get(self, key, lease_ms, wait_ms):
        """LEASE.GET key, waiting up to wait_ms in slices of at most
        _wait_slice_ms: a "miss" before wait_ms is over asks again."""
        for wait in self._wait_slices(wait_ms):
            status, v = await self.r.execute_command("LEASE.GET", key, lease_ms, "WAIT", wait)
            if status != b"miss":
                break
        return status, v

    async def _release(self, key, token):
        """LEASE.RELEASE, best effort: the lease expires anyway."""
        try:
            await self.r.execute_command("LEASE.RELEASE", key, token)
        except redis.RedisError:
            pass

    # -- batches --------------------------------------------------------------

    def cached(self, model, version, stage, key=None, ttl=None):
        """Decorates fn(list_of_inputs) -> list_of_arrays, an async def (or
        a plain function). The returned coroutine function looks the whole
        batch up with one MGET, calls fn once with only the misses (in their
        order; repeated inputs once), stores their results in one round trip
        and returns every result in order.

        Each input's key is cache_key(model, version, stage, key(input)); by
        default key(input) is the input itself when it is a dict, else
        {"input": input}.
        """
        keyfn = key or input_key

        def deco(fn):
            @functools.wraps(fn)
            async def wrapper(inputs):
                batch = Batch(model, version, stage, keyfn, inputs)
                todo = batch.misses(await self.get_many(batch.keys))
                if not todo:
                    return batch.found
                computed = batch.computed(fn.__name__, await _resolve(fn(todo)))
                try:
                    await self.put_many(computed.items(), ttl=ttl)
                except Unavailable as e:
                    self._unavailable(e)
                return batch.merged(computed)

            return wrapper

        return deco

    async def close(self):
        """Closes the connection pool."""
        await self.r.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
