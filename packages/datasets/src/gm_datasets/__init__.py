"""gm-datasets: the papers' datasets and the user's own data for gm.

Importing this package is cheap (no torch, no ``datasets``): the plugin module only
returns spec records naming lazy loaders.
"""

__version__ = "0.1.0"
