"""gm: a toolkit for iterative generative models.

Importing ``gm`` is cheap: it pulls in neither torch nor any plugin. The plugin
manager is built on first use (``gm.plugins.manager()``).
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("gm")
"""Marker for plugin hook implementations: ``@gm.hookimpl def gm_models(): ...``."""

__all__ = ["__version__", "hookimpl"]
