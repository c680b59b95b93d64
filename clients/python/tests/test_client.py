import json
import logging
import multiprocessing
import os
import struct
import threading
import time

import numpy as np
import pytest
import redis

import tiercache
from tiercache import Cache, StaleVersion, Unavailable, cache_key, frame
from tiercache.keys import encode_inputs

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.needs_module("torch", "python3-torch")

SHAPES = [(77, 768), (1, 77, 768), (1, 512, 4096)]
VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "cache_key_vectors.json")


def rand(shape, dtype, seed=0):
    g = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return g.integers(-128, 127, size=shape).astype(dtype)
    return (g.standard_normal(shape) * 3).astype(dtype)


# -- 1. round trips --------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
def test_numpy_round_trip(cache, shape, dtype):
    a = rand(shape, dtype)
    cache.put(b"k", a)
    b = cache.get(b"k")
    assert isinstance(b, np.ndarray)
    assert b.dtype == a.dtype and b.shape == a.shape
    assert np.array_equal(a, b)


def test_numpy_non_contiguous_and_big_endian(cache):
    a = rand((768, 77), "float32").T  # a transposed view
    assert not a.flags["C_CONTIGUOUS"]
    cache.put(b"t", a)
    assert np.array_equal(cache.get(b"t"), a)
    be = rand((4, 5), ">f4")
    cache.put(b"be", be)
    got = cache.get(b"be")
    assert got.dtype == np.dtype("<f4") and np.array_equal(got, be)


@needs_torch
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
def test_torch_round_trip(cache, shape, dtype):
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    if dt == torch.int8:
        t = torch.randint(-128, 127, shape, generator=g, dtype=dt)
    else:
        t = (torch.randn(shape, generator=g) * 3).to(dt)
    cache.put(b"k", t)
    u = cache.get(b"k")
    assert isinstance(u, torch.Tensor)
    assert u.dtype == t.dtype and tuple(u.shape) == tuple(t.shape)
    assert torch.equal(u, t)


@needs_torch
def test_torch_non_contiguous(cache):
    t = torch.randn(768, 77).to(torch.bfloat16).t()
    assert not t.is_contiguous()
    cache.put(b"nc", t)
    assert torch.equal(cache.get(b"nc"), t)


def test_bfloat16_without_torch(cache):
    # bf16 written as torch would: read as numpy, it is a clear error, or
    # the raw bits on request.
    bits = np.array([[0x3F80, 0xC000]], dtype="<u2")  # 1.0, -2.0
    raw = frame.encode({"tensor": bits}, {"format": "np"})
    hdr_len = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8 : 8 + hdr_len])
    hdr["tensor"]["dtype"] = "BF16"
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    cache.r.set(b"bf", struct.pack("<Q", len(h)) + h + raw[8 + hdr_len :])
    tensors, _ = frame.decode(cache.r.get(b"bf"), want="np", bf16="uint16")
    u = tensors["tensor"]
    assert u.dtype == np.uint16
    assert ((u.astype(np.uint32) << 16).view(np.float32) == np.array([[1.0, -2.0]], np.float32)).all()
    with pytest.raises(TypeError, match="bfloat16"):
        frame.decode(cache.r.get(b"bf"), want="np")


# -- 2. safetensors --------------------------------------------------------


def test_raw_value_is_safetensors(cache):
    a = rand((77, 768), "float16")
    cache.put(b"s", a)
    raw = cache.r.get(b"s")
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0
    hdr = json.loads(raw[8 : 8 + n])
    assert hdr["__metadata__"] == {"format": "np"}
    assert hdr["tensor"] == {"dtype": "F16", "shape": [77, 768], "data_offsets": [0, a.nbytes]}
    assert raw[8 + n :] == a.tobytes()
    try:
        from safetensors.numpy import load
    except ImportError:
        return  # not packaged in Debian; the layout check above is the spec's
    assert np.array_equal(load(raw)["tensor"], a)


def test_corrupt_frames_are_errors(cache):
    for bad in [b"", b"\x01", struct.pack("<Q", 1 << 40) + b"{}", struct.pack("<Q", 2) + b"[]",
                struct.pack("<Q", 8) + b'{"a":1} ']:
        with pytest.raises(tiercache.FrameError):
            cache.decode(bad)


# -- 3. keys ----------------------------------------------------------------


def test_cache_key_vectors():
    with open(VECTORS) as f:
        vectors = json.load(f)["vectors"]
    for v in vectors:
        assert encode_inputs(v["inputs"]).hex() == v["encoding_hex"], v
        assert cache_key(v["model"], v["version"], v["stage"], v["inputs"]).decode() == v["key"], v


def test_cache_key_stable_across_processes():
    inputs = {"prompt": "a cat", "max_length": 77, "guidance": 7.5, "loras": [["x", 0.8]]}
    here = cache_key("clip", "v1", "enc", inputs)
    code = "import tiercache; print(tiercache.cache_key('clip', 'v1', 'enc', %r).decode())" % (inputs,)
    import subprocess, sys

    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True).stdout
    assert out.decode().strip() == here.decode()


def test_cache_key_rules():
    k = cache_key("openai/clip-vit-large-patch14", "2024-06", "text-encoder", {"prompt": "a"})
    assert k.startswith(b"{openai/clip-vit-large-patch14@2024-06}text-encoder:")
    assert cache_key("m", "v", "s", {"x": 1}) != cache_key("m", "v", "s", {"x": 1.0})
    assert cache_key("m", "v", "s", {"x": 0.0}) != cache_key("m", "v", "s", {"x": -0.0})
    assert cache_key("m", "v", "s", {"a": 1, "b": 2}) == cache_key("m", "v", "s", {"b": 2, "a": 1})
    assert cache_key("m", "v", "s", {"x": np.float32(0.5)}) == cache_key("m", "v", "s", {"x": 0.5})
    for bad in [dict(model="a{b"), dict(version="v@1"), dict(version="")]:
        args = dict(model="m", version="v", stage="s", inputs={})
        args.update(bad)
        with pytest.raises(ValueError):
            cache_key(**args)
    with pytest.raises(ValueError):
        cache_key("m", "v", "s", {"x": float("nan")})
    with pytest.raises(TypeError):
        cache_key("m", "v", "s", {"x": object()})


# -- 4. the decorator -------------------------------------------------------


def test_cached_computes_only_the_misses_in_one_call(cache):
    calls = []

    @cache.cached(model="clip", version="v1", stage="enc")
    def encode(prompts):
        calls.append(list(prompts))
        return [np.full((2, 3), len(p), np.float16) for p in prompts]

    first = encode(["a", "bb", "ccc"])
    assert calls == [["a", "bb", "ccc"]]
    got = encode(["bb", "dddd", "a", "eeeee", "dddd"])
    assert calls[1] == ["dddd", "eeeee"]  # the misses only, once each, in order
    assert len(calls) == 2
    assert [int(x[0, 0]) for x in got] == [2, 4, 1, 5, 4]
    assert np.array_equal(first[1], got[0])
    encode(["a", "bb"])
    assert len(calls) == 2  # all hits: not called


# -- 5. leases across processes ---------------------------------------------


def _worker(sock, path, start, out):
    c = Cache(socket=sock, timeout=60)
    start.wait()

    def compute():
        with open(path, "a") as f:
            f.write("x\n")
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    v = c.get_or_compute(cache_key("clip", "v1", "enc", {"prompt": "same"}), compute, lease_ms=60_000, wait_ms=60_000)
    out.put(v.tolist())


def test_get_or_compute_runs_once_for_eight_processes(daemon, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    path = str(tmp_path / "calls")
    procs = [ctx.Process(target=_worker, args=(daemon.socket, path, start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    with open(path) as f:
        assert f.read().count("x") == 1
    assert all(r == np.arange(12, dtype=np.float32).reshape(3, 4).tolist() for r in results)


def test_get_or_compute_releases_on_failure(cache):
    k = b"{clip@v1}boom"
    with pytest.raises(RuntimeError):
        cache.get_or_compute(k, lambda: (_ for _ in ()).throw(RuntimeError("encoder failed")))
    # The lease was released: the next LEASE.GET is granted it at once.
    status, _ = cache.r.execute_command("LEASE.GET", k, 60_000)  # no WAIT
    assert status == b"lease"


def test_a_waiter_outlives_its_socket_timeout(daemon):
    # With a 2 s read timeout a LEASE.GET waits at most 1 s at a time: the
    # waiter asks again until the holder has stored the value, instead of
    # timing out and computing it too.
    k = b"{clip@v1}slow"
    go = threading.Event()
    calls = []

    def compute():
        calls.append(1)
        go.wait()
        return np.ones(4, np.float32)

    with Cache(socket=daemon.socket, timeout=2) as holder, Cache(socket=daemon.socket, timeout=2) as waiter:
        results = {}
        h = threading.Thread(target=lambda: results.__setitem__("h", holder.get_or_compute(k, compute)))
        h.start()
        poll(lambda: holder.r.info("stats"), lambda s: s["leases_active"] == 1)
        w = threading.Thread(target=lambda: results.__setitem__("w", waiter.get_or_compute(k, compute)))
        w.start()
        poll(lambda: holder.r.info("stats"), lambda s: s["lease_waits"] >= 3)  # asked three times: > 2 s
        go.set()
        h.join()
        w.join()
        assert np.array_equal(results["w"], np.ones(4, np.float32))
        assert np.array_equal(results["h"], np.ones(4, np.float32))
    assert len(calls) == 1


def poll(what, cond, timeout=60):
    """what()'s first value for which cond holds, asked every 10 ms; fails
    the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = what()
        if cond(v):
            return v
        if time.monotonic() > deadline:
            pytest.fail("still %r after %s s" % (v, timeout))
        time.sleep(0.01)  # the poll's period


# -- 6. NaN ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_is_refused_and_nothing_stored(cache, bad):
    a = np.zeros((4, 4), np.float16)
    a[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        cache.put(b"n", a)
    assert cache.r.exists(b"n") == 0
    if torch is not None:
        with pytest.raises(ValueError):
            cache.put(b"n", torch.tensor([1.0, float(bad)], dtype=torch.bfloat16))
        assert cache.r.exists(b"n") == 0


# -- 7. rollouts ------------------------------------------------------------


def test_rollout_drops_old_entries_and_late_put_raises(cache):
    cache.r.execute_command("MODEL.ROLLOUT", "clip", "v1")
    k1 = cache_key("clip", "v1", "enc", {"prompt": "a"})
    cache.put(k1, np.ones(3, np.float32))
    assert cache.get(k1) is not None
    cache.r.execute_command("MODEL.ROLLOUT", "clip", "v2")
    assert cache.get(k1) is None
    with pytest.raises(StaleVersion, match="clip is at v2"):
        cache.put(k1, np.ones(3, np.float32))
    with pytest.raises(StaleVersion):
        cache.get_or_compute(k1, lambda: np.ones(3, np.float32))
    k2 = cache_key("clip", "v2", "enc", {"prompt": "a"})
    cache.put(k2, np.ones(3, np.float32))
    assert cache.get(k2) is not None


# -- 8. daemon away ---------------------------------------------------------


def test_daemon_stopped(daemon, caplog):
    c = Cache(socket=daemon.socket, timeout=5)
    c.put(b"k", np.ones(2, np.float32))
    daemon.stop()
    with caplog.at_level(logging.WARNING, logger="tiercache"):
        assert c.get(b"k") is None
        assert c.get_many([b"k", b"j"]) == [None, None]
        assert c.get(b"k") is None
    assert sum("unreachable" in r.message for r in caplog.records) == 1  # logged once
    with pytest.raises(Unavailable):
        c.put(b"k", np.ones(2, np.float32))
    assert np.array_equal(c.get_or_compute(b"k", lambda: np.zeros(2, np.float32)), np.zeros(2, np.float32))
    calls = []

    @c.cached(model="m", version="v", stage="s")
    def f(xs):
        calls.append(xs)
        return [np.zeros(1, np.float32) for _ in xs]

    assert len(f(["a", "b"])) == 2 and calls == [["a", "b"]]


def test_get_many_is_one_round_trip(cache):
    keys = [b"m%d" % i for i in range(16)]
    for i, k in enumerate(keys[::2]):
        cache.put(k, np.full(3, i, np.float32))
    before = int(cache.r.info("stats")["total_commands_processed"])
    got = cache.get_many(keys)
    after = int(cache.r.info("stats")["total_commands_processed"])
    assert after - before == 2  # the MGET and the first INFO
    assert [g is None for g in got] == [i % 2 == 1 for i in range(16)]
