"""Checking options: every key, every value's type and every sub-options dict, before anything is written.

Each component declares the option keys it reads, as a mapping of dotted names to Kinds (None: any value, checked
where it is read): datasets in their OPTION_KEYS (data/*_dataset.py; those every dataset takes,
DATASET_COMMON and LOADER_KINDS, here), models in theirs (models/tur_model.py: the `train.`,
`val.` and `path.` keys TURModel reads; AirNetModel adds its own), a test run's `published` beside its checker here
(TEST_KEYS, check_published). CORE_KEYS are those of the run set-up (utils/options.py) and basicsr's conventions.
The sub-options dicts passed on as keyword arguments (arch, loss, optimizer, scheduler, io backend, metrics,
torch.compile, dist_params) are checked against the signatures that take them; a model's rules
between keys by its check_option_rules (TURModel's head switches). A mistake fails
at once, in one line (an OptionError) that names the file and the key.
"""
from __future__ import annotations

import collections.abc
import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from os import path as osp
from typing import Any

import torch
import torch.distributed
from basicsr.models import lr_scheduler
from basicsr.utils.file_client import FileClient
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from basicsr_tur.utils.option_file import OptionError, find_relative
from basicsr_tur.utils.registry import check_prepare_step
from basicsr_tur.utils.tables import check_row, load_published

# The default of a Kind that declares none (its reader has none, or parse_options sets the key).
NO_DEFAULT: Any = type('NoDefault', (), {'__repr__': lambda self: 'NO_DEFAULT'})()


@dataclass(frozen=True)
class Kind:
    """What one option may hold: YAML types (bool, int, float, str, list, dict), null, fixed words, a minimum, and
    the kind of each item of a list. float admits integers; int admits no fraction. path: a file or folder that
    parse_options makes absolute under the run's root folder.
    description, default: what the option does and the value its reader takes when it is absent,
    for the options reference and options/schema.json (not compared); internal: set by
    parse_options, never written in an options file."""
    types: frozenset = frozenset()
    null: bool = False
    words: tuple[str, ...] = ()
    minimum: float | None = None
    item: Kind | None = None
    path: bool = False
    description: str = field(default='', compare=False)
    default: Any = field(default=NO_DEFAULT, compare=False)
    internal: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, *kinds: type, null: bool = False, words: tuple[str, ...] = (), minimum: float | None = None,
           item: Kind | None = None, path: bool = False) -> Kind:
        """Kind.of(int, null=True, minimum=0): the Kind of an option holding a value of one of `kinds`."""
        return cls(frozenset(kinds), null, words, minimum, item, path)

    def doc(self, description: str, default: Any = NO_DEFAULT) -> Kind:
        """This Kind with a one-line description and the default its reader takes."""
        return replace(self, description=description, default=default)

    def describe(self) -> str:
        """'an integer', 'a number or null', "an integer or 'auto'", ... for error messages."""
        names = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
                 dict: 'a mapping'}
        parts = [names[t] for t in names if t in self.types and not (t is int and float in self.types)]
        parts += [repr(w) for w in self.words] + (['null'] if self.null else [])
        return ' or '.join(parts)


# The option keys a component reads: dotted names ('train.ema_decay') -> Kind (with a description:
# tests/test_options_schema.py), or None for any value (checked where it is read). A name with
# names below it ('val.tile' of 'val.tile.size') must be a mapping, or null where it is declared
# with a Kind that allows null ('val.pad': Kind.of(dict, null=True)).
OptionKeys = Mapping[str, Kind | None]

BOOL, STR, LIST, MAPPING = Kind.of(bool), Kind.of(str), Kind.of(list), Kind.of(dict)
NUMBER, COUNT, POSITIVE = Kind.of(float), Kind.of(int, minimum=0), Kind.of(int, minimum=1)
PATH = Kind.of(str, null=True, path=True)
# Any value (checked where it is read, or set by parse_options).
ANY = Kind.of(bool, int, float, str, list, dict, null=True)
_SET = replace(ANY, internal=True).doc  # a key parse_options sets: _SET('what it holds')

# The keys of the run set-up (utils/options.py parse_options: it sets the output folders and, in
# debug mode, the frequencies of validation and logging) and of basicsr's conventions that the
# pipelines follow: the training loop's length and warm-up, validation and logging frequencies (read
# by train.py, as by basicsr's train.py). A key that only one model, dataset or pipeline reads is
# declared there instead.
CORE_KEYS: dict[str, Kind | None] = {
    'name': STR.doc("the run's name: its folder under experiments/ (training) or results/ (test)"),
    'model_type': STR.doc('the registered model that trains or tests (TURModel, AirNetModel)'),
    'scale': POSITIVE.doc("the network's upscaling factor, given to every dataset (1: none)"),
    'num_gpu': Kind.of(int, words=('auto',), minimum=0).doc(
        'GPUs to use: 0 for the CPU, 1 for one GPU, auto for all visible ones', default=0),
    'manual_seed': Kind.of(int, null=True).doc(
        "seed of the run's generators and datasets (null: one is drawn)", default=None),
    'tasks': LIST.doc("the setting's task names; a task's id is its position; datasets, losses, "
                      'logs and tables use these names'),
    # the name of a registered preparation step (utils/registry.py check_prepare_step)
    'prepare': ANY.doc('a data-preparation step the package ships (e.g. demo), run in-process '
                       'when its output folder is missing', default=None),
    # checked against each dataset class's OPTION_KEYS
    'datasets': MAPPING.doc('the data sets by phase name (train, val, val_2, test_1, ...)'),
    # checked against the arch constructor's signature
    'network_g': MAPPING.doc("the network: a registered arch's `type` and its constructor's "
                             'arguments'),
    # TURModel.distributed reads it (default false: no shipped backbone needs it)
    'find_unused_parameters': BOOL.doc("DistributedDataParallel's find_unused_parameters",
                                       default=False),
    # utils/options.py set_backend_flags reads these two (train.py and test.py call it before
    # building anything)
    'cudnn_benchmark': BOOL.doc("cuDNN's autotuner picks each convolution's algorithm",
                                default=False),
    'tf32': BOOL.doc('TF32 tensor cores for the float32 matmuls and convolutions on GPUs',
                     default=True),
    'dist_params': Kind.of(dict, null=True).doc(
        'arguments of torch.distributed.init_process_group, and port', default=None),
    'path.resume_state': PATH.doc('a training state to resume from', default=None),
    'train.total_iter': POSITIVE.doc('iterations to train'),
    'train.warmup_iter': Kind.of(int, minimum=-1).doc(
        'iterations of linear learning-rate warm-up (-1: none)', default=-1),
    'val.val_freq': Kind.of(int, null=True, minimum=1).doc(
        'validate every this many iterations (null: never)', default=None),
    # train.py and test.py read save_img
    'val.save_img': BOOL.doc('write the restored validation or test images', default=False),
    'logger.print_freq': POSITIVE.doc('log every this many iterations', default=100),
    'logger.save_checkpoint_freq': POSITIVE.doc(
        'save the network and training state every this many iterations', default=5000),
    'logger.use_tb_logger': BOOL.doc('write tensorboard logs (not in debug runs)', default=True),
    'logger.wandb': Kind.of(dict, null=True).doc(
        "basicsr's wandb keys, accepted with no project (nothing logs to wandb)", default=None),
    # set by parse_options
    'path.experiments_root': _SET("the training's output folder"),
    'path.models': _SET('where network checkpoints are saved'),
    'path.training_states': _SET('where training states are saved'),
    'path.log': _SET('where the log is written'),
    'path.visualization': _SET('where images are written'),
    'path.results_root': _SET("the test's output folder"),
    'path.root': _SET('the folder relative paths are under (--root)'),
    'is_train': _SET('whether the run trains'), 'dist': _SET('whether the run is distributed'),
    'rank': _SET("the process's rank"), 'world_size': _SET('the number of processes'),
    'auto_resume': _SET('--auto_resume'), 'opt_path': _SET('the options file read'),
}

# The keys a test run reads beside CORE_KEYS and the model's: the published rows of `setting` in
# `file` (options/published.yml) shown beside the measured ones, and the difference to `row`
# (check_published checks them; test.py and scripts/compare_images.py read them). Accepted unless
# the options are checked for training.
TEST_KEYS: dict[str, Kind | None] = {
    'published.file': ANY.doc('the file of published rows (e.g. options/published.yml)'),
    'published.setting': ANY.doc('the setting whose published rows are shown beside the measured'),
    'published.row': ANY.doc('the published row the measured one is compared with', default=None),
}
# The dataset keys of basicsr's conventions, which every registered dataset takes whatever its
# type: they stay here, not in a dataset class, because no dataset reads them itself. parse_options
# (utils/options.py) sets phase, scale and tasks from the top level, as basicsr's does; name and
# type name the set and its class; io_backend is basicsr's FileClient option, checked here
# (_check_io_backend); dataset_enlarge_ratio is basicsr's training-length multiplier. A key that a
# dataset class reads is declared in its OPTION_KEYS, next to its code (data/*_dataset.py).
DATASET_COMMON: dict[str, Kind] = {
    'name': STR.doc("the set's name: names its results, images and table rows"),
    'type': STR.doc('the registered task-labelled dataset class'),
    'phase': STR.doc('train, val or test: set by parse_options from the phase name'),
    'tasks': LIST.doc("the set's task names (default: the top-level tasks)"),
    'scale': POSITIVE.doc('the upscaling factor (set by parse_options from the top-level scale)'),
    'io_backend': MAPPING.doc('{type: disk} or {type: lmdb} (the LMDB roots are the dataroot_*)',
                              default={'type': 'disk'}),
    'dataset_enlarge_ratio': POSITIVE.doc(
        'training length multiplier (a part: its weight in the mix)', default=1),
}
# The loader keys: basicsr's build_dataloader reads these (data/loaders.build_loader, which
# replaces it, reads the same ones, plus prefetch_factor, passed on to torch's DataLoader, and
# sampler, the sampler it builds). They are options of the loader, not of a dataset class, so every
# dataset takes them; a MixedTaskDataset's part is not loaded by itself, so in a part they would be
# silently ignored (_check_dataset refuses them there).
LOADER_KINDS: dict[str, Kind] = {
    'num_worker_per_gpu': COUNT.doc(
        'loader workers per GPU (default: 0 in training; 2 for eval on a GPU, else 0)'),
    'batch_size_per_gpu': POSITIVE.doc('samples per batch and GPU'),
    'prefetch_mode': Kind.of(null=True, words=('cpu', 'cuda')).doc(
        "basicsr's prefetcher (null: the loader's own)", default=None),
    'pin_memory': BOOL.doc("the loader's pin_memory (default: on for training on a GPU)"),
    'persistent_workers': BOOL.doc('keep the loader workers across epochs', default=False),
    'prefetch_factor': POSITIVE.doc('batches each worker prepares ahead', default=2),
    'num_prefetch_queue': POSITIVE.doc('batches queued by prefetch_mode: cpu', default=1),
    'sampler': Kind.of(words=('shuffle', 'balanced')).doc(
        'training order: a shuffle, or balanced over tasks', default='shuffle'),
}
LOADER_KEYS = set(LOADER_KINDS)


def is_task_dataset(dataset: type) -> bool:
    """Whether a registered dataset class declares the option keys it reads (OPTION_KEYS, a mapping
    of names to Kinds): ours, which give task ids; basicsr's own give none."""
    return isinstance(getattr(dataset, 'OPTION_KEYS', None), Mapping)


def dataset_keys(dataset: type, part: bool = False) -> dict[str, Kind]:
    """Every key a dataset of class `dataset` takes, with its Kind: DATASET_COMMON, LOADER_KINDS
    (not in a part of a MixedTaskDataset) and the class's own OPTION_KEYS."""
    loader = {} if part else LOADER_KINDS
    return {**DATASET_COMMON, **loader, **dataset.OPTION_KEYS}


def dataset_paths(dataset_opt: dict) -> list[str]:
    """The keys of a checked dataset's options that hold paths (a path Kind of its class)."""
    dataset = DATASET_REGISTRY.get(dataset_opt['type'])
    return [name for name, kind in dataset_keys(dataset).items() if kind.path]
# basicsr's BaseModel.setup_schedulers, which TURModel keeps: these names, these classes (no torch scheduler).
SCHEDULERS = {'MultiStepLR': 'MultiStepRestartLR', 'MultiStepRestartLR': 'MultiStepRestartLR',
              'CosineAnnealingRestartLR': 'CosineAnnealingRestartLR'}
# basicsr's schedulers have no type hints: what their arguments hold.
SCHEDULER_KINDS = {'milestones': Kind.of(list, item=POSITIVE), 'gamma': NUMBER,
                   'restarts': Kind.of(list, item=COUNT), 'restart_weights': Kind.of(list, item=NUMBER),
                   'periods': Kind.of(list, item=POSITIVE), 'eta_min': NUMBER}
# basicsr's metrics take **kwargs and ignore what they do not know, so a misspelt `test_y_chanel` would silently
# score RGB: their arguments are this allow-list (where the metric's signature names them), with these types.
METRIC_KINDS = {'crop_border': COUNT, 'test_y_channel': BOOL, 'input_order': Kind.of(words=('HWC', 'CHW')),
                'convert_to': Kind.of(words=('y', 'gray'))}
# basicsr's tensor metrics, registered beside the others: they score torch tensors (img.to(...)),
# and validation gives every metric numpy images, so they would fail at the first image.
TENSOR_METRICS = ('calculate_psnr_pt', 'calculate_ssim_pt')
# data_util.check_backend accepts these two FileClient backends; a dataset sets db_paths and client_keys itself.
IO_BACKENDS = ('disk', 'lmdb')
WANDB_KINDS = {'project': Kind.of(str, null=True), 'resume_id': Kind.of(str, null=True)}
DIST_PARAMS_EXTRA = {'port': Kind.of(int, minimum=1)}  # utils.dist.init_dist takes it; the rest goes to torch


def _check_file_name(value: Any, key: str, path: str) -> None:
    """A name that becomes one folder or file name of the outputs (the run's name, a test set's name): one path
    component, so that no options file can make a run archive or write folders outside experiments/ or results/."""
    if not isinstance(value, str) or value.strip() in ('', '.', '..') or '/' in value or osp.sep in value \
            or '\0' in value:
        raise OptionError(f"{path}: '{key}' must be a plain name (no '/', not '.' or '..'): it names an output "
                          f'folder, got {value!r}')


def did_you_mean(name: str, known: Any) -> str:
    """'; did you mean 'x'?' (or 'x' or 'y') for the closest names in known, else ''."""
    close = difflib.get_close_matches(str(name), list(known), n=2)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ''


# Keys parse_options sets on the options it returns (accepted, so that returned options check again, but never
# suggested to a person writing a file).
_SET_BY_PARSE = {name for name, kind in CORE_KEYS.items() if kind is not None and kind.internal
                 and '.' not in name}


def _unknown(key: str, allowed: Any, where: str, path: str) -> OptionError:
    allowed = sorted(set(allowed) - (_SET_BY_PARSE if not where else set()))
    hint = did_you_mean(key, allowed) or (f'; allowed: {", ".join(allowed)}' if allowed else '; it takes no options')
    return OptionError(f"{path}: unknown key '{where}{key}'{hint}")


def _declares_keys(model: type) -> bool:
    return isinstance(getattr(model, 'OPTION_KEYS', None), Mapping)


def check_model_type(model_type: Any, path: str) -> type:
    """The registered model class model_type names, which declares the option keys it reads (OPTION_KEYS); raises
    OptionError naming `path` for an unknown model or one without OPTION_KEYS (e.g. basicsr's SRModel)."""
    if model_type not in [name for name, _ in MODEL_REGISTRY]:
        raise OptionError(f"{path}: 'model_type': unknown model '{model_type}'")
    model = MODEL_REGISTRY.get(model_type)
    if not _declares_keys(model):
        ours = sorted(name for name, cls in MODEL_REGISTRY if _declares_keys(cls))
        raise OptionError(f"{path}: 'model_type': {model_type} declares no OPTION_KEYS (the option keys a model "
                          f"reads), so its options cannot be checked; use one of {', '.join(ours)}")
    return model


def declared_keys(model_type: str | None, is_train: bool | None = None) -> dict[str, Kind | None]:
    """The option keys a run reads: CORE_KEYS, the OPTION_KEYS of the model model_type names (a checked one, see
    check_model_type; with None, those of every registered model), and TEST_KEYS unless is_train."""
    if model_type is None:
        model_keys: dict[str, Kind | None] = {}
        for _, model in MODEL_REGISTRY:
            model_keys.update(model.OPTION_KEYS if _declares_keys(model) else {})
    else:
        model_keys = dict(MODEL_REGISTRY.get(model_type).OPTION_KEYS)
    return {**CORE_KEYS, **model_keys, **({} if is_train else TEST_KEYS)}


def _covers(keys: OptionKeys, name: str) -> bool:
    """Whether keys declare the option `name` itself or options below it ('val.tile' for 'val.tile.size')."""
    return name in keys or any(k.startswith(name + '.') for k in keys)


def _other_readers(name: str, model_type: Any) -> dict[str, Kind | None]:
    """The registered models other than model_type that declare the option `name` (or keys below it), each with its
    Kind of it."""
    found = {}
    for model_name, model in MODEL_REGISTRY:
        keys = model.OPTION_KEYS if _declares_keys(model) and model_name != model_type else {}
        if _covers(keys, name):
            found[model_name] = keys.get(name)
    return found


def _check_names(opt: dict, keys: OptionKeys, path: str, notes: list[str], model_type: Any,
                 prefix: str = '') -> None:
    """Every name in opt (under prefix) is one of keys, and one with names below it is a mapping, checked in turn.

    A name another registered model reads is refused (unless null or false: it then sets nothing) in words that say
    which model reads it; any other unknown name raises OptionError with a did-you-mean hint.
    """
    for key, value in opt.items():
        name = f'{prefix}{key}'
        below = any(k.startswith(name + '.') for k in keys)
        if name in keys or below:
            if below:
                if value is None and keys.get(name) is not None and keys[name].null:
                    continue  # declared nullable: null sets nothing below it
                if not isinstance(value, dict):
                    raise OptionError(f"{path}: '{name}' must be a mapping, got {value!r}")
                _check_names(value, keys, path, notes, model_type, name + '.')
            continue
        if _covers(TEST_KEYS, name):
            raise OptionError(f"{path}: '{name}' is read by test.py only (the published rows beside the measured "
                              'ones), not by training; remove it')
        readers = _other_readers(name, model_type)
        if not readers:
            level = {k[len(prefix):].split('.')[0] for k in keys if k.startswith(prefix)}
            raise _unknown(key, level, prefix, path)
        kind = next(iter(readers.values()))
        if kind is not None:  # a value of the wrong type is named as such first, as for a key the model reads
            coerce(value, kind, name, path, notes)
        if value is not None and value is not False:
            raise OptionError(f"{path}: '{name}' is read by model_type {' or '.join(sorted(readers))} only, not "
                              f"'{model_type}'; remove it")


def _check_registered(registry: Any, type_name: Any, kind: str, key: str, path: str) -> type:
    if type_name is None:
        raise OptionError(f"{path}: '{key}.type' is missing")
    known = [name for name, _ in registry]
    if type_name not in known:
        raise OptionError(f"{path}: '{key}.type': unknown {kind} '{type_name}'{did_you_mean(type_name, known)}")
    return registry.get(type_name)


def _number(text: str) -> float | None:
    """The finite number a string spells ('2e-3', ' 6 '), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def coerce(value: Any, kind: Kind, key: str, path: str, notes: list[str]) -> Any:
    """value checked against kind and returned, a numeric string or an integral float converted (with a note in
    notes); raises OptionError naming path and key otherwise."""
    def fail(reason: str | None = None) -> OptionError:
        return OptionError(f"{path}: '{key}' must be {reason or kind.describe()}, got {value!r}")

    if value is None:
        if kind.null:
            return None
        raise fail()
    out = value
    if isinstance(value, str) and value not in kind.words and str not in kind.types:
        number = _number(value) if {int, float} & kind.types else None
        if number is None or (float not in kind.types and not number.is_integer()):
            raise fail()
        out = int(number) if float not in kind.types or _is_int(value) else number
        # YAML 1.1 (PyYAML) reads 2e-3, written without a dot, as a string; others are quoted numbers.
        why = 'YAML 1.1 reads an exponent without a dot as text: write 2.0e-3' if 'e' in value.lower() and \
            '.' not in value else 'write numbers without quotes'
        notes.append(f"{path}: '{key}': read the string {value!r} as the number {out!r} ({why})")
    elif isinstance(value, bool):
        if bool not in kind.types:
            raise fail()
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and float not in kind.types:
            if int not in kind.types or not value.is_integer():
                raise fail()
            out = int(value)
            notes.append(f"{path}: '{key}': read {value!r} as the integer {out}")
        elif not {int, float} & kind.types:
            raise fail()
    elif isinstance(value, str):
        if value not in kind.words and str not in kind.types:
            raise fail()
    elif isinstance(value, list):
        if list not in kind.types:
            raise fail()
        if kind.item is not None:
            out = [coerce(v, kind.item, f'{key}[{i}]', path, notes) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        if dict not in kind.types:
            raise fail()
    if kind.minimum is not None and isinstance(out, (int, float)) and not isinstance(out, bool) \
            and out < kind.minimum:
        raise fail(f'>= {kind.minimum:g}')
    return out


def _check_kinds(opt: dict, kinds: dict[str, Kind], path: str, notes: list[str], prefix: str = '') -> None:
    """Check (and convert in place) the values of opt whose dotted names kinds lists."""
    for name, kind in kinds.items():
        *parents, last = name.split('.')
        node = opt
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = coerce(node[last], kind, prefix + name, path, notes)


def _annotation_kind(annotation: Any) -> Kind | None:
    """The Kind of a type hint, keeping only what YAML can hold (a Tensor in `float | Tensor` is dropped); None when
    the hint says nothing checkable (Any, a string that did not evaluate)."""
    if isinstance(annotation, str) or annotation is Any:
        return None
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    parts = typing.get_args(annotation) if union else (annotation,)
    found, null, words, item = set(), False, (), None
    for part in parts:
        origin = typing.get_origin(part) or part
        if part is Any:
            return None
        if part is type(None):
            null = True
        elif part in (bool, int, float, str):
            found.add(part)
        elif origin is typing.Literal:
            words += tuple(str(w) for w in typing.get_args(part))
        elif isinstance(origin, type) and issubclass(origin, (list, tuple)):
            found.add(list)
            items = {a for a in typing.get_args(part) if a is not Ellipsis}
            item = _annotation_kind(items.pop()) if len(items) == 1 else None
        elif isinstance(origin, type) and issubclass(origin, (dict, collections.abc.Mapping)):
            found.add(dict)
    if not found and not words:
        return None
    return Kind.of(*found, null=null, words=words, item=item)


def _param_kind(param: inspect.Parameter) -> Kind | None:
    """The Kind of one argument, from its type hint, else loosely from its default: a flag (default true or false)
    takes true or false; a number or a sequence (64, (224, 224): many constructors take either) takes a number or a
    list of numbers. Either way a word where a number belongs is refused, and a numeric string read as the number."""
    kind = _annotation_kind(param.annotation) if param.annotation is not param.empty else None
    default = param.default
    if kind is None and default is not param.empty and default is not None:
        if isinstance(default, bool):
            kind = BOOL
        elif isinstance(default, (int, float, list, tuple)):
            kind = Kind.of(float, list, item=NUMBER if _numbers(default) else None)
    if kind is not None and default is None:
        kind = replace(kind, null=True)
    return kind


def _numbers(value: Any) -> bool:
    """Whether value is a number or a non-empty sequence of numbers (bool excluded)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def _parameters(target: Any) -> dict[str, inspect.Parameter]:
    """The parameters of a function, or of a class's constructor, with type hints evaluated where they can be."""
    function = target.__init__ if isinstance(target, type) else target
    try:
        return dict(inspect.signature(function, eval_str=True).parameters)
    except (NameError, TypeError, AttributeError):  # hints that do not evaluate: names and defaults only
        return dict(inspect.signature(function).parameters)


def _check_kwargs(target: Any, kwargs: dict, key: str, path: str, notes: list[str], *, exclude: tuple[str, ...] = (),
                  kinds: dict[str, Kind] | None = None, closed: bool = False, required: tuple[str, ...] = (),
                  extra: dict[str, Kind] | None = None) -> None:
    """Check a sub-options dict passed as keyword arguments to target (a class, function or None): each name against
    the signature (with a did-you-mean hint), each value against `kinds` or the parameter's type hint or default
    (converted in place, see coerce), and the arguments without a default (and `required`) present.

    exclude: parameters the caller fills (self, params, img, ...); closed: the signature's **kwargs swallows unknown
    names silently, so only its named parameters are allowed; extra: names the caller takes besides the signature.
    """
    params = {} if target is None else {n: p for n, p in _parameters(target).items()
                                        if n not in exclude and n != 'self'}
    open_ended = not closed and any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    extra = extra or {}
    for name in list(kwargs):
        if name == 'type':
            continue
        if name not in named and name not in extra and not open_ended:
            raise _unknown(name, set(named) | set(extra), f'{key}.', path)
        kind = extra.get(name) or (kinds or {}).get(name) or (_param_kind(named[name]) if name in named else None)
        if kind is not None:
            kwargs[name] = coerce(kwargs[name], kind, f'{key}.{name}', path, notes)
    for name, param in named.items():
        if (param.default is param.empty or name in required) and name not in kwargs:
            raise OptionError(f"{path}: '{key}.{name}' is missing")


def _check_dataset(registry: Any, dataset_opt: Any, key: str, path: str, notes: list[str],
                   parent: str | None = None) -> None:
    """Check one dataset's type (a task-labelled one), its keys and values, and those of its `parts` (parent: the
    key of the MixedTaskDataset whose part this is; a part takes no LOADER_KEYS)."""
    if not isinstance(dataset_opt, dict):
        raise OptionError(f"{path}: '{key}' must be a mapping")
    dataset = _check_registered(registry, dataset_opt.get('type'), 'dataset', key, path)
    task_labelled = [name for name, cls in registry if is_task_dataset(cls)]
    if not is_task_dataset(dataset):  # basicsr's own datasets give no task ids: TURModel needs them
        close = difflib.get_close_matches(dataset.__name__, task_labelled, n=1, cutoff=0.5)
        hint = f'use {close[0]}' if close else f'use one of {", ".join(sorted(task_labelled))}'
        raise OptionError(f"{path}: '{key}.type': {dataset.__name__} is not a task-labelled dataset ({hint})")
    kinds = dataset_keys(dataset, part=parent is not None)
    for name in dataset_opt:
        if parent is not None and name in LOADER_KEYS:
            raise OptionError(f"{path}: '{key}.{name}': a loader option, read from '{parent}' only (its parts are "
                              f"not loaded by themselves); set it on '{parent}'")
        if name not in kinds:
            raise _unknown(name, kinds, f'{key}.', path)
    _check_kinds(dataset_opt, kinds, path, notes, f'{key}.')
    if dataset_opt.get('io_backend') is not None:
        _check_io_backend(dataset_opt['io_backend'], f'{key}.io_backend', path, notes)
    for k, part in enumerate(dataset_opt.get('parts') or []):
        _check_dataset(registry, part, f'{key}.parts[{k}]', path, notes, parent=key)


def _check_io_backend(io_backend: dict, key: str, path: str, notes: list[str]) -> None:
    """An io_backend against the FileClient backend it builds (disk takes no options; lmdb its flags)."""
    backend = io_backend.get('type', 'disk')
    if backend not in IO_BACKENDS:
        raise OptionError(f"{path}: '{key}.type': unknown io backend {backend!r}"
                          + (did_you_mean(backend, IO_BACKENDS) or f"; use {' or '.join(IO_BACKENDS)}"))
    for name in ('db_paths', 'client_keys'):
        if name in io_backend:
            raise OptionError(f"{path}: '{key}.{name}': set by the dataset from its dataroot_* options; remove it")
    _check_kwargs(FileClient._backends[backend], io_backend, key, path, notes, closed=True,
                  exclude=('db_paths', 'client_keys'))


def _check_optimizer(optim_opt: dict, path: str, notes: list[str]) -> None:
    """train.optim_g against torch.optim.<type> (TURModel.get_optimizer passes lr, the rest by name)."""
    names = [n for n, c in vars(torch.optim).items() if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)
             and c is not torch.optim.Optimizer]
    optim_type = optim_opt.get('type')
    if optim_type not in names:
        if optim_type is None:
            raise OptionError(f"{path}: 'train.optim_g.type' is missing")
        raise OptionError(f"{path}: 'train.optim_g.type': unknown optimizer {optim_type!r}"
                          + (did_you_mean(optim_type, names) or ' (a torch.optim class, e.g. Adam)'))
    _check_kwargs(getattr(torch.optim, optim_type), optim_opt, 'train.optim_g', path, notes, exclude=('params',),
                  required=('lr',))
    try:  # torch checks its values (lr >= 0, betas in [0, 1), ...) when it builds one: build it on one tensor
        getattr(torch.optim, optim_type)([torch.zeros(1, requires_grad=True)],
                                         **{k: v for k, v in optim_opt.items() if k != 'type'})
    except (ValueError, TypeError) as err:
        raise OptionError(f"{path}: 'train.optim_g': {str(err).splitlines()[0] if str(err) else type(err).__name__}") \
            from None


def _check_scheduler(train_opt: dict, path: str, notes: list[str]) -> None:
    """train.scheduler against the basicsr class BaseModel.setup_schedulers builds, and its preconditions."""
    sched = train_opt['scheduler']
    sched_type = sched.get('type')
    if sched_type not in SCHEDULERS:
        if sched_type is None:
            raise OptionError(f"{path}: 'train.scheduler.type' is missing")
        raise OptionError(f"{path}: 'train.scheduler.type': unknown scheduler {sched_type!r}"
                          f"{did_you_mean(sched_type, SCHEDULERS)} (the model builds {', '.join(SCHEDULERS)})")
    cls = getattr(lr_scheduler, SCHEDULERS[sched_type])
    _check_kwargs(cls, sched, 'train.scheduler', path, notes, kinds=SCHEDULER_KINDS,
                  exclude=('optimizer', 'last_epoch'))
    weights = sched.get('restart_weights', [1])
    if SCHEDULERS[sched_type] == 'MultiStepRestartLR':
        restarts = sched.get('restarts', [0])
        if len(restarts) != len(weights):
            raise OptionError(f"{path}: 'train.scheduler': restarts {restarts} and restart_weights {weights} must "
                              'have the same length (one weight per restart)')
        return
    periods = sched['periods']
    if not periods or len(periods) != len(weights):
        raise OptionError(f"{path}: 'train.scheduler': periods {periods} and restart_weights {weights} must have the "
                          'same length (one weight per period)')
    total = train_opt.get('total_iter')
    if total is not None and sum(periods) < total:
        raise OptionError(f"{path}: 'train.scheduler.periods' {periods} add up to {sum(periods)}, fewer than "
                          f"'train.total_iter' {total}: CosineAnnealingRestartLR has no learning rate past iteration "
                          f'{sum(periods)}; lengthen the periods to add up to {total} or more (e.g. --force_yml '
                          f'train:scheduler:periods={_longer_periods(periods, total)}), or lower total_iter')


def _longer_periods(periods: list[int], total: int) -> list[int]:
    """periods with the last one lengthened so that they add up to total."""
    return periods[:-1] + [periods[-1] + total - sum(periods)]


def _check_metrics(metrics: dict, path: str, notes: list[str]) -> None:
    """Each val.metrics entry: a type in basicsr's METRIC_REGISTRY and arguments from METRIC_KINDS."""
    for name, metric_opt in metrics.items():
        key = f'val.metrics.{name}'
        if not isinstance(metric_opt, dict):
            raise OptionError(f"{path}: '{key}' must be a mapping such as {{type: calculate_psnr, crop_border: 0}}, "
                              f'got {metric_opt!r}')
        metric = _check_registered(METRIC_REGISTRY, metric_opt.get('type'), 'metric', key, path)
        if metric_opt['type'] in TENSOR_METRICS:
            raise OptionError(f"{path}: '{key}.type': {metric_opt['type']} scores torch tensors; "
                              'validation gives metrics numpy images: use calculate_psnr/'
                              'calculate_ssim (8-bit) or calculate_psnr_skimage/'
                              'calculate_ssim_skimage (float)')
        params = _parameters(metric)
        allowed = {n: k for n, k in METRIC_KINDS.items() if n in params}
        # basicsr's arguments that this metric cannot honour (the float metrics score RGB, HWC):
        # refused whatever their value, naming the metric that does not take them.
        refused = sorted(set(METRIC_KINDS) & set(metric_opt) - set(allowed))
        if refused:
            raise OptionError(f"{path}: unknown key '{key}.{refused[0]}': metric "
                              f"{metric_opt['type']} does not take it; allowed: "
                              f"{', '.join(allowed) or 'none'}")
        _check_kwargs(None, metric_opt, key, path, notes, extra=allowed)
        for name_, param in params.items():
            if name_ in METRIC_KINDS and param.default is param.empty and name_ not in metric_opt:
                raise OptionError(f"{path}: '{key}.{name_}' is missing")


def _check_wandb(wandb: dict, path: str, notes: list[str]) -> None:
    """logger.wandb: basicsr's keys are accepted, but only with no project, since nothing here logs to wandb."""
    _check_kwargs(None, wandb, 'logger.wandb', path, notes, extra=WANDB_KINDS)
    if wandb.get('project') is not None:
        raise OptionError(f"{path}: 'logger.wandb.project': basicsr-tur does not log to wandb; remove it "
                          '(tensorboard: logger.use_tb_logger)')


def loss_run_arguments(loss: type, opt: dict) -> dict:
    """What a loss class takes from the run rather than from pixel_opt, for the arguments it has: `num_tasks` (the
    length of the options' tasks list) and `seed` (manual_seed). pixel_opt's own values take precedence."""
    params = inspect.signature(loss).parameters
    tasks, seed = opt.get('tasks'), opt.get('manual_seed')
    filled = {}
    if 'num_tasks' in params and isinstance(tasks, list) and tasks:
        filled['num_tasks'] = len(tasks)
    if 'seed' in params and isinstance(seed, int) and not isinstance(seed, bool):
        filled['seed'] = seed
    return filled


def check_network_options(network_g: dict, path: str) -> list[str]:
    """Check a network_g dict on its own (a registered arch, arguments of its constructor with the right types),
    converting numeric strings in place; returns a note per conversion. Raises OptionError naming `path`."""
    notes: list[str] = []
    arch = _check_registered(ARCH_REGISTRY, network_g.get('type'), 'arch', 'network_g', path)
    _check_kwargs(arch, network_g, 'network_g', path, notes)
    return notes


def check_options(opt: dict, path: str, notes: list[str] | None = None, is_train: bool | None = None) -> None:
    """Check keys, value types, registered type names and every sub-options dict of an options dict; raise
    OptionError on the first fault. Numeric strings are converted in place, each with a line added to notes.
    is_train: the sections a training needs (tasks, train.optim_g, train.scheduler, train.total_iter) must be there, and
    the keys only a test run reads (TEST_KEYS: `published`) are refused."""
    notes = [] if notes is None else notes
    model_type = opt.get('model_type')
    if model_type is not None:
        check_model_type(model_type, path)
    declared = declared_keys(model_type, is_train)
    _check_names(opt, declared, path, notes, model_type)
    check_prepare_step(opt, path)
    for required in ('name', 'model_type', 'network_g', 'datasets'):
        if required not in opt:
            raise OptionError(f"{path}: required key '{required}' is missing")
    _check_kinds(opt, {name: kind for name, kind in declared.items() if kind is not None}, path, notes)
    _check_file_name(opt['name'], 'name', path)
    dataset_names: dict[str, str] = {}
    for phase_name, dataset_opt in opt['datasets'].items():  # each set's name names its results and images
        if isinstance(dataset_opt, dict) and 'name' in dataset_opt:
            _check_file_name(dataset_opt['name'], f'datasets.{phase_name}.name', path)
            first = dataset_names.setdefault(dataset_opt['name'], phase_name)
            if first != phase_name:
                raise OptionError(f"{path}: 'datasets.{phase_name}.name': {dataset_opt['name']!r} is also the name of "
                                  f"'datasets.{first}'; each set's results are kept under its name")
    notes += check_network_options(opt['network_g'], path)
    train_opt = opt.get('train') or {}
    if is_train:
        for required in ('optim_g', 'scheduler', 'total_iter', 'pixel_opt'):
            if required not in train_opt:
                raise OptionError(f"{path}: required key 'train.{required}' is missing")
        if opt.get('tasks') is None:
            # The training step pools every per-task figure over the setting's fixed task count (no sync).
            raise OptionError(f"{path}: required key 'tasks' is missing: training names the setting's tasks once, "
                              "at the top level (e.g. tasks: [noise, rain, haze]); the losses and logs pool per task "
                              'over that list')
    pixel_opt = train_opt.get('pixel_opt')
    if pixel_opt is not None:
        loss = _check_registered(LOSS_REGISTRY, pixel_opt.get('type'), 'loss', 'train.pixel_opt', path)
        loss_kwargs = {**loss_run_arguments(loss, opt), **pixel_opt}
        _check_kwargs(loss, loss_kwargs, 'train.pixel_opt', path, notes)
        pixel_opt.update({k: loss_kwargs[k] for k in pixel_opt})  # numeric strings converted
        if loss.__module__.startswith('basicsr_tur.'):
            try:  # our losses are cheap to build: their value checks (e.g. TURLoss's variant) run before any work
                loss(**{k: v for k, v in loss_kwargs.items() if k != 'type'})
            except (ValueError, TypeError) as err:
                raise OptionError(f"{path}: 'train.pixel_opt': {err}") from None
        pool, batch = pixel_opt.get('pool_size'), (opt['datasets'].get('train') or {}).get('batch_size_per_gpu')
        if isinstance(pool, int) and isinstance(batch, int) and pool > 0 and batch % pool:
            raise OptionError(f"{path}: 'datasets.train.batch_size_per_gpu' {batch} is not a multiple of "
                              f"'train.pixel_opt.pool_size' {pool} (σ is pooled in groups of that many samples); "
                              f'change one, or set pool_size to null')
    if train_opt.get('optim_g') is not None:
        _check_optimizer(train_opt['optim_g'], path, notes)
    if train_opt.get('scheduler') is not None:
        _check_scheduler(train_opt, path, notes)
    if isinstance(train_opt.get('compile'), dict):
        _check_kwargs(torch.compile, train_opt['compile'], 'train.compile', path, notes, exclude=('model',))
    rules = getattr(MODEL_REGISTRY.get(opt['model_type']), 'check_option_rules', None)
    if rules is not None:  # a model's rules between keys (e.g. TURModel's head switches)
        rules(opt, path)
    for phase_name, dataset_opt in opt['datasets'].items():
        _check_dataset(DATASET_REGISTRY, dataset_opt, f'datasets.{phase_name}', path, notes)
    if (opt.get('val') or {}).get('metrics'):
        _check_metrics(opt['val']['metrics'], path, notes)
    tile = (opt.get('val') or {}).get('tile')
    if tile is not None and ('size' not in tile or tile.get('overlap', 32) >= tile['size']):
        raise OptionError(f"{path}: 'val.tile' needs a size larger than its overlap (default 32), e.g. "
                          f'{{size: 512, overlap: 32}}; got {tile}')
    if (opt.get('logger') or {}).get('wandb') is not None:
        _check_wandb(opt['logger']['wandb'], path, notes)
    if opt.get('dist_params') is not None:
        _check_kwargs(torch.distributed.init_process_group, opt['dist_params'], 'dist_params', path, notes,
                      extra=DIST_PARAMS_EXTRA)
    tasks = opt.get('tasks')
    if tasks is not None and (not isinstance(tasks, list) or not tasks or len(set(tasks)) != len(tasks)):
        raise OptionError(f"{path}: 'tasks' must be a non-empty list of distinct task names, got {tasks!r}")


def check_published(opt: dict, path: str, root_path: str) -> None:
    """Check `published:` (its file holds `setting`, and `row`, when given, is one of that setting's rows) and
    replace its file by the path found (see find_relative). Raises OptionError naming the options file."""
    published = opt.get('published')
    if published is None:
        return
    for key in ('file', 'setting'):
        if not published.get(key):
            raise OptionError(f"{path}: 'published.{key}' is missing")
    file = find_relative(str(published['file']), path, root_path)
    if not osp.isfile(file):
        raise OptionError(f"{path}: 'published.file': {published['file']} not found (looked under "
                          f'{root_path} and beside the options file and its parent folders)')
    try:
        rows = load_published(file, published['setting'])
    except ValueError as err:
        raise OptionError(f"{path}: 'published.setting': {err}") from None
    if published.get('row') is not None:
        try:
            check_row(rows, published['row'], f"setting '{published['setting']}' of {file}")
        except ValueError as err:
            raise OptionError(f"{path}: 'published.row': {err}") from None
    published['file'] = file
