"""Registries of our own kinds, built on basicsr's Registry so they read like its arch/dataset/model registries.

PREPARE_REGISTRY holds the data-preparation steps an options file may name (`prepare: demo`). A step is a function
of the run's root folder, registered under its own name with `register_prepare_step`, that writes the folder it
declares (`creates`, relative to the root). Options files name steps; they never name scripts or arguments, so
preparing data runs only code the package ships: `check_prepare_step` refuses any other value of `prepare`, and
`run_prepare_step` runs the named step in-process.
"""
from __future__ import annotations

from collections.abc import Callable
from os import path as osp

from basicsr.utils.registry import Registry

from basicsr_tur.utils.option_file import OptionError

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


def check_prepare_step(opt: dict, path: str) -> None:
    """`prepare` must be null or the name of a registered preparation step; anything else raises OptionError
    naming the options file `path`.

    An options file may be downloaded with a checkpoint: it names a step the package ships, never a script to run.
    """
    prepare = opt.get('prepare')
    if prepare is None or (isinstance(prepare, str) and prepare in PREPARE_REGISTRY):
        return
    known = ', '.join(sorted(PREPARE_REGISTRY.keys())) or 'none'
    if isinstance(prepare, dict):
        raise OptionError(f"{path}: 'prepare' takes the name of a preparation step the package ships (known: "
                          f'{known}), not a mapping of {", ".join(map(str, prepare))}: options never run scripts')
    raise OptionError(f"{path}: 'prepare': unknown preparation step {prepare!r}; known: {known}")


def run_prepare_step(opt: dict, root_path: str) -> None:
    """Run the preparation step the options name (`prepare: demo`) in-process, unless its output already exists.

    Raises OptionError for a name that is not a registered step, RuntimeError when the step leaves no output.
    """
    check_prepare_step(opt, opt.get('opt_path', 'options'))  # checked at parse time too; not trusted from a caller
    name = opt.get('prepare')
    if name is None:
        return
    step = PREPARE_REGISTRY.get(name)
    creates = osp.join(root_path, step.creates)
    if osp.exists(creates):
        return
    step(root_path)
    if not osp.exists(creates):
        raise RuntimeError(f"preparation step '{name}' did not create {creates}")
