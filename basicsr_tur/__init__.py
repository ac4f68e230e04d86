"""basicsr-tur: all-in-one image restoration with Task Uncertainty Regularization on BasicSR.

Importing this package registers every arch, dataset, loss, metric and model into basicsr's
registries, and the name of every data-preparation step (basicsr_tur/prepare/__init__.py; a step's
code is imported when it runs).
"""
import sys

import torchvision.transforms._functional_tensor as _functional_tensor

# basicsr 1.4.2 imports `torchvision.transforms.functional_tensor`, which torchvision removed in 0.17.
# This is the one place the alias is made; it must run before the first basicsr import.
sys.modules.setdefault('torchvision.transforms.functional_tensor', _functional_tensor)

# Registers everything:
from basicsr_tur import archs, data, losses, metrics, models, prepare  # noqa: E402,F401

__version__ = '0.1.0'
