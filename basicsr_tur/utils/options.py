"""Options: a safe YAML loader with basicsr's option semantics, and early checks of every key.

basicsr 1.4.2's `parse_options` reads YAML with `yaml.CLoader`, which constructs `!!python/object` tags, so a
downloaded options file could run code. We keep its semantics (paths, phases, `experiments/` and `results/`
layout, `--force_yml`) but load with `yaml.SafeLoader`, and we check keys before anything is written so that a
typo fails at once with the file and key named.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import random
import types
import typing
from collections import OrderedDict
from os import path as osp
from typing import Any

import yaml


class OptionError(ValueError):
    """A problem in an options file; its message names the file and the key at fault."""


class _SafeOrderedLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping order; any python/* tag is refused by SafeLoader itself."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> OrderedDict:
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


_SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str) -> dict:
    """Read a YAML file with a safe loader; unsafe tags and syntax errors raise OptionError naming the file."""
    if not osp.isfile(path):
        raise OptionError(f'{path}: options file not found')
    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.load(f, Loader=_SafeOrderedLoader)
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
             'visualization': None, 'results_root': None},
    'train': {'ema_decay': None, 'optim_g': None, 'scheduler': None, 'total_iter': None, 'warmup_iter': None,
              'pixel_opt': None, 'max_nonfinite_steps': None,
              'mixed_precision': None, 'channels_last': None, 'compile': None, 'grad_clip': None,
              'accumulate_steps': None,
              # AirNetModel:
              'contrast_weight': None, 'encoder_warmup_iter': None, 'fix_encoder': None},
    'val': {'val_freq': None, 'save_img': None, 'suffix': None, 'metrics': None, 'pbar': None,
            'input_row': None},
    'logger': {'print_freq': None, 'save_checkpoint_freq': None, 'use_tb_logger': None, 'wandb': None},
    'dist_params': None, 'find_unused_parameters': None, 'cudnn_benchmark': None,
    'is_train': None, 'dist': None, 'rank': None, 'world_size': None,
    'auto_resume': None, 'opt_path': None,
}


def _unknown(key: str, allowed: set[str] | list[str], where: str, path: str) -> OptionError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f'; allowed: {", ".join(sorted(allowed))}'
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
        close = difflib.get_close_matches(str(type_name), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        raise OptionError(f"{path}: '{key}.type': unknown {kind} '{type_name}'{hint}")
    return registry.get(type_name)


_SCALAR_TYPES = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string'}


def _scalar_types(annotation: Any) -> tuple[set[type], bool] | None:
    """(scalar types, None allowed) of an annotation made of bool/int/float/str/None only; None for anything else."""
    parts = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    scalars = {t for t in parts if t in _SCALAR_TYPES}
    if not scalars or any(t not in _SCALAR_TYPES and t is not type(None) for t in parts):
        return None
    return scalars, type(None) in parts


def _fits(value: Any, scalars: set[type]) -> bool:
    """Whether value is one of the scalar types; bool is not a number here, and an integer is a float."""
    if isinstance(value, bool):
        return bool in scalars
    if isinstance(value, int):
        return bool({int, float} & scalars)
    return any(isinstance(value, t) for t in scalars - {bool, int})


def _check_kwargs(cls: type, kwargs: dict, key: str, path: str) -> None:
    """Check option names against cls's constructor, and values against its scalar type hints (bool, int, ...)."""
    try:
        params = inspect.signature(cls.__init__, eval_str=True).parameters
    except (NameError, TypeError):  # hints that do not evaluate: names only
        params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [name for name in params if name != 'self']
    for name, value in kwargs.items():
        if name == 'type':
            continue
        if name not in allowed:
            raise _unknown(name, allowed, f'{key}.', path)
        hint = _scalar_types(params[name].annotation)
        if hint is not None and not (value is None and hint[1]) and not _fits(value, hint[0]):
            expected = ' or '.join(_SCALAR_TYPES[t] for t in sorted(hint[0], key=list(_SCALAR_TYPES).index))
            raise OptionError(f"{path}: '{key}.{name}' must be {expected}{' or null' if hint[1] else ''}, "
                              f'got {value!r}')


def _check_dataset(registry: Any, dataset_opt: Any, key: str, path: str) -> None:
    """Check one dataset's type and keys, and those of its `parts` (MixedTaskDataset)."""
    if not isinstance(dataset_opt, dict):
        raise OptionError(f"{path}: '{key}' must be a mapping")
    dataset = _check_registered(registry, dataset_opt.get('type'), 'dataset', key, path)
    if hasattr(dataset, 'OPTION_KEYS'):
        allowed = _DATASET_COMMON | set(dataset.OPTION_KEYS)
        for name in dataset_opt:
            if name not in allowed:
                raise _unknown(name, allowed, f'{key}.', path)
    for k, part in enumerate(dataset_opt.get('parts') or []):
        _check_dataset(registry, part, f'{key}.parts[{k}]', path)


def check_options(opt: dict, path: str) -> None:
    """Check keys, registered type names and arguments of an options dict; raise OptionError on the first fault."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    import basicsr_tur  # noqa: F401  (registers our classes before the registries are consulted)

    _check_schema(opt, SCHEMA, path)
    _check_prepare(opt, path)
    for required in ('name', 'model_type', 'network_g', 'datasets'):
        if required not in opt:
            raise OptionError(f"{path}: required key '{required}' is missing")
    if opt['model_type'] not in [name for name, _ in MODEL_REGISTRY]:
        raise OptionError(f"{path}: 'model_type': unknown model '{opt['model_type']}'")
    arch = _check_registered(ARCH_REGISTRY, opt['network_g'].get('type'), 'arch', 'network_g', path)
    _check_kwargs(arch, opt['network_g'], 'network_g', path)
    train_opt = opt.get('train') or {}
    pixel_opt = train_opt.get('pixel_opt')
    if pixel_opt is not None:
        loss = _check_registered(LOSS_REGISTRY, pixel_opt.get('type'), 'loss', 'train.pixel_opt', path)
        _check_kwargs(loss, pixel_opt, 'train.pixel_opt', path)
        if loss.__module__.startswith('basicsr_tur.'):
            try:  # our losses are cheap to build: their value checks (e.g. TURLoss's variant) run before any work
                loss(**{k: v for k, v in pixel_opt.items() if k != 'type'})
            except (ValueError, TypeError) as err:
                raise OptionError(f"{path}: 'train.pixel_opt': {err}") from None
    _check_training_switches(opt, train_opt, MODEL_REGISTRY.get(opt['model_type']), path)
    for phase_name, dataset_opt in opt['datasets'].items():
        _check_dataset(DATASET_REGISTRY, dataset_opt, f'datasets.{phase_name}', path)
    tasks = opt.get('tasks')
    if tasks is not None and (not isinstance(tasks, list) or not tasks or len(set(tasks)) != len(tasks)):
        raise OptionError(f"{path}: 'tasks' must be a non-empty list of distinct task names, got {tasks!r}")


def _check_training_switches(opt: dict, train_opt: dict, model: type, path: str) -> None:
    """Options that only one model reads, or that only mean something together, refused where they would do nothing."""
    fix_encoder = train_opt.get('fix_encoder')
    if fix_encoder is not None and not isinstance(fix_encoder, bool):
        raise OptionError(f"{path}: 'train.fix_encoder' must be true or false, got {fix_encoder!r}")
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
    """A path from an options file: as given, else under the run's root, else under an ancestor of the file."""
    if osp.isabs(path) or osp.exists(path):
        return path
    candidates = [osp.join(root_path, path)]
    folder = osp.dirname(osp.abspath(opt_path))
    while folder != osp.dirname(folder):
        candidates.append(osp.join(folder, path))
        folder = osp.dirname(folder)
    return next((c for c in candidates if osp.exists(c)), path)


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
        raise OptionError(f"{path}: 'published.file': {published['file']} not found (looked as given, under "
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


def _parse_force_value(value: str) -> Any:
    """Read a --force_yml value as a YAML scalar or flow list (never evaluated as Python).

    YAML 1.1 reads `2e-3` (no dot) as a string; a string that is a Python float literal becomes that float.
    """
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return ast.literal_eval(value)
    if isinstance(parsed, str):
        try:
            return float(parsed)
        except ValueError:
            return parsed
    return parsed


def _list_index(node: list, key: str, entry: str) -> int:
    """Index `key` (e.g. '0') of a list reached by a --force_yml path, or an OptionError naming the entry."""
    if not key.lstrip('-').isdigit() or not -len(node) <= int(key) < len(node):
        raise OptionError(f'--force_yml {entry!r}: {key!r} is not an index of a list of {len(node)} items')
    return int(key)


def _force_child(node: Any, key: str, entry: str) -> Any:
    """The child `key` of a mapping (created when absent) or list (an existing index) on a --force_yml path."""
    if isinstance(node, list):
        return node[_list_index(node, key, entry)]
    if not isinstance(node, dict):
        raise OptionError(f'--force_yml {entry!r}: cannot go into {node!r} with {key!r}')
    return node.setdefault(key, OrderedDict())


def parse_options(root_path: str, is_train: bool = True, argv: list[str] | None = None) -> tuple[dict, Any]:
    """Parse the command line and the options file the basicsr way, with a safe loader and key checks."""
    parser = argparse.ArgumentParser(description='basicsr-tur ' + ('training' if is_train else 'testing'))
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the latest training state')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='override options, e.g. train:ema_decay=0.999 (values read as YAML, never executed)')
    args = parser.parse_args(argv)

    opt = load_yaml(args.opt)
    for entry in args.force_yml or []:
        if '=' not in entry:
            raise OptionError(f"--force_yml: expected 'a:b:c=value', got {entry!r} (quote a value with spaces as one "
                              "argument: 'published:row=PromptIR + TUR')")
        keys, value = (s.strip() for s in entry.split('=', 1))
        node = opt
        *parents, last = keys.split(':')
        for k in parents:
            node = _force_child(node, k, entry)
        if isinstance(node, list):
            node[_list_index(node, last, entry)] = _parse_force_value(value)
        elif isinstance(node, dict):
            node[last] = _parse_force_value(value)
        else:
            raise OptionError(f'--force_yml {entry!r}: {keys.rsplit(":", 1)[0]} is {node!r}, not a mapping or a list')

    opt.setdefault('path', OrderedDict())
    opt.setdefault('num_gpu', 0)
    check_options(opt, args.opt)
    check_published(opt, args.opt, root_path)
    opt['opt_path'] = args.opt

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
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_file'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])

    for key, val in opt['path'].items():
        if val is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = osp.expanduser(val)

    if is_train:
        experiments_root = osp.join(root_path, 'experiments', opt['name'])
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
        results_root = osp.join(root_path, 'results', opt['name'])
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
