"""tiercache nodes for ComfyUI: copy (or symlink) this directory into
ComfyUI/custom_nodes/ and install the tiercache Python client
(``pip install ./clients/python``) into ComfyUI's environment."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
