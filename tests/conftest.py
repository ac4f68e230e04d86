"""Fixtures: tiny task-labelled image sets built from scikit-image's shipped photos, and tiny options files."""
from __future__ import annotations

import logging
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import skimage.data
import yaml

import basicsr_tur  # noqa: F401  (registers archs, datasets, losses and models)

TASKS = ['sr', 'noise', 'dark']


@pytest.fixture(autouse=True, scope='session')
def one_torch_thread():
    """Run on one thread: on tensors this small, threads on 2 shared CI cores cost far more than they save."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
SIZE = 40


def _photos() -> dict[str, np.ndarray]:
    """Three small RGB uint8 photos (SIZE x SIZE)."""
    photos = {'astronaut': skimage.data.astronaut(), 'coffee': skimage.data.coffee(),
              'chelsea': skimage.data.chelsea()}
    return {k: cv2.resize(v, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for k, v in photos.items()}


def write_rgb(path: str, img: np.ndarray) -> None:
    """Write an RGB uint8 image to path (folders created)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture
def paired_root(tmp_path) -> str:
    """Per-task folders lq/<task>/<name>.png with a shared gt/<name>.png, plus meta.txt listing the same pairs."""
    root = tmp_path / 'paired'
    rng = np.random.default_rng(0)
    lines = []
    for name, img in _photos().items():
        write_rgb(str(root / 'gt' / f'{name}.png'), img)
        for task in TASKS:
            noisy = np.clip(img.astype(np.int16) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
            write_rgb(str(root / 'lq' / task / f'{name}.png'), noisy)
            lines.append(f'{task}/{name}.png {name}.png {task}')
    (root / 'meta.txt').write_text('\n'.join(lines) + '\n')
    return str(root)


@pytest.fixture
def clean_root(tmp_path) -> str:
    """A folder of clean training images for SyntheticTaskDataset."""
    root = tmp_path / 'clean'
    for name, img in _photos().items():
        write_rgb(str(root / f'{name}.png'), img)
    return str(root)


def make_options(tmp_path, clean_root: str, paired_root: str, loss: str = 'TURLoss', network_g: dict | None = None,
                 model_type: str = 'TURModel', train_set: dict | None = None, **train_overrides) -> str:
    """Write a tiny training options file (2-block, 8-channel SRResNet, 24² patches) and return its path.

    network_g replaces the network, model_type the model, train_set adds keys to datasets.train, and keyword
    arguments add keys to `train`.
    """
    opt = {
        'name': 'tiny', 'model_type': model_type, 'num_gpu': 0, 'manual_seed': 0, 'tasks': TASKS,
        'datasets': {
            'train': {'name': 'tiny_train', 'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root,
                      'gt_size': 24, 'use_hflip': True, 'use_rot': True, 'dataset_enlarge_ratio': 4,
                      'num_worker_per_gpu': 0, 'batch_size_per_gpu': 6, **(train_set or {})},
            'val': {'name': 'tiny_val', 'type': 'PairedTaskDataset', 'dataroot_lq': osp.join(paired_root, 'lq'),
                    'dataroot_gt': osp.join(paired_root, 'gt'), 'meta_file': osp.join(paired_root, 'meta.txt')},
        },
        'network_g': network_g or {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2,
                                   'uncertainty_head': loss == 'TURLoss'},
        'path': {},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-3}, 'total_iter': 20,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': loss}, **train_overrides},
        'val': {'val_freq': 20, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 5, 'save_checkpoint_freq': 10, 'use_tb_logger': True},
    }
    path = tmp_path / f'train_{loss}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


def edit(path: str, change) -> None:
    """Load an options file, apply change(opt) and write it back."""
    with open(path) as f:
        opt = yaml.safe_load(f)
    change(opt)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)


def assert_names(err, *names: object) -> str:
    """Assert that a caught error's message (an ExceptionInfo, an exception or a string) is one line naming each of
    names (a key, a file, a value, a flag): what a user relies on, not its wording. Returns the message."""
    message = str(getattr(err, 'value', err))
    assert '\n' not in message, f'not one line: {message!r}'
    missing = [str(name) for name in names if str(name) not in message]
    assert not missing, f'{missing} not named in: {message}'
    return message


def assert_error_line(stderr: str, *names: object) -> str:
    """Assert that a CLI's stderr holds exactly one `error: ` line, naming each of names. Returns that line."""
    lines = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, stderr
    return assert_names(lines[0], *names)


@pytest.fixture
def log_lines():
    """Messages the basicsr logger emits during the test (caplog misses them once basicsr has set its logger up)."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    # basicsr sets the level only when its first get_root_logger call names a log file, which an earlier test's
    # call may not have done.
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def tiny_srresnet_weights(tmp_path, name: str = 'tiny.pth') -> str:
    """A checkpoint ({'params': ...}) of a tiny SRResNet (8 features, 2 blocks, seed 0) written to tmp_path/name."""
    import torch
    from basicsr.archs import build_network
    torch.manual_seed(0)
    path = str(tmp_path / name)
    torch.save({'params': build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}).state_dict()}, path)
    return path


def make_test_options(tmp_path, paired_root: str, weights: str, name: str = 'tiny_test') -> str:
    """Write a tiny test options file evaluating `weights` on the paired set."""
    opt = {
        'name': name, 'model_type': 'TURModel', 'num_gpu': 0, 'manual_seed': 0, 'tasks': TASKS,
        'datasets': {'test': {'name': 'tiny_test_set', 'type': 'PairedTaskDataset',
                              'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt')}},
        'network_g': {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2},
        'path': {'pretrain_network_g': weights, 'param_key_g': 'params'},
        'val': {'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                                              'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}},
    }
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)
