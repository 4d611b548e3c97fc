"""Cheap, torch-free checks used by ``gm list-datasets``: can a dataset load offline now?

This module imports neither torch nor ``datasets`` (``gm list-datasets`` must stay fast).
"""

from __future__ import annotations

import importlib.util


def digits(data_dir: str | None = None) -> bool:
    return importlib.util.find_spec("sklearn") is not None
