"""The half of a cache that does no I/O, shared by Cache (redis-py) and
AsyncCache (redis.asyncio): options, values in and out of frames, the
warn-once of an absent daemon, and the bookkeeping of a cached batch. The
two clients differ only in how they send commands, so each decision here
is made once for both."""

import logging
import threading

from . import frame
from .keys import cache_key

log = logging.getLogger("tiercache")


class CacheBase:
    """What Cache and AsyncCache share: bf16 (how bfloat16 values read
    without torch come back, see Cache), encode and decode, and the
    once-per-outage warning."""

    def __init__(self, bf16="error"):
        self.bf16 = bf16
        self._warned = False
        self._lock = threading.Lock()  # guards _warned across threads

    # -- leases -------------------------------------------------------------

    def _set_wait_slice(self, socket_timeout):
        """Sets the longest one LEASE.GET waits, from the connection's read
        timeout in seconds (None: no limit): half of it, so that a wait never
        runs into the timeout."""
        self._wait_slice_ms = max(1, int(socket_timeout * 1000) // 2) if socket_timeout else None

    def _wait_slices(self, wait_ms):
        """The WAIT of each LEASE.GET a wait of wait_ms is sent as: slices
        of at most _wait_slice_ms summing to wait_ms (one, at least). The
        caller stops at the first answer that is not a "miss"."""
        left = wait_ms
        while True:
            wait = left if self._wait_slice_ms is None else min(left, self._wait_slice_ms)
            yield wait
            left -= wait
            if left <= 0:
                return

    # -- errors -------------------------------------------------------------

    def _unavailable(self, e):
        with self._lock:
            first, self._warned = not self._warned, True
        if first:
            log.warning("tiercache: daemon unreachable, serving misses: %s", e)

    def _ok(self):
        self._warned = False

    # -- values -------------------------------------------------------------

    def encode(self, value):
        """Frames a numpy array or torch tensor (see tiercache.frame)."""
        fmt = "pt" if frame.is_torch(value) else "np"
        return frame.encode({"tensor": value}, {"format": fmt})

    def decode(self, buf):
        """The array a framed value holds (numpy, or torch if stored from
        torch and torch is installed)."""
        tensors, _ = frame.decode(buf, bf16=self.bf16)
        try:
            return tensors["tensor"]
        except KeyError:
            raise frame.FrameError("tiercache: the value holds no tensor named 'tensor'") from None


def input_key(x):
    """The default key of a cached function's input: the input itself when
    it is a dict, else {"input": input}."""
    return x if isinstance(x, dict) else {"input": x}


class Batch:
    """One call of a cached function: the keys of its inputs, then what the
    lookup found, the misses to compute (each distinct key once, in order of
    first appearance) and the results merged back in order.

        b = Batch(model, version, stage, keyfn, inputs)
        todo = b.misses(get_many(b.keys))      # inputs to compute
        computed = b.computed(name, fn(todo))  # key -> result, to store
        return b.merged(computed)
    """

    def __init__(self, model, version, stage, keyfn, inputs):
        self.inputs = list(inputs)
        self.keys = [cache_key(model, version, stage, keyfn(x)) for x in self.inputs]
        self.found = None
        self.todo = {}  # key -> index of its first input, in order

    def misses(self, found):
        """Records what the lookup found (None per miss) and returns the
        inputs to compute."""
        self.found = found
        self.todo = {}
        for i, (k, v) in enumerate(zip(self.keys, found)):
            if v is None and k not in self.todo:
                self.todo[k] = i
        return [self.inputs[i] for i in self.todo.values()]

    def computed(self, name, results):
        """Maps each missed key to its result; ValueError when the function
        (called name) returned a different number of results."""
        results = list(results)
        if len(results) != len(self.todo):
            raise ValueError("tiercache: %s returned %d results for %d inputs" % (name, len(results), len(self.todo)))
        return dict(zip(self.todo, results))

    def merged(self, computed):
        """Every input's result, in order: found, or computed."""
        return [computed[k] if v is None else v for k, v in zip(self.keys, self.found)]
