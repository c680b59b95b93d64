"""tiercache: cache pipeline stage outputs (text-encoder embeddings, ...) in a
tiercache daemon, as tensors.

    from tiercache import Cache, cache_key
    c = Cache()
    k = cache_key(model="openai/clip-vit-large-patch14", version="2024-06",
                  stage="text-encoder", inputs={"prompt": "a cat", "max_length": 77})
    emb = c.get_or_compute(k, lambda: encoder(prompt))

For asyncio programs, tiercache.aio.AsyncCache has the same API with
coroutines (await c.get(k), await c.get_or_compute(k, fn), ...).
"""

from .client import DEFAULT_SOCKET, Cache, StaleVersion, Unavailable
from .frame import FrameError
from .keys import cache_key, encode_inputs

__all__ = ["Cache", "cache_key", "encode_inputs", "StaleVersion", "Unavailable", "FrameError", "DEFAULT_SOCKET"]
__version__ = "0.1.0"
