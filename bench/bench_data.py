"""Benchmark the data pipeline: samples/s of PairedTaskDataset on disk (PNG) and on LMDB, and of the on-the-fly
SyntheticTaskDataset, at the paper's 128x128 patches.

    python bench/bench_data.py [--images 32] [--size 256] [--workers 0 2]

Builds a temporary 7-task set from scikit-image's photos (PNG files and their LMDB copy) and prints a Markdown
table (paste into BENCHMARKS.md).
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import os
import tempfile
import time
from os import path as osp

import cv2
import numpy as np
import skimage.data
import torch
from basicsr.data import build_dataset

from basicsr_tur.data.degradations import DEGRADATION_TYPES
from basicsr_tur.utils.lmdb_util import build_paired_lmdb

TASKS = list(DEGRADATION_TYPES)


def make_set(root: str, images: int, size: int) -> list[tuple[str, str, str]]:
    """Write `images` GT crops and one LQ per task for each (noisy copies: decoding cost is what is measured)."""
    rng = np.random.default_rng(0)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]
    pairs = []
    for i in range(images):
        photo = photos[i % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - size + 1))
        left = int(rng.integers(0, photo.shape[1] - size + 1))
        gt = np.ascontiguousarray(photo[top:top + size, left:left + size, ::-1])
        os.makedirs(osp.join(root, 'gt'), exist_ok=True)
        cv2.imwrite(osp.join(root, 'gt', f'{i:04d}.png'), gt)
        for task in TASKS:
            lq = np.clip(gt + rng.normal(0, 10, gt.shape), 0, 255).astype(np.uint8)
            os.makedirs(osp.join(root, 'lq', task), exist_ok=True)
            cv2.imwrite(osp.join(root, 'lq', task, f'{i:04d}.png'), lq)
            pairs.append((f'{task}/{i:04d}.png', f'{i:04d}.png', task))
    return pairs


def samples_per_second(opt: dict, workers: int, batch: int = 8, min_samples: int = 200) -> float:
    """Samples/s drawn through a DataLoader (after one warm-up batch)."""
    ds = build_dataset(opt)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    n, it = 0, iter(loader)
    next(it)
    start = time.perf_counter()
    while n < min_samples:
        try:
            n += next(it)['lq'].shape[0]
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    """Build the temporary set and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=32)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--gt_size', type=int, default=128)
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        pairs = make_set(root, args.images, args.size)
        build_paired_lmdb(pairs, osp.join(root, 'lq'), osp.join(root, 'gt'), osp.join(root, 'lmdb'))
        with open(osp.join(root, 'meta.txt'), 'w') as f:
            f.write(''.join(f'{a} {b} {c}\n' for a, b, c in pairs))
        common = {'name': 'bench', 'phase': 'train', 'tasks': TASKS, 'gt_size': args.gt_size, 'use_hflip': True,
                  'use_rot': True, 'seed': 0}
        configs = {
            'PairedTaskDataset, disk (PNG)': dict(common, type='PairedTaskDataset',
                                                  meta_file=osp.join(root, 'meta.txt'),
                                                  dataroot_lq=osp.join(root, 'lq'), dataroot_gt=osp.join(root, 'gt')),
            'PairedTaskDataset, LMDB': dict(common, type='PairedTaskDataset', io_backend={'type': 'lmdb'},
                                            meta_file=osp.join(root, 'lmdb', 'meta.txt'),
                                            dataroot_lq=osp.join(root, 'lmdb', 'lq.lmdb'),
                                            dataroot_gt=osp.join(root, 'lmdb', 'gt.lmdb')),
            'SyntheticTaskDataset (7 MiO tasks on the fly)': dict(common, type='SyntheticTaskDataset',
                                                                  dataroot_gt=osp.join(root, 'gt')),
        }
        print(f'# {args.images} images of {args.size}x{args.size}, 7 tasks, {args.gt_size}x{args.gt_size} patches, '
              f'batch 8, torch threads {torch.get_num_threads()}\n')
        print('| Dataset | ' + ' | '.join(f'{w} workers (samples/s)' for w in args.workers) + ' |')
        print('|---|' + '---|' * len(args.workers))
        for label, opt in configs.items():
            rates = [samples_per_second(opt, w) for w in args.workers]
            print(f'| {label} | ' + ' | '.join(f'{r:.0f}' for r in rates) + ' |')


if __name__ == '__main__':
    main()
