"""Registries of our own kinds, built on basicsr's Registry so they read like its arch/dataset/model registries.

PREPARE_REGISTRY holds the data-preparation steps an options file may name (`prepare: demo`). A step is a function
of the run's root folder, registered under its own name with `register_prepare_step`, that writes the folder it
declares (`creates`, relative to the root). Options files name steps; they never name scripts or arguments, so
preparing data runs only code the package ships.
"""
from __future__ import annotations

from collections.abc import Callable

from basicsr.utils.registry import Registry

PREPARE_REGISTRY = Registry('prepare')

PrepareStep = Callable[[str], None]


def register_prepare_step(creates: str) -> Callable[[PrepareStep], PrepareStep]:
    """Decorator: register fn(root) as the preparation step named fn.__name__, which writes root/`creates`.

    The step is run (in-process) only when root/`creates` is missing, and must leave it complete or not at all.
    """
    def deco(fn: PrepareStep) -> PrepareStep:
        fn.creates = creates  # type: ignore[attr-defined]
        PREPARE_REGISTRY.register(fn)
        return fn
    return deco
