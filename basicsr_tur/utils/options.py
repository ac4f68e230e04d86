"""Options: a safe YAML loader with basicsr's option semantics, and early checks of every key and value.

basicsr 1.4.2's `parse_options` reads YAML with `yaml.CLoader`, which constructs `!!python/object` tags, so a
downloaded options file could run code. We keep its semantics (phases, `experiments/` and `results/` layout,
`--force_yml`) but load with `yaml.SafeLoader` (duplicate keys refused), and we check every key, every value's type
and every sub-options dict that is passed on as keyword arguments (arch, loss, optimizer, scheduler, io backend,
metrics, torch.compile, dist_params) before anything is written, so that a mistake fails at once, in one line that
names the file and key. Relative paths in the options and the outputs are under one root folder (`--root`, by
default the working folder).
"""
from __future__ import annotations

import argparse
import collections.abc
import difflib
import inspect
import math
import random
import types
import typing
from collections import OrderedDict
from dataclasses import dataclass, replace
from os import path as osp
from typing import Any

import yaml


class OptionError(ValueError):
    """A problem in an options file; its message names the file and the key at fault."""


class _SafeOrderedLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping order and refuses duplicate keys; SafeLoader itself refuses python/* tags."""


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice (YAML says keys are unique; PyYAML keeps the last silently)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f'duplicate key {key!r} (first at line {first_line})')
        self.key, self.line, self.first_line = key, line, first_line


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == 'tag:yaml.org,2002:merge':  # `<<: *base` may override keys; explicit keys may not repeat
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, collections.abc.Hashable):
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKeyError(key, line, seen[key])
            seen[key] = line
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


_SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str) -> dict:
    """Read a YAML file with a safe loader; unsafe tags, duplicate keys and syntax errors raise OptionError."""
    if not osp.isfile(path):
        raise OptionError(f'{path}: options file not found')
    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.load(f, Loader=_SafeOrderedLoader)
        except UnicodeDecodeError as err:
            raise OptionError(f'{path}: not a UTF-8 text file (byte {err.start}: {err.reason})') from None
        except _DuplicateKeyError as err:
            raise OptionError(f'{path}: line {err.line}: {err}') from None
        except yaml.constructor.ConstructorError as err:
            mark = err.problem_mark
            where = f'line {mark.line + 1}' if mark is not None else 'unknown line'
            raise OptionError(f'{path}: {where}: refused unsafe or unknown YAML tag ({err.problem}); '
                              'options files may only hold plain values') from None
        except yaml.YAMLError as err:
            raise OptionError(f'{path}: invalid YAML: {str(err).splitlines()[0]}') from None
    if not isinstance(data, dict):
        raise OptionError(f'{path}: expected a mapping of options at the top level, got {type(data).__name__}')
    return data


def dump_yaml(data: Any) -> str:
    """Serialise plain option data (OrderedDicts included) back to YAML text."""

    class _Dumper(yaml.SafeDumper):
        pass

    _Dumper.add_representer(OrderedDict, lambda d, v: d.represent_dict(v.items()))
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


# Known keys, so that a typo is caught before a run starts. Values: None = any value, dict = nested schema.
_DATASET_COMMON = {'name', 'type', 'phase', 'io_backend', 'tasks', 'scale', 'num_worker_per_gpu',
                   'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory',
                   'persistent_workers', 'num_prefetch_queue', 'sampler'}
SCHEMA: dict[str, Any] = {
    'name': None, 'model_type': None, 'scale': None, 'num_gpu': None, 'manual_seed': None, 'tasks': None,
    'prepare': None,  # the name of a registered preparation step (utils/registry.py), checked by _check_prepare
    # test.py: the published rows of `setting` in `file` beside the measured ones, and the difference to `row`
    'published': {'file': None, 'setting': None, 'row': None},
    'datasets': None,  # checked against each dataset class's OPTION_KEYS
    'network_g': None,  # checked against the arch constructor's signature
    'path': {'pretrain_network_g': None, 'param_key_g': None, 'strict_load_g': None, 'resume_state': None,
             'pretrain_network_encoder': None,  # AirNetModel with train.fix_encoder
             'experiments_root': None, 'models': None, 'training_states': None, 'log': None,
             'visualization': None, 'results_root': None, 'root': None},
    'train': {'ema_decay': None, 'optim_g': None, 'scheduler': None, 'total_iter': None, 'warmup_iter': None,
              'pixel_opt': None, 'max_nonfinite_steps': None,
              'mixed_precision': None, 'channels_last': None, 'compile': None, 'grad_clip': None,
              'accumulate_steps': None,
              # AirNetModel:
              'contrast_weight': None, 'encoder_warmup_iter': None, 'fix_encoder': None},
    'val': {'val_freq': None, 'save_img': None, 'suffix': None, 'metrics': None, 'pbar': None,
            'input_row': None, 'tile': {'size': None, 'overlap': None},
            'uncertainty': None},  # test.py: σ of the TUR head against the error, per task (models/tur_model.py)
    'logger': {'print_freq': None, 'save_checkpoint_freq': None, 'use_tb_logger': None, 'wandb': None},
    'dist_params': None, 'find_unused_parameters': None, 'cudnn_benchmark': None,
    'is_train': None, 'dist': None, 'rank': None, 'world_size': None,
    'auto_resume': None, 'opt_path': None,
}


@dataclass(frozen=True)
class Kind:
    """What one option may hold: YAML types (bool, int, float, str, list, dict), null, fixed words, a minimum, and
    the kind of each item of a list. float admits integers; int admits no fraction."""
    types: frozenset = frozenset()
    null: bool = False
    words: tuple[str, ...] = ()
    minimum: float | None = None
    item: Kind | None = None

    def describe(self) -> str:
        """'an integer', 'a number or null', "an integer or 'auto'", ... for error messages."""
        names = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
                 dict: 'a mapping'}
        parts = [names[t] for t in names if t in self.types and not (t is int and float in self.types)]
        parts += [repr(w) for w in self.words] + (['null'] if self.null else [])
        return ' or '.join(parts)


def _kind(*kinds: type, null: bool = False, words: tuple[str, ...] = (), minimum: float | None = None,
          item: Kind | None = None) -> Kind:
    return Kind(frozenset(kinds), null, words, minimum, item)


BOOL, STR, LIST, MAPPING = _kind(bool), _kind(str), _kind(list), _kind(dict)
NUMBER, COUNT, POSITIVE = _kind(float), _kind(int, minimum=0), _kind(int, minimum=1)
PATH = _kind(str, null=True)

# The type of every option that is not an argument of a class or function whose signature says it (those are
# checked against the signature: network_g, train.pixel_opt, train.optim_g, train.scheduler, ...).
KINDS: dict[str, Kind] = {
    'name': STR, 'model_type': STR, 'scale': POSITIVE, 'num_gpu': _kind(int, words=('auto',), minimum=0),
    'manual_seed': _kind(int, null=True), 'tasks': LIST, 'datasets': MAPPING, 'network_g': MAPPING,
    'find_unused_parameters': BOOL, 'cudnn_benchmark': BOOL, 'dist_params': _kind(dict, null=True),
    'path.pretrain_network_g': PATH, 'path.pretrain_network_encoder': PATH, 'path.resume_state': PATH,
    'path.param_key_g': _kind(str, null=True), 'path.strict_load_g': BOOL,
    'train.total_iter': POSITIVE, 'train.warmup_iter': _kind(int, minimum=-1),
    'train.ema_decay': _kind(float, minimum=0), 'train.max_nonfinite_steps': POSITIVE,
    'train.accumulate_steps': POSITIVE,
    'train.grad_clip': _kind(float, null=True, minimum=0), 'train.channels_last': BOOL,
    'train.mixed_precision': _kind(null=True, words=('bf16', 'fp16')), 'train.compile': _kind(bool, dict, null=True),
    'train.optim_g': MAPPING, 'train.scheduler': MAPPING, 'train.pixel_opt': MAPPING,
    # AirNetModel reads a null contrast_weight or encoder_warmup_iter as absent (--force_yml cannot remove a key).
    'train.contrast_weight': _kind(float, null=True, minimum=0),
    'train.encoder_warmup_iter': _kind(int, null=True, minimum=0),
    'train.fix_encoder': _kind(bool, null=True),
    'val.val_freq': _kind(int, null=True, minimum=1), 'val.save_img': BOOL, 'val.suffix': _kind(str, null=True),
    'val.metrics': _kind(dict, null=True), 'val.pbar': BOOL, 'val.input_row': BOOL,
    'val.tile': _kind(dict, null=True), 'val.tile.size': POSITIVE, 'val.tile.overlap': COUNT,
    'val.uncertainty': BOOL,
    'logger.print_freq': POSITIVE, 'logger.save_checkpoint_freq': POSITIVE, 'logger.use_tb_logger': BOOL,
    'logger.wandb': _kind(dict, null=True),
}
# Every dataset's options (and those of a MixedTaskDataset's parts); the names each dataset accepts are its
# OPTION_KEYS plus _DATASET_COMMON. basicsr's build_dataloader reads the loader keys.
DATASET_KINDS: dict[str, Kind] = {
    'name': STR, 'type': STR, 'phase': STR, 'tasks': LIST, 'scale': POSITIVE, 'io_backend': MAPPING,
    'num_worker_per_gpu': COUNT, 'batch_size_per_gpu': POSITIVE, 'dataset_enlarge_ratio': POSITIVE,
    'prefetch_mode': _kind(null=True, words=('cpu', 'cuda')), 'pin_memory': BOOL, 'persistent_workers': BOOL,
    'num_prefetch_queue': POSITIVE, 'sampler': _kind(words=('shuffle', 'balanced')),
    'gt_size': _kind(int, null=True, minimum=1), 'use_hflip': BOOL, 'use_rot': BOOL, 'key_crop': BOOL,
    'seed': _kind(int), 'dataroot_gt': PATH, 'dataroot_lq': PATH, 'meta_file': PATH, 'depth_root': PATH,
    'parts': LIST, 'synth_tasks': _kind(list, null=True), 'degradations': _kind(dict, null=True),
    'check_images': _kind(words=('paths', 'headers')),  # data_util.TaskDataset checks it too, when built directly
}
DATASET_PATHS = ('dataroot_gt', 'dataroot_lq', 'meta_file', 'depth_root')
# basicsr's BaseModel.setup_schedulers, which TURModel keeps: these names, these classes (no torch scheduler).
SCHEDULERS = {'MultiStepLR': 'MultiStepRestartLR', 'MultiStepRestartLR': 'MultiStepRestartLR',
              'CosineAnnealingRestartLR': 'CosineAnnealingRestartLR'}
# basicsr's schedulers have no type hints: what their arguments hold.
SCHEDULER_KINDS = {'milestones': _kind(list, item=POSITIVE), 'gamma': NUMBER, 'restarts': _kind(list, item=COUNT),
                   'restart_weights': _kind(list, item=NUMBER), 'periods': _kind(list, item=POSITIVE),
                   'eta_min': NUMBER}
# basicsr's metrics take **kwargs and ignore what they do not know, so a misspelt `test_y_chanel` would silently
# score RGB: their arguments are this allow-list (where the metric's signature names them), with these types.
METRIC_KINDS = {'crop_border': COUNT, 'test_y_channel': BOOL, 'input_order': _kind(words=('HWC', 'CHW')),
                'convert_to': _kind(words=('y', 'gray'))}
# data_util.check_backend accepts these two FileClient backends; a dataset sets db_paths and client_keys itself.
IO_BACKENDS = ('disk', 'lmdb')
WANDB_KINDS = {'project': _kind(str, null=True), 'resume_id': _kind(str, null=True)}
DIST_PARAMS_EXTRA = {'port': _kind(int, minimum=1)}  # utils.dist.init_dist takes it; the rest goes to torch


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


def _unknown(key: str, allowed: Any, where: str, path: str) -> OptionError:
    allowed = sorted(allowed)
    hint = did_you_mean(key, allowed) or (f'; allowed: {", ".join(allowed)}' if allowed else '; it takes no options')
    return OptionError(f"{path}: unknown key '{where}{key}'{hint}")


def _check_schema(opt: dict, schema: dict, path: str, prefix: str = '') -> None:
    for key, value in opt.items():
        if key not in schema:
            raise _unknown(key, schema, prefix, path)
        sub = schema[key]
        if isinstance(sub, dict):
            if not isinstance(value, dict):
                raise OptionError(f"{path}: '{prefix}{key}' must be a mapping, got {value!r}")
            _check_schema(value, sub, path, f'{prefix}{key}.')


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
    return _kind(*found, null=null, words=words, item=item)


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
            kind = _kind(float, list, item=NUMBER if _numbers(default) else None)
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


def _check_dataset(registry: Any, dataset_opt: Any, key: str, path: str, notes: list[str]) -> None:
    """Check one dataset's type (a task-labelled one), its keys and values, and those of its `parts`."""
    if not isinstance(dataset_opt, dict):
        raise OptionError(f"{path}: '{key}' must be a mapping")
    dataset = _check_registered(registry, dataset_opt.get('type'), 'dataset', key, path)
    task_labelled = [name for name, cls in registry if hasattr(cls, 'OPTION_KEYS')]
    if not hasattr(dataset, 'OPTION_KEYS'):  # basicsr's own datasets give no task ids: TURModel needs them
        close = difflib.get_close_matches(dataset.__name__, task_labelled, n=1, cutoff=0.5)
        hint = f'use {close[0]}' if close else f'use one of {", ".join(sorted(task_labelled))}'
        raise OptionError(f"{path}: '{key}.type': {dataset.__name__} is not a task-labelled dataset ({hint})")
    allowed = _DATASET_COMMON | set(dataset.OPTION_KEYS)
    for name in dataset_opt:
        if name not in allowed:
            raise _unknown(name, allowed, f'{key}.', path)
    _check_kinds(dataset_opt, DATASET_KINDS, path, notes, f'{key}.')
    if dataset_opt.get('io_backend') is not None:
        _check_io_backend(dataset_opt['io_backend'], f'{key}.io_backend', path, notes)
    for k, part in enumerate(dataset_opt.get('parts') or []):
        _check_dataset(registry, part, f'{key}.parts[{k}]', path, notes)


def _check_io_backend(io_backend: dict, key: str, path: str, notes: list[str]) -> None:
    """An io_backend against the FileClient backend it builds (disk takes no options; lmdb its flags)."""
    from basicsr.utils.file_client import FileClient

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
    import torch

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
    from basicsr.models import lr_scheduler

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
    from basicsr.utils.registry import METRIC_REGISTRY

    for name, metric_opt in metrics.items():
        key = f'val.metrics.{name}'
        if not isinstance(metric_opt, dict):
            raise OptionError(f"{path}: '{key}' must be a mapping such as {{type: calculate_psnr, crop_border: 0}}, "
                              f'got {metric_opt!r}')
        metric = _check_registered(METRIC_REGISTRY, metric_opt.get('type'), 'metric', key, path)
        params = _parameters(metric)
        allowed = {n: k for n, k in METRIC_KINDS.items() if n in params}
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
    from basicsr.utils.registry import ARCH_REGISTRY

    import basicsr_tur  # noqa: F401  (registers our archs before the registry is consulted)

    notes: list[str] = []
    arch = _check_registered(ARCH_REGISTRY, network_g.get('type'), 'arch', 'network_g', path)
    _check_kwargs(arch, network_g, 'network_g', path, notes)
    return notes


def check_options(opt: dict, path: str, notes: list[str] | None = None, is_train: bool | None = None) -> None:
    """Check keys, value types, registered type names and every sub-options dict of an options dict; raise
    OptionError on the first fault. Numeric strings are converted in place, each with a line added to notes.
    is_train: the sections a training needs (train.optim_g, train.scheduler, train.total_iter) must be there."""
    from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    import basicsr_tur  # noqa: F401  (registers our classes before the registries are consulted)

    notes = [] if notes is None else notes
    _check_schema(opt, SCHEMA, path)
    _check_prepare(opt, path)
    for required in ('name', 'model_type', 'network_g', 'datasets'):
        if required not in opt:
            raise OptionError(f"{path}: required key '{required}' is missing")
    _check_kinds(opt, KINDS, path, notes)
    _check_file_name(opt['name'], 'name', path)
    dataset_names: dict[str, str] = {}
    for phase_name, dataset_opt in opt['datasets'].items():  # each set's name names its results and images
        if isinstance(dataset_opt, dict) and 'name' in dataset_opt:
            _check_file_name(dataset_opt['name'], f'datasets.{phase_name}.name', path)
            first = dataset_names.setdefault(dataset_opt['name'], phase_name)
            if first != phase_name:
                raise OptionError(f"{path}: 'datasets.{phase_name}.name': {dataset_opt['name']!r} is also the name of "
                                  f"'datasets.{first}'; each set's results are kept under its name")
    if opt['model_type'] not in [name for name, _ in MODEL_REGISTRY]:
        raise OptionError(f"{path}: 'model_type': unknown model '{opt['model_type']}'")
    notes += check_network_options(opt['network_g'], path)
    train_opt = opt.get('train') or {}
    if is_train:
        for required in ('optim_g', 'scheduler', 'total_iter', 'pixel_opt'):
            if required not in train_opt:
                raise OptionError(f"{path}: required key 'train.{required}' is missing")
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
    if train_opt.get('optim_g') is not None:
        _check_optimizer(train_opt['optim_g'], path, notes)
    if train_opt.get('scheduler') is not None:
        _check_scheduler(train_opt, path, notes)
    if isinstance(train_opt.get('compile'), dict):
        import torch
        _check_kwargs(torch.compile, train_opt['compile'], 'train.compile', path, notes, exclude=('model',))
    _check_training_switches(opt, train_opt, MODEL_REGISTRY.get(opt['model_type']), path)
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
        import torch.distributed
        _check_kwargs(torch.distributed.init_process_group, opt['dist_params'], 'dist_params', path, notes,
                      extra=DIST_PARAMS_EXTRA)
    tasks = opt.get('tasks')
    if tasks is not None and (not isinstance(tasks, list) or not tasks or len(set(tasks)) != len(tasks)):
        raise OptionError(f"{path}: 'tasks' must be a non-empty list of distinct task names, got {tasks!r}")


def _check_training_switches(opt: dict, train_opt: dict, model: type, path: str) -> None:
    """Options that only one model reads, or that only mean something together, refused where they would do nothing."""
    fix_encoder = train_opt.get('fix_encoder')
    encoder_path = opt['path'].get('pretrain_network_encoder')
    airnet = getattr(model, 'reads_encoder_options', False)
    for name, value in (('train.fix_encoder', fix_encoder), ('path.pretrain_network_encoder', encoder_path)):
        if value and not airnet:
            raise OptionError(f"{path}: '{name}' is read by model_type AirNetModel only, not "
                              f"'{opt['model_type']}'; remove it")
    network_g = opt['network_g']
    if 'train' in opt and network_g.get('uncertainty_detach') and not network_g.get('uncertainty_head'):
        raise OptionError(f"{path}: 'network_g.uncertainty_detach: true' does nothing without "
                          "'network_g.uncertainty_head: true'")


def find_relative(path: str, opt_path: str, root_path: str) -> str:
    """A file the options name that ships beside them (published.file): absolute as given, else under the run's
    root, else under the options file's folder or one of its parents (so that options/test/x.yml finds
    options/published.yml from any working folder); the path under root when none exists."""
    path = osp.expanduser(path)
    if osp.isabs(path):
        return path
    candidates = [osp.join(root_path, path)]
    folder = osp.dirname(osp.abspath(opt_path))
    while folder != osp.dirname(folder):
        candidates.append(osp.join(folder, path))
        folder = osp.dirname(folder)
    return next((c for c in candidates if osp.exists(c)), candidates[0])


def check_published(opt: dict, path: str, root_path: str) -> None:
    """Check `published:` (its file holds `setting`, and `row`, when given, is one of that setting's rows) and
    replace its file by the path found (see find_relative). Raises OptionError naming the options file."""
    # tables reads YAML through this module, so it is imported here, not at the top (same layer, no cycle at load).
    from basicsr_tur.utils.tables import check_row, load_published

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


def resolve(path: str, root: str) -> str:
    """A path from the options: `~` expanded, and a relative one under root (the run's one root folder)."""
    path = osp.expanduser(path)
    return path if osp.isabs(path) else osp.join(root, path)


def _resolve_paths(opt: dict, root: str) -> None:
    """Every path the options name (dataset folders and meta files, weights, resume state) made absolute under root."""
    def datasets(dataset_opt: dict) -> None:
        for key in DATASET_PATHS:
            if dataset_opt.get(key):
                dataset_opt[key] = resolve(dataset_opt[key], root)
        for part in dataset_opt.get('parts') or []:
            datasets(part)

    for dataset_opt in opt['datasets'].values():
        datasets(dataset_opt)
    for key in ('pretrain_network_g', 'pretrain_network_encoder', 'resume_state'):
        if opt['path'].get(key):
            opt['path'][key] = resolve(opt['path'][key], root)


def _parse_force_value(text: str, keys: str, entry: str) -> Any:
    """Read a --force_yml value as YAML with the safe loader (never evaluated as Python); YAML tags are refused.

    A number YAML 1.1 reads as a string (`2e-3`) is converted later, where the option takes a number (see coerce).
    """
    try:
        if any(isinstance(token, yaml.TagToken) for token in yaml.scan(text)):
            raise OptionError(f'--force_yml {keys!r}: YAML tags are not allowed')
        return yaml.load(text, Loader=_SafeOrderedLoader)
    except yaml.YAMLError as err:
        reason = ': '.join(str(p) for p in (getattr(err, 'context', None), getattr(err, 'problem', None)) if p) \
            or str(err).splitlines()[0]
        raise OptionError(f'--force_yml {entry!r}: value is not valid YAML ({reason})') from None


def _list_index(node: list, key: str, keys: str) -> int:
    """Index `key` (e.g. '0') of a list reached by a --force_yml path, or an OptionError naming the entry."""
    if not key.lstrip('-').isdigit() or not -len(node) <= int(key) < len(node):
        raise OptionError(f'--force_yml {keys!r}: {key!r} is not an index of a list of {len(node)} items')
    return int(key)


def apply_force_yml(opt: dict, entry: str) -> None:
    """Set one `a:b:c=value` override in opt: mappings on the way are created when absent, lists are entered by
    index; raises OptionError (one line, naming the entry) for a malformed entry or value."""
    if '=' not in entry:
        raise OptionError(f"--force_yml {entry!r}: expected KEY=VALUE, e.g. train:optim_g:lr=2.0e-4 (quote a value "
                          "with spaces as one argument: 'published:row=PromptIR + TUR')")
    keys, text = (s.strip() for s in entry.split('=', 1))
    *parents, last = names = keys.split(':')
    if not all(names):
        raise OptionError(f'--force_yml {entry!r}: empty key name in {keys!r} (keys are joined by single colons)')
    value = _parse_force_value(text, keys, entry)
    node: Any = opt
    for depth, name in enumerate(parents):
        node = node[_list_index(node, name, keys)] if isinstance(node, list) else node.setdefault(name, OrderedDict())
        if not isinstance(node, (dict, list)):
            raise OptionError(f"--force_yml {keys!r}: '{'.'.join(names[:depth + 1])}' is not a mapping")
    if isinstance(node, list):
        node[_list_index(node, last, keys)] = value
    else:
        node[last] = value


def parse_options(root_path: str, is_train: bool = True, argv: list[str] | None = None) -> tuple[dict, Any]:
    """Parse the command line and the options file the basicsr way, with a safe loader and checks of every key.

    root_path: the folder that relative paths in the options and the outputs (experiments/, results/) are under,
    unless --root names another (the command-line entry points pass the working folder). Returns (opt, args);
    opt['path']['root'] is that folder, and args.notes the conversions made (for the run's log).
    """
    parser = argparse.ArgumentParser(description='basicsr-tur ' + ('training' if is_train else 'testing'))
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the latest training state')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument('--root', default=None,
                        help='folder for relative paths in the options and for experiments/, results/, tb_logger/ '
                             '(default: the working folder)')
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='override options, e.g. train:ema_decay=0.999 (values read as YAML, never executed)')
    args = parser.parse_args(argv)
    root = osp.abspath(osp.expanduser(args.root) if args.root else root_path)
    if not osp.isdir(root):
        raise OptionError(f'--root {args.root}: folder not found')

    opt = load_yaml(args.opt)
    for entry in args.force_yml or []:
        apply_force_yml(opt, entry)

    opt.setdefault('path', OrderedDict())
    opt.setdefault('num_gpu', 0)
    args.notes = []
    check_options(opt, args.opt, args.notes, is_train)
    check_published(opt, args.opt, root)
    _resolve_paths(opt, root)
    opt['opt_path'] = args.opt
    opt['path']['root'] = root

    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
        from basicsr_tur.utils.dist import init_dist
        num_gpu = opt['num_gpu'] if opt['num_gpu'] != 'auto' else -1
        opt['rank'], opt['world_size'] = init_dist(args.launcher, num_gpu, opt.get('dist_params'))
    else:
        opt['rank'], opt['world_size'] = 0, 1

    if opt.get('manual_seed') is None:
        opt['manual_seed'] = random.randint(1, 10000)
    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']

    if opt['num_gpu'] == 'auto':
        import torch
        opt['num_gpu'] = torch.cuda.device_count()

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        if 'tasks' in opt:
            dataset.setdefault('tasks', list(opt['tasks']))
        dataset.setdefault('seed', opt['manual_seed'])

    if is_train:
        experiments_root = osp.join(root, 'experiments', opt['name'])
        opt['path']['experiments_root'] = experiments_root
        opt['path']['models'] = osp.join(experiments_root, 'models')
        opt['path']['training_states'] = osp.join(experiments_root, 'training_states')
        opt['path']['log'] = experiments_root
        opt['path']['visualization'] = osp.join(experiments_root, 'visualization')
        opt.setdefault('logger', OrderedDict())
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = osp.join(root, 'results', opt['name'])
        opt['path']['results_root'] = results_root
        opt['path']['log'] = results_root
        opt['path']['visualization'] = osp.join(results_root, 'visualization')
    return opt, args


def check_device(opt: dict) -> None:
    """Refuse a GPU run on a machine without CUDA before the run creates anything (checked at start, not parse)."""
    import torch
    if opt['num_gpu'] > 0 and not torch.cuda.is_available():
        raise OptionError(f"{opt['opt_path']}: 'num_gpu: {opt['num_gpu']}' but no CUDA device is available; "
                          'set num_gpu: 0 (or --force_yml num_gpu=0) to run on the CPU')


def _check_prepare(opt: dict, path: str) -> None:
    """`prepare` must be null or the name of a registered preparation step; anything else raises OptionError.

    An options file may be downloaded with a checkpoint: it names a step the package ships, never a script to run.
    """
    from basicsr_tur.utils.registry import PREPARE_REGISTRY

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
    from basicsr_tur.utils.registry import PREPARE_REGISTRY

    _check_prepare(opt, opt.get('opt_path', 'options'))
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
