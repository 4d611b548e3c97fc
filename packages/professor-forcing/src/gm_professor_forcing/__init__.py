"""gm-professor-forcing: Professor Forcing and its teacher-forcing / scheduled-sampling baselines.

Importing this package is cheap (no torch); the code lives in ``generators``,
``discriminators``, ``trainers``, ``evaluation`` and ``drawing``.
"""

__version__ = "0.1.0"
