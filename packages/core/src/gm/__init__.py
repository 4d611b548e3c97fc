"""gm: a toolkit for iterative generative models.

Importing ``gm`` is cheap: it pulls in neither torch nor any plugin. The plugin
manager is built on first use (``gm.plugins.manager()``); the Python API
(``gm.train``, ``gm.load``) is imported on first use too.
"""

from typing import Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("gm")
"""Marker for plugin hook implementations: ``@gm.hookimpl def gm_models(): ...``."""

_API = ("train", "load", "Run", "Model")

__all__ = ["__version__", "hookimpl", *_API]


def __getattr__(name: str) -> Any:  # gm.train / gm.load without importing torch at `import gm`
    if name in _API:
        from gm import api

        return getattr(api, name)
    raise AttributeError(f"module 'gm' has no attribute {name!r}")
