"""gm-walkback: Variational Walkback (Goyal, Ke, Ganguli, Bengio, NIPS 2017) and the NET
diffusion baseline (Sohl-Dickstein et al., 2015) as gm models.

Importing this package is cheap; the implementation lives in sibling modules that import
torch: ``networks`` (MLP and conv networks with per-step normalisation), ``operators``
(Gaussian and Bernoulli transition operators), ``schedules`` (temperature schedules),
``chains`` (sampling chains and the likelihood estimators), ``shared`` (what the two
trainers share: dequantisation, bits/dim, energy distance), ``walkback`` and ``diffusion``
(the trainers), ``inpainting`` and ``commands`` (the ``gm inpaint`` verb; masks are core's
``gm.masks``).
"""

__version__ = "0.1.0"
