"""Benchmark the data pipeline: samples/s of PairedTaskDataset on disk (PNG) and on LMDB, and of the on-the-fly
SyntheticTaskDataset, at the paper's 128x128 patches; with --lmdb-write, the time to write an LMDB instead.

    python bench/bench_data.py [--images 32] [--size 256] [--workers 0 2]
    python bench/bench_data.py --lmdb-write [--write-sets 500x128 64x512] [--repeat 3] [--dir /tmp]

Builds a temporary 7-task set from scikit-image's photos (PNG files and their LMDB copy) and prints a Markdown
table (paste into BENCHMARKS.md).

--lmdb-write: for each set (N crops of S x S from the photos, as PNG files in a temporary folder under --dir, a local
disk), writes one LMDB of them with each writer, as scripts/make_lmdb.py does (read the file, PNG-encode at level 1,
store): one write transaction per image (our writer before issue 13), basicsr's LmdbMaker (one commit per 5000
images), and utils/lmdb_util.LmdbWriter (ours now). Prints the median seconds of --repeat runs (each writer in turn,
the order rotated every run, a new LMDB each time) and MB/s of stored bytes, and the time of reading and encoding
alone.
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from os import path as osp

import cv2
import lmdb
import numpy as np
import skimage.data
import torch
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import LmdbMaker

from basicsr_tur.data.degradations import DEGRADATION_TYPES
from basicsr_tur.utils.lmdb_util import LmdbWriter, build_paired_lmdb
from basicsr_tur.utils.tables import markdown_table

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


def write_crops(folder: str, count: int, size: int) -> list[tuple[str, str]]:
    """Write `count` PNG crops of size x size from the photos (scaled so that their short side is 1.5 x size, random
    windows and flips) into `folder`; returns (LMDB key, file path) of each."""
    rng = np.random.default_rng(size)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]
    photos = [cv2.resize(p, None, fx=1.5 * size / min(p.shape[:2]), fy=1.5 * size / min(p.shape[:2]),
                         interpolation=cv2.INTER_CUBIC) for p in photos]
    os.makedirs(folder)
    files = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - size + 1))
        left = int(rng.integers(0, photo.shape[1] - size + 1))
        crop = photo[top:top + size, left:left + size, ::-1]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        path = osp.join(folder, f'{i:04d}.png')
        cv2.imwrite(path, np.ascontiguousarray(crop))
        files.append((f'{i:04d}', path))
    return files


def read_encode(path: str) -> tuple[bytes, tuple[int, int, int]]:
    """The file's image as PNG bytes at compression level 1, and its (h, w, c): what each writer stores."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return buf.tobytes(), (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])


def encode_only(db: str, files: list[tuple[str, str]]) -> int:
    """Read and encode every file, store nothing: the floor under every writer; returns the bytes each one stores."""
    return sum(len(read_encode(path)[0]) for _, path in files)


def one_transaction_per_image(db: str, files: list[tuple[str, str]]) -> None:
    """Our writer before issue 13: each image stored and committed (fsync) in a write transaction of its own."""
    env = lmdb.open(db, map_size=1 << 30)
    for key, path in files:
        value, _ = read_encode(path)
        with env.begin(write=True) as txn:
            txn.put(key.encode('ascii'), value)
    env.close()


def basicsr_lmdb_maker(db: str, files: list[tuple[str, str]]) -> None:
    """basicsr.utils.lmdb_util.LmdbMaker at its defaults (one commit per 5000 images, 1 TB map, sparse on disk)."""
    maker = LmdbMaker(db)
    for key, path in files:
        value, shape = read_encode(path)
        maker.put(value, key, shape)
    maker.close()


def ours_now(db: str, files: list[tuple[str, str]]) -> None:
    """utils/lmdb_util.LmdbWriter, the writer of scripts/make_lmdb.py (read, encode and store inside put)."""
    with LmdbWriter(db) as writer:
        for key, path in files:
            writer.put(key, path)


WRITERS: dict[str, Callable[[str, list[tuple[str, str]]], object]] = {
    'read + encode only (no LMDB)': encode_only,
    'one transaction per image (ours before issue 13)': one_transaction_per_image,
    'basicsr LmdbMaker (5000 images per commit)': basicsr_lmdb_maker,
    'utils/lmdb_util.LmdbWriter (ours now)': ours_now,
}


def lmdb_write_table(sets: list[tuple[int, int]], repeat: int, parent: str) -> str:
    """Median seconds and MB/s of each writer on each set (see the module docstring), as Markdown."""
    rows = []
    root = tempfile.mkdtemp(prefix='bench_lmdb_', dir=parent)
    try:
        for count, size in sets:
            files = write_crops(osp.join(root, f'{count}x{size}'), count, size)
            # Every writer stores the same bytes; reading them once also puts the source files in the page cache.
            stored = encode_only('', files)
            times: dict[str, list[float]] = {name: [] for name in WRITERS}
            for run in range(repeat):
                names = list(WRITERS)
                for name in names[run % len(names):] + names[:run % len(names)]:
                    db = osp.join(root, 'out.lmdb')
                    start = time.perf_counter()
                    WRITERS[name](db, files)
                    times[name].append(time.perf_counter() - start)
                    shutil.rmtree(db, ignore_errors=True)
            for name in WRITERS:
                seconds = statistics.median(times[name])
                rows.append([f'{count} x {size}² ({stored / 1e6:.0f} MB)', name, f'{seconds:.2f}',
                             f'{stored / 1e6 / seconds:.1f}', ', '.join(f'{t:.2f}' for t in times[name])])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return markdown_table(['Images', 'Writer', 'seconds (median)', 'MB/s', 'every run (s)'], rows)


def main() -> None:
    """Build the temporary set and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=32)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--gt_size', type=int, default=128)
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--lmdb-write', action='store_true', help='time LMDB writers instead (module docstring)')
    parser.add_argument('--write-sets', nargs='+', default=['500x128', '64x512'], metavar='NxSIZE')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--dir', default=tempfile.gettempdir(), help='parent of the temporary folder (a local disk)')
    args = parser.parse_args()
    if args.lmdb_write:
        sets = [tuple(int(v) for v in s.split('x')) for s in args.write_sets]
        print(f'# LMDB writing, PNG level 1, under {args.dir}; median of {args.repeat} runs\n')
        print(lmdb_write_table(sets, args.repeat, args.dir))
        return
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
