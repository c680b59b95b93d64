"""The errors both clients raise, and the translation of redis-py's errors
into them. Cache and AsyncCache raise the same exceptions for the same
conditions: redis.asyncio raises redis-py's own exception classes."""

import redis


class StaleVersion(Exception):
    """The key names a model version the cluster has rolled past (-STALE):
    this process computed it with an old model. Nothing was stored."""


class Unavailable(ConnectionError):
    """The daemon cannot be reached (put and the lease calls raise it; reads
    return misses instead)."""


# AWAY are the redis-py errors that mean the daemon cannot be reached, as
# opposed to an error reply from it.
AWAY = (redis.ConnectionError, redis.TimeoutError)


def raise_stale(e):
    """Raises StaleVersion for a -STALE error reply, else e itself."""
    msg = str(e)
    if msg.startswith("STALE"):
        raise StaleVersion(msg) from None
    raise e
