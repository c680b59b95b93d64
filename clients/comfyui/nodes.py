"""A cached "CLIP Text Encode" node.

It behaves as ComfyUI's CLIPTextEncode (tokenize, then encode_from_tokens
with the pooled output) but keeps the conditioning in tiercache, keyed by
the CLIP model's identity and the text, so a prompt encoded once is not
encoded again, across workflows, queue runs and ComfyUI restarts.

The CLIP model's identity is a SHA-256 over its weights (names, dtypes,
shapes and bytes of cond_stage_model's state_dict, computed once per loaded
model), the patches applied to it (LoRAs: their keys and strengths) and its
clip-skip layer, so a different checkpoint, LoRA or clip skip never shares
an entry. The daemon's socket is $TIERCACHE_SOCKET (default
/tmp/tiercache.sock); if the daemon is away the node encodes as usual.
"""

import hashlib
import weakref

try:
    from tiercache import Cache, cache_key, frame
    from tiercache.client import log
except ImportError as e:  # pragma: no cover
    raise ImportError("tiercache nodes need the tiercache client: pip install ./clients/python") from e

_weights = weakref.WeakKeyDictionary()  # cond_stage_model -> digest of its weights
_cache = None


def _get_cache():
    global _cache
    if _cache is None:
        _cache = Cache()
    return _cache


def _weights_digest(model):
    try:
        return _weights[model]
    except (KeyError, TypeError):
        pass
    h = hashlib.sha256()
    sd = model.state_dict()
    for name in sorted(sd):
        st, shape, raw = frame.tensor_bytes(name, sd[name], finite=False)
        h.update(("%s|%s|%s|" % (name, st, shape)).encode())
        h.update(raw)
    d = h.hexdigest()
    try:
        _weights[model] = d
    except TypeError:  # not weak-referenceable: recomputed next time
        pass
    return d


def clip_identity(clip):
    """A digest naming what this CLIP object computes: its weights, the
    patches on them, and its clip-skip layer."""
    parts = {"weights": _weights_digest(clip.cond_stage_model)}
    patcher = getattr(clip, "patcher", None)
    patches = getattr(patcher, "patches", None) or {}
    plist = []
    for key in sorted(patches):
        for p in patches[key]:
            strength = p[0] if isinstance(p, (tuple, list)) and p else p
            # A LoRA patch is (strength_patch, weights, strength_model, ...):
            # its tensors are digested with their strengths.
            tensors = [x for x in (p if isinstance(p, (tuple, list)) else ()) if frame.is_torch(x)]
            digest = hashlib.sha256(b"".join(frame.tensor_bytes("patch", t, finite=False)[2] for t in tensors)).hexdigest()
            plist.append([key, repr(strength), digest])
    parts["patches"] = plist
    parts["layer_idx"] = getattr(clip, "layer_idx", None)
    return hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()


class TiercacheCLIPTextEncode:
    """CLIP Text Encode, cached in tiercache."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "clip": ("CLIP",),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = "Encodes a text prompt with a CLIP model, keeping the result in tiercache for the next run."

    def encode(self, clip, text):
        c = _get_cache()
        key = cache_key("comfyui-clip", clip_identity(clip), "text-encode", {"text": text})
        try:
            raw = c.r.get(key)
        except Exception as e:
            c._unavailable(e)
            raw = None
        if raw is not None:
            tensors, _ = frame.decode(raw, want="pt")
            return ([[tensors["cond"], {"pooled_output": tensors.get("pooled")}]],)
        tokens = clip.tokenize(text)
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
        out = {"cond": cond}
        if pooled is not None:
            out["pooled"] = pooled
        try:
            c.r.set(key, frame.encode(out, {"format": "pt"}))
        except ValueError:
            raise
        except Exception as e:
            log.warning("tiercache: conditioning not cached: %s", e)
        return ([[cond, {"pooled_output": pooled}]],)


NODE_CLASS_MAPPINGS = {"TiercacheCLIPTextEncode": TiercacheCLIPTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"TiercacheCLIPTextEncode": "CLIP Text Encode (tiercache)"}
