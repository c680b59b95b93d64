"""The tiercache client: tensors in, tensors out, over any Redis connection."""

import functools
import os

import redis

from .base import Batch, CacheBase, input_key, log
from .errors import AWAY, StaleVersion, Unavailable, raise_stale

__all__ = ["Cache", "StaleVersion", "Unavailable", "DEFAULT_SOCKET", "log"]

DEFAULT_SOCKET = "/tmp/tiercache.sock"


def socket_path(socket=None):
    """The daemon's socket: socket, else $TIERCACHE_SOCKET, else
    DEFAULT_SOCKET."""
    return socket or os.environ.get("TIERCACHE_SOCKET", DEFAULT_SOCKET)


class Cache(CacheBase):
    """A connection to a tiercache daemon (any Redis-protocol server works
    for everything but leases and model commands).

    Cache() uses the socket /tmp/tiercache.sock (or $TIERCACHE_SOCKET);
    Cache(socket=PATH) another socket; Cache(url="redis://host:port") TCP;
    Cache(client=redis.Redis(...)) an existing client.

    Reads never fail because the daemon is away: they log once and answer
    misses, so a pipeline keeps running without its cache. Writes raise
    Unavailable. bf16="uint16" lets reads of bfloat16 values without torch
    return their raw bits instead of raising TypeError.
    """

    def __init__(self, socket=None, url=None, client=None, timeout=10.0, bf16="error"):
        super().__init__(bf16=bf16)
        if client is not None:
            self.r = client
        elif url is not None:
            self.r = redis.Redis.from_url(url, socket_timeout=timeout)
        else:
            self.r = redis.Redis(unix_socket_path=socket_path(socket), socket_timeout=timeout)
        self._set_wait_slice(self.r.connection_pool.connection_kwargs.get("socket_timeout"))

    # -- values -------------------------------------------------------------

    def put(self, key, value, ttl=None):
        """Stores a numpy array or torch tensor under key, for ttl seconds
        (None: until evicted). Raises ValueError for NaN/Inf (nothing is
        stored), StaleVersion for a key of an old model version, Unavailable
        when the daemon cannot be reached."""
        data = self.encode(value)
        try:
            self.r.set(key, data, ex=ttl)
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            raise Unavailable(str(e)) from e

    def get(self, key):
        """The array stored under key, or None (miss, or daemon away)."""
        try:
            b = self.r.get(key)
        except AWAY as e:
            self._unavailable(e)
            return None
        self._ok()
        return None if b is None else self.decode(b)

    def get_many(self, keys):
        """The arrays stored under keys, in one round trip (MGET); None for
        each miss."""
        keys = list(keys)
        if not keys:
            return []
        try:
            bs = self.r.mget(keys)
        except AWAY as e:
            self._unavailable(e)
            return [None] * len(keys)
        self._ok()
        return [None if b is None else self.decode(b) for b in bs]

    def put_many(self, items, ttl=None):
        """Stores (key, array) pairs in one round trip (MSET, or SETs with
        their TTL in one pipeline). Every value is checked before any is
        sent."""
        items = [(k, self.encode(v)) for k, v in items]
        if not items:
            return
        try:
            if ttl is None:
                self.r.mset(dict(items))
            else:
                p = self.r.pipeline(transaction=False)
                for k, v in items:
                    p.set(k, v, ex=ttl)
                p.execute()
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            raise Unavailable(str(e)) from e

    # -- leases ---------------------------------------------------------------

    def get_or_compute(self, key, fn, ttl=None, lease_ms=60_000, wait_ms=60_000):
        """The value under key; on a miss, fn() computes it, and only one
        caller per daemon runs fn at a time (LEASE.GET): the others wait up to
        wait_ms for its result. If the holder fails (or its lease_ms runs
        out), a waiter takes the lease over. If the daemon is away, fn runs
        and its result is returned uncached."""
        try:
            status, v = self._lease_get(key, lease_ms, wait_ms)
        except redis.ResponseError as e:
            raise_stale(e)
        except AWAY as e:
            self._unavailable(e)
            return fn()
        self._ok()
        if status == b"hit":
            return self.decode(v)
        if status == b"lease":
            try:
                value = fn()
                self.put(key, value, ttl=ttl)  # completes the lease, wakes the waiters
            except BaseException:  # a waiter must not wait out lease_ms
                try:
                    self.r.execute_command("LEASE.RELEASE", key, v)
                except redis.RedisError:
                    pass
                raise
            return value
        # "miss": the holder took longer than wait_ms.
        value = fn()
        try:
            self.put(key, value, ttl=ttl)
        except Unavailable as e:
            self._unavailable(e)
        return value

    def _lease_get(self, key, lease_ms, wait_ms):
        """LEASE.GET key, waiting up to wait_ms in slices of at most
        _wait_slice_ms: a "miss" before wait_ms is over asks again."""
        for wait in self._wait_slices(wait_ms):
            status, v = self.r.execute_command("LEASE.GET", key, lease_ms, "WAIT", wait)
            if status != b"miss":
                break
        return status, v

    # -- batches --------------------------------------------------------------

    def cached(self, model, version, stage, key=None, ttl=None):
        """Decorates fn(list_of_inputs) -> list_of_arrays. The returned
        function looks the whole batch up with one MGET, calls fn once with
        only the misses (in their order; repeated inputs once), stores their
        results in one round trip and returns every result in order.

        Each input's key is cache_key(model, version, stage, key(input)); by
        default key(input) is the input itself when it is a dict, else
        {"input": input}.
        """
        keyfn = key or input_key

        def deco(fn):
            @functools.wraps(fn)
            def wrapper(inputs):
                batch = Batch(model, version, stage, keyfn, inputs)
                todo = batch.misses(self.get_many(batch.keys))
                if not todo:
                    return batch.found
                computed = batch.computed(fn.__name__, fn(todo))
                try:
                    self.put_many(computed.items(), ttl=ttl)
                except Unavailable as e:
                    self._unavailable(e)
                return batch.merged(computed)

            return wrapper

        return deco

    def close(self):
        """Closes the connection pool."""
        self.r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
