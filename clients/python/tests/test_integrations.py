import importlib.util
import os
import sys

import numpy as np
import pytest

from tiercache.integrations.diffusers import cache_encode_prompt

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.needs_module("torch", "python3-torch")


class FakePipe:
    """Stands in for a diffusers pipeline: encode_prompt returns a tuple of
    (prompt_embeds, negative_prompt_embeds or None), deterministic in its
    arguments, and counts its calls."""

    def __init__(self):
        self.calls = 0

    def encode_prompt(self, prompt, device=None, num_images_per_prompt=1, do_classifier_free_guidance=True,
                      negative_prompt=None, lora_scale=None, clip_skip=None):
        self.calls += 1
        seed = sum(map(ord, prompt)) + 7 * num_images_per_prompt + (clip_skip or 0) + int(100 * (lora_scale or 0))
        emb = np.random.default_rng(seed).standard_normal((num_images_per_prompt, 77, 768)).astype(np.float16)
        neg = None
        if do_classifier_free_guidance:
            neg = np.zeros_like(emb) if negative_prompt is None else emb * 0.5
        return emb, neg


def test_diffusers_wrapper_encodes_once(cache):
    pipe = cache_encode_prompt(FakePipe(), model="sd15", version="v1", cache=cache)
    a = pipe.encode_prompt("a cat", device="cpu", num_images_per_prompt=1)
    b = pipe.encode_prompt("a cat", "cpu", 1)  # the same call, positional
    orig = pipe  # the instance; its encode_prompt is now the cached one
    assert orig.calls == 1
    assert isinstance(b, tuple) and len(b) == 2
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # An output-changing argument computes again; device does not.
    pipe.encode_prompt("a cat", device="cuda:7")
    assert orig.calls == 1
    for kwargs in [dict(clip_skip=2), dict(lora_scale=0.8), dict(negative_prompt="blurry"),
                   dict(num_images_per_prompt=2), dict(do_classifier_free_guidance=False)]:
        before = orig.calls
        out = pipe.encode_prompt("a cat", **kwargs)
        assert orig.calls == before + 1, kwargs
        again = pipe.encode_prompt("a cat", **kwargs)
        assert orig.calls == before + 1, kwargs
        assert (out[1] is None) == (again[1] is None)
        assert np.array_equal(out[0], again[0])
    pipe.encode_prompt("a dog")
    assert orig.calls == 7


@needs_torch
def test_diffusers_wrapper_torch_tensors(cache):
    class TorchPipe:
        calls = 0

        def encode_prompt(self, prompt, device=None, prompt_embeds=None):
            self.calls += 1
            base = torch.full((1, 4, 8), float(len(prompt)), dtype=torch.bfloat16)
            return (base if prompt_embeds is None else prompt_embeds * 2), None

    p = TorchPipe()
    cache_encode_prompt(p, model="flux", version="v1", cache=cache)
    x, none = p.encode_prompt("abc", device="cpu")
    y, _ = p.encode_prompt("abc", device="cpu")
    assert p.calls == 1
    assert none is None and y.dtype == torch.bfloat16 and torch.equal(x, y)
    e = torch.ones(1, 4, 8)
    p.encode_prompt("abc", prompt_embeds=e)
    p.encode_prompt("abc", prompt_embeds=e.clone())
    assert p.calls == 2  # same tensor bytes: same key
    p.encode_prompt("abc", prompt_embeds=e * 3)
    assert p.calls == 3


def _load_comfy_nodes():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "comfyui", "__init__.py")
    spec = importlib.util.spec_from_file_location("tiercache_comfyui", path, submodule_search_locations=[os.path.dirname(path)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["tiercache_comfyui"] = mod
    spec.loader.exec_module(mod)
    return mod


class FakeCLIP:
    """The parts of ComfyUI's CLIP object the node uses: tokenize,
    encode_from_tokens(return_pooled=True), cond_stage_model.state_dict(),
    patcher.patches and layer_idx."""

    class Model(torch.nn.Module if torch is not None else object):
        def __init__(self, seed):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((4, 4), float(seed)))

    class Patcher:
        def __init__(self):
            self.patches = {}

    def __init__(self, seed=1):
        self.cond_stage_model = FakeCLIP.Model(seed)
        self.patcher = FakeCLIP.Patcher()
        self.layer_idx = None
        self.encodes = 0

    def tokenize(self, text):
        return {"l": [[(ord(ch), 1.0) for ch in text]]}

    def encode_from_tokens(self, tokens, return_pooled=False):
        self.encodes += 1
        ids = torch.tensor([t for t, _ in tokens["l"][0]], dtype=torch.float32)
        w = self.cond_stage_model.w.detach()
        cond = (ids.sum() + w.sum()) * torch.ones(1, 77, 768, dtype=torch.float16)
        pooled = torch.ones(1, 768) * float(len(ids))
        return (cond, pooled) if return_pooled else cond


@needs_torch
def test_comfyui_node_from_cache_on_second_run(daemon, monkeypatch):
    monkeypatch.setenv("TIERCACHE_SOCKET", daemon.socket)
    mod = _load_comfy_nodes()
    from tiercache_comfyui import nodes

    nodes._cache = None  # connect to this test's daemon
    node_cls = mod.NODE_CLASS_MAPPINGS["TiercacheCLIPTextEncode"]
    assert node_cls.RETURN_TYPES == ("CONDITIONING",) and node_cls.FUNCTION == "encode"
    assert set(node_cls.INPUT_TYPES()["required"]) == {"text", "clip"}
    clip = FakeCLIP()
    node = node_cls()
    (first,) = getattr(node, node_cls.FUNCTION)(clip=clip, text="a cat")
    (second,) = node.encode(clip=clip, text="a cat")
    assert clip.encodes == 1  # the second run came from the cache
    assert torch.equal(first[0][0], second[0][0]) and second[0][0].dtype == torch.float16
    assert torch.equal(first[0][1]["pooled_output"], second[0][1]["pooled_output"])
    node.encode(clip=clip, text="a dog")
    assert clip.encodes == 2
    # Another model (other weights), a LoRA patch or clip skip: not shared.
    other = FakeCLIP(seed=2)
    node.encode(clip=other, text="a cat")
    assert other.encodes == 1
    clip.patcher.patches = {"w": [(0.8, torch.ones(4, 4), 1.0)]}
    node.encode(clip=clip, text="a cat")
    assert clip.encodes == 3
    clip.layer_idx = -2
    node.encode(clip=clip, text="a cat")
    assert clip.encodes == 4
    nodes._cache = None
