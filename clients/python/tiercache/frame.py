"""Tensor framing: the safetensors format, written and read by this module.

A frame is ``u64 little-endian header length N`` + ``N bytes of JSON`` +
raw little-endian tensor data. The JSON maps each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
the end of the header) and may hold ``"__metadata__"``, a map of strings.
The header is padded with spaces to a multiple of 8 bytes, as the
safetensors writer does, so the data starts aligned. Any safetensors reader
(``safetensors.numpy.load``, ``safetensors.torch.load``) can load a frame.

tiercache stores one tensor under the name ``"tensor"`` (``put``/``get``) or
several (the diffusers wrapper), and records in ``__metadata__["format"]``
whether the value came from numpy (``"np"``) or torch (``"pt"``), so that
``get`` returns the same kind of array.
"""

import json
import struct
import sys

import numpy as np

try:  # torch is optional
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None

if sys.byteorder != "little":  # pragma: no cover
    raise ImportError("tiercache frames are little-endian; big-endian hosts are not supported")

# safetensors dtype names <-> numpy dtypes (bfloat16 has no numpy dtype).
_NP_TO_ST = {
    np.dtype("bool"): "BOOL",
    np.dtype("uint8"): "U8",
    np.dtype("int8"): "I8",
    np.dtype("uint16"): "U16",
    np.dtype("int16"): "I16",
    np.dtype("uint32"): "U32",
    np.dtype("int32"): "I32",
    np.dtype("uint64"): "U64",
    np.dtype("int64"): "I64",
    np.dtype("float16"): "F16",
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}

if torch is not None:
    _TORCH_TO_ST = {
        torch.bool: "BOOL",
        torch.uint8: "U8",
        torch.int8: "I8",
        torch.int16: "I16",
        torch.int32: "I32",
        torch.int64: "I64",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.float32: "F32",
        torch.float64: "F64",
    }
    _ST_TO_TORCH = {v: k for k, v in _TORCH_TO_ST.items()}
else:
    _TORCH_TO_ST, _ST_TO_TORCH = {}, {}

MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


class FrameError(ValueError):
    """The bytes are not a frame this module can read."""


def is_torch(x):
    """Whether x is a torch tensor (False when torch is not installed)."""
    return torch is not None and isinstance(x, torch.Tensor)


def _check_finite(name, arr):
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        raise ValueError("tiercache: tensor %r contains NaN or Inf; refusing to cache it" % name)


def tensor_bytes(name, x, finite=True):
    """Returns (safetensors dtype, shape, raw bytes) of a numpy array or torch
    tensor; with finite, NaN and Inf are refused (ValueError). Non-contiguous
    and non-CPU tensors are copied first."""
    if is_torch(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        st = _TORCH_TO_ST.get(t.dtype)
        if st is None:
            raise TypeError("tiercache: torch dtype %s cannot be cached" % t.dtype)
        if finite and t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError("tiercache: tensor %r contains NaN or Inf; refusing to cache it" % name)
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        return st, list(t.shape), raw
    arr = np.asarray(x)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    st = _NP_TO_ST.get(np.dtype(arr.dtype.str.replace(">", "<")))
    if st is None:
        raise TypeError("tiercache: numpy dtype %s cannot be cached" % arr.dtype)
    if finite:
        _check_finite(name, arr)
    return st, list(arr.shape), np.ascontiguousarray(arr).tobytes()


def encode(tensors, metadata=None):
    """Frames tensors, a dict name -> numpy array or torch tensor, with the
    string metadata given. Raises ValueError for NaN/Inf, TypeError for a
    dtype safetensors has no name for."""
    header = {}
    chunks = []
    offset = 0
    for name, x in tensors.items():
        st, shape, raw = tensor_bytes(name, x)
        header[name] = {"dtype": st, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    return b"".join([struct.pack("<Q", len(h)), h] + chunks)


def decode(buf, want="auto", bf16="error"):
    """Reads a frame. Returns (tensors, metadata): tensors maps names to numpy
    arrays (read-only views of buf) or, when the frame was written from torch
    (or want="pt"), torch tensors. want is "auto", "np" or "pt".

    bfloat16 has no numpy dtype: reading it as numpy (torch absent, or
    want="np") raises TypeError unless bf16="uint16", which returns the raw
    bits as a uint16 array (``(u16.astype(np.uint32) << 16).view(np.float32)``
    gives the float32 values).
    """
    mv = memoryview(buf)
    if len(mv) < 8:
        raise FrameError("tiercache: value too short for a frame (%d bytes)" % len(mv))
    (n,) = struct.unpack_from("<Q", mv, 0)
    if n > MAX_HEADER or 8 + n > len(mv):
        raise FrameError("tiercache: frame header length %d does not fit the value (%d bytes)" % (n, len(mv)))
    entries, meta_items = _parse_header(bytes(mv[8 : 8 + n]))
    meta = dict(meta_items)
    data = mv[8 + n :]
    as_torch = want == "pt" or (want == "auto" and meta.get("format") == "pt" and torch is not None)
    if want == "pt" and torch is None:
        raise TypeError("tiercache: torch is not installed")
    out = {}
    for name, st, shape, begin, end in entries:
        if end > len(data):
            raise FrameError("tiercache: tensor %r's data lies outside the value" % name)
        out[name] = _tensor(name, st, shape, data[begin:end], as_torch, bf16)
    return out, meta


# Parsed headers by their bytes: the values of one stage share a few
# headers (same dtype and shape), and parsing the JSON was most of the cost
# of decoding a 118 KB embedding.
_headers = {}
_HEADER_CACHE = 256


def _parse_header(hb):
    got = _headers.get(hb)
    if got is not None:
        return got
    try:
        header = json.loads(hb)
    except ValueError as e:
        raise FrameError("tiercache: frame header is not JSON: %s" % e) from None
    if not isinstance(header, dict):
        raise FrameError("tiercache: frame header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise FrameError("tiercache: frame __metadata__ is not a JSON object")
    entries = []
    for name, info in header.items():
        try:
            st, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise FrameError("tiercache: tensor %r has a malformed header entry" % name) from None
        if not (0 <= begin <= end) or any(d < 0 for d in shape):
            raise FrameError("tiercache: tensor %r has a malformed header entry" % name)
        entries.append((name, st, shape, begin, end))
    got = (tuple(entries), tuple(meta.items()))
    if len(_headers) >= _HEADER_CACHE:
        _headers.clear()
    _headers[hb] = got
    return got


def _tensor(name, st, shape, raw, as_torch, bf16):
    shape = list(shape)
    count = 1
    for d in shape:
        count *= d
    if as_torch:
        dt = _ST_TO_TORCH.get(st)
        if dt is None:
            raise FrameError("tiercache: tensor %r has dtype %s, which torch cannot hold" % (name, st))
        if count * torch.empty((), dtype=dt).element_size() != len(raw):
            raise FrameError("tiercache: tensor %r: %d bytes for shape %s of %s" % (name, len(raw), shape, st))
        if count == 0:
            return torch.empty(shape, dtype=dt)
        # torch.frombuffer warns on read-only buffers: copy once into a
        # bytearray the tensor then owns.
        return torch.frombuffer(bytearray(raw), dtype=dt).reshape(shape)
    if st == "BF16":
        if bf16 != "uint16":
            raise TypeError(
                "tiercache: tensor %r is bfloat16, which numpy cannot represent; install torch, "
                "or pass bf16='uint16' for the raw bits" % name
            )
        dt = np.dtype("<u2")
    else:
        dt = _ST_TO_NP.get(st)
        if dt is None:
            raise FrameError("tiercache: tensor %r has unknown dtype %s" % (name, st))
    if count * dt.itemsize != len(raw):
        raise FrameError("tiercache: tensor %r: %d bytes for shape %s of %s" % (name, len(raw), shape, st))
    return np.frombuffer(raw, dtype=dt).reshape(shape)
