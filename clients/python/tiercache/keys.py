"""Cache keys: ``{MODEL@VERSION}STAGE:HEX``, where HEX is the SHA-256 of a
canonical encoding of the stage's inputs.

The encoding (tiercache's "canonical inputs", also implemented in Go as
``tier.CacheKey``; ``clients/testdata/cache_key_vectors.json`` holds the
vectors both must reproduce) is a prefix code, so different inputs never
encode alike:

=============  ===============================================================
value          encoding
=============  ===============================================================
None           ``n``
True / False   ``t`` / ``f``
int            ``i`` + decimal digits (``-`` if negative) + ``;`` — any size
float          ``d`` + the 16 lowercase hex digits of its IEEE-754 binary64
               bits, big-endian + ``;`` (exact: 0.1 is not 0.1000000001, and
               -0.0 differs from 0.0); NaN and infinities are refused
str            ``s`` + UTF-8 byte length in decimal + ``:`` + the UTF-8 bytes
bytes          ``b`` + length + ``:`` + the bytes
list, tuple    ``l`` + each item's encoding + ``e``
dict           ``m`` + for each entry, sorted by the UTF-8 bytes of its key:
               the key encoded as str, then the value + ``e``; keys must be str
=============  ===============================================================

numpy scalars encode as the Python int, float or bool they hold. Anything
else (arrays, objects) is a TypeError: hash it yourself and pass the digest
as bytes or str.
"""

import hashlib
import math
import numbers
import struct

import numpy as np


def encode_inputs(value):
    """Returns the canonical encoding of value (bytes)."""
    out = []
    _enc(value, out)
    return b"".join(out)


def _enc(v, out):
    if v is None:
        out.append(b"n")
    elif v is True or v is False or isinstance(v, np.bool_):
        out.append(b"t" if v else b"f")
    elif isinstance(v, (int, np.integer)):
        out.append(b"i%d;" % int(v))
    elif isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            raise ValueError("tiercache: cache key inputs may not hold NaN or infinity")
        out.append(b"d" + struct.pack(">d", f).hex().encode() + b";")
    elif isinstance(v, str):
        b = v.encode("utf-8")
        out.append(b"s%d:" % len(b))
        out.append(b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        out.append(b"b%d:" % len(b))
        out.append(b)
    elif isinstance(v, (list, tuple)):
        out.append(b"l")
        for x in v:
            _enc(x, out)
        out.append(b"e")
    elif isinstance(v, dict):
        items = []
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError("tiercache: cache key input maps need str keys, got %r" % (k,))
            items.append((k.encode("utf-8"), x))
        items.sort(key=lambda kv: kv[0])
        out.append(b"m")
        for kb, x in items:
            out.append(b"s%d:" % len(kb))
            out.append(kb)
            _enc(x, out)
        out.append(b"e")
    elif isinstance(v, numbers.Integral):
        out.append(b"i%d;" % int(v))
    else:
        raise TypeError("tiercache: cannot encode %s in a cache key; pass its digest as bytes" % type(v).__name__)


def _check_part(what, s):
    if not isinstance(s, str) or not s:
        raise ValueError("tiercache: %s must be a non-empty str" % what)
    if "{" in s or "}" in s:
        raise ValueError("tiercache: %s %r may not contain '{' or '}'" % (what, s))


def cache_key(model, version, stage, inputs):
    """Returns the key (bytes) of a stage's output for inputs:
    ``{MODEL@VERSION}STAGE:`` + hex SHA-256 of ``encode_inputs(inputs)``.

    The key names the model version, so a rollout of MODEL makes every key
    of the old version stale at once. inputs should hold everything that
    changes the output (prompt, max length, template, active LoRAs and their
    weights, ...).
    """
    _check_part("model", model)
    _check_part("version", version)
    if "@" in version:
        raise ValueError("tiercache: version %r may not contain '@'" % version)
    if not isinstance(stage, str):
        raise ValueError("tiercache: stage must be a str")
    digest = hashlib.sha256(encode_inputs(inputs)).hexdigest()
    return ("{%s@%s}%s:%s" % (model, version, stage, digest)).encode("utf-8")
