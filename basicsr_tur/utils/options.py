"""The run set-up of a training or test: the command line, the options file read and checked, the run's folders.

`parse_options` is basicsr's, with its semantics kept (phases, the `experiments/` and `results/` layout,
`--force_yml`, `--auto_resume`, `--debug`, `--launcher`) but safe: the file is read by option_file (no Python tags,
no duplicate keys) and every key and value is checked by option_checks before anything is written. Relative paths in
the options and the outputs are under one root folder (`--root`, by default the working folder). This module also
re-exports the names users imported from it before it was split in three (reading: option_file; checking:
option_checks).
"""
from __future__ import annotations

import argparse
import random
from collections import OrderedDict
from os import path as osp
from typing import Any

import torch

from basicsr_tur.utils.dist import init_dist
from basicsr_tur.utils.option_checks import (
    OptionKeys,
    check_network_options,
    check_options,
    check_published,
    dataset_paths,
    declared_keys,
)
from basicsr_tur.utils.option_file import OptionError, apply_force_yml, dump_yaml, load_yaml, resolve

__all__ = ['OptionError', 'apply_force_yml', 'check_device', 'check_network_options', 'check_options', 'dump_yaml',
           'load_yaml', 'parse_options', 'resolve']


def _resolve_paths(opt: dict, root: str, keys: OptionKeys) -> None:
    """Every path the options name (dataset folders and meta files, and each declared key of a path Kind: weights,
    resume state, ...) made absolute under root."""
    def datasets(dataset_opt: dict) -> None:
        for key in dataset_paths(dataset_opt):
            if dataset_opt.get(key):
                dataset_opt[key] = resolve(dataset_opt[key], root)
        for part in dataset_opt.get('parts') or []:
            datasets(part)

    for dataset_opt in opt['datasets'].values():
        datasets(dataset_opt)
    for name, kind in keys.items():
        if kind is None or not kind.path:
            continue
        *parents, last = name.split('.')
        node: Any = opt
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(last):
            node[last] = resolve(node[last], root)


def parse_options(root_path: str, is_train: bool = True, argv: list[str] | None = None) -> tuple[dict, Any]:
    """Parse the command line and the options file the basicsr way, with a safe loader and checks of every key.

    root_path: the folder that relative paths in the options and the outputs (experiments/, results/) are under,
    unless --root names another (the command-line entry points pass the working folder). Returns (opt, args);
    opt['path']['root'] is that folder, and args.notes the conversions made (for the run's log).
    Raises OptionError (one line naming the file and key) before anything is written.
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
    check_published(opt, args.opt, root)  # a training's `published` was refused above (TEST_KEYS)
    _resolve_paths(opt, root, declared_keys(opt['model_type'], is_train))
    opt['opt_path'] = args.opt
    opt['path']['root'] = root

    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
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
    if opt['num_gpu'] > 0 and not torch.cuda.is_available():
        raise OptionError(f"{opt['opt_path']}: 'num_gpu: {opt['num_gpu']}' but no CUDA device is available; "
                          'set num_gpu: 0 (or --force_yml num_gpu=0) to run on the CPU')


def set_backend_flags(opt: dict) -> None:
    """Set the process-wide numerics switches of the options: `cudnn_benchmark` (cuDNN's autotuner, default false)
    and `tf32` (TF32 tensor cores for what stays float32 on a GPU: matmuls through cuBLAS and convolutions through
    cuDNN, default true; `tf32: false` keeps full float32). Neither changes anything on the CPU."""
    # Off by default: autotuned convolution algorithms may change the numerics from run to run.
    torch.backends.cudnn.benchmark = bool(opt.get('cudnn_benchmark', False))
    tf32 = bool(opt.get('tf32', True))
    # The legacy flags, not torch 2.9's fp32_precision: inductor reads cudnn.allow_tf32, and a process that sets
    # the new API for cuBLAS makes every later read of the legacy one (allow_tf32, get_float32_matmul_precision)
    # raise. torch.set_float32_matmul_precision would also switch oneDNN's CPU matmuls to TF32; these do not.
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
