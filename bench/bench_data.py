"""Benchmark the data pipeline: samples/s of PairedTaskDataset on disk (PNG) and on LMDB, and of the on-the-fly
SyntheticTaskDataset, at the paper's 128x128 patches; with --per-core, samples/s per core of every setting beside its
decode floor and the cores each backbone needs; with --lmdb-write, the time to write an LMDB instead.

    python bench/bench_data.py [--images 32] [--size 256] [--workers 0 2]
    python bench/bench_data.py --per-core [--seconds 4] [--dir /tmp]
    python bench/bench_data.py --lmdb-write [--write-sets 500x128 64x512] [--repeat 3] [--dir /tmp]

--per-core: one process on one thread (torch and OpenCV), as one loader worker runs. Each setting's stand-in set is
built from scikit-image's photos, resized to the setting's image size, with a light grain (sigma 2 levels) so that PNG
sizes and decode times are those of photos rather than of smooth upscales, and LQ images made by the project's own
degradations (MiOIR's default ranges): mio7 pairs (300x300 sub-images, LQ + GT per task; PNG files, LMDB of PNG level-1
values as basicsr stores them, LMDB of raw values), mio7 on the fly (7 MiO tasks drawn on 300x300 GT), aio3's noise
part (481x321 clean images, sigma 15/25/50 truncated) and paired part (Rain100L-size 481x321 rain pairs, OTS-size
620x460 haze pairs), DIV2K-size GT (2040x1356) drawn on the fly. Each row is timed with the degradations drawn by the
workers (`degrade_on: workers`) and, for synthetic sets, with `degrade_on: device` (the workers only crop and draw
parameters). The decode floor of a row is measured in the same run on the same files: read the bytes, decode to
uint8, crop and flip in uint8, make the tensor. A row that the code under test cannot build (an option it lacks)
prints '-'. Then, for each paper backbone, its training rate on one GPU (an H100 estimate from its forward FLOPs
at the recipe's patch, at 30 % of the H100's 989 TFLOP/s dense bf16, 3x the forward for forward + backward, unless
--gpu-rates or --gpu-rates-json (bench_step.py's JSON: its fastest TUR cell per backbone) gives a measured rate) and the
cores its setting's loader needs to feed 1.5x that rate.

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
import json
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
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import LmdbMaker
from torch.utils.flop_counter import FlopCounterMode

from basicsr_tur.data.data_util import npy_view
from basicsr_tur.data.degradations import DEFAULT_SPECS, DEGRADATION_TYPES, degrade
from basicsr_tur.data.samplers import pack_index
from basicsr_tur.utils.lmdb_util import LmdbWriter, build_clean_lmdb, build_paired_lmdb
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


# ---- --per-core ----

H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA H100 SXM datasheet (dense bf16 tensor cores)
MFU = 0.30  # fraction of that peak a convolutional restoration backbone reaches in bf16 training (an estimate)
# aio3's epoch (options/RECIPES.md): 46,296 noise samples of 142,431, the rest Rain100L and OTS pairs.
AIO3_MIX = {'aio3 noise part': 46296 / 142431, 'aio3 paired part': 96135 / 142431}
# Paper backbones: (recipe, patch side, {what feeds it: {setting of the per-core table: share of the samples}}).
BACKBONES = [('mio7/SRResNet_TUR', 128, {'recipe (pairs, PNG files)': {'mio7 pairs, PNG files': 1.0},
                                         'on the fly': {'mio7 on the fly': 1.0}}),
             ('mio7/Uformer_TUR', 128, {'recipe (pairs, PNG files)': {'mio7 pairs, PNG files': 1.0},
                                        'on the fly': {'mio7 on the fly': 1.0}}),
             ('aio3/PromptIR_TUR', 128, {'recipe (noise + pairs)': AIO3_MIX}),
             ('aio3/AirNet_TUR', 128, {'recipe (noise + pairs)': AIO3_MIX}),
             ('aio5/Transweather_TUR', 256, {"aio3's mix (aio5 adds GoPro and LOL pairs)": AIO3_MIX})]


def _photos() -> list[np.ndarray]:
    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea(),
            skimage.data.hubble_deep_field(), skimage.data.immunohistochemistry()]


def _stand_in(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A photo resized to (h, w) RGB uint8 with a light grain (sigma 2 levels)."""
    img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if h < photo.shape[0] else cv2.INTER_CUBIC)
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def _write(path: str, rgb: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]))


def _degraded(rgb: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
    lq, _ = degrade(rgb.astype(np.float32) / 255, DEFAULT_SPECS[task], rng)
    return np.rint(lq * 255).astype(np.uint8)


def build_per_core_sets(root: str, images: int) -> dict:
    """Write the stand-in sets under root; returns {setting: (dataset options, [(file paths) per sample]), ...}."""
    rng = np.random.default_rng(0)
    photos = _photos()
    common = {'phase': 'train', 'gt_size': 128, 'use_hflip': True, 'use_rot': True, 'seed': 0}
    # mio7 pairs, 300x300
    pairs = []
    for i in range(images):
        gt = _stand_in(photos[i % len(photos)], 300, 300, rng)
        _write(osp.join(root, 'mio', 'gt', f'{i:03d}.png'), gt)
        for task in TASKS:
            _write(osp.join(root, 'mio', 'lq', task, f'{i:03d}.png'), _degraded(gt, task, rng))
            pairs.append((f'{task}/{i:03d}.png', f'{i:03d}.png', task))
    mio = osp.join(root, 'mio')
    with open(osp.join(mio, 'meta.txt'), 'w') as f:
        f.write(''.join(f'{a} {b} {c}\n' for a, b, c in pairs))
    build_paired_lmdb(pairs, osp.join(mio, 'lq'), osp.join(mio, 'gt'), osp.join(mio, 'lmdb_png'))
    raw_ok = 'values' in build_paired_lmdb.__code__.co_varnames
    if raw_ok:
        build_paired_lmdb(pairs, osp.join(mio, 'lq'), osp.join(mio, 'gt'), osp.join(mio, 'lmdb_raw'), values='raw')
    if raw_ok:
        build_clean_lmdb([f'{i:03d}.png' for i in range(images)], osp.join(mio, 'gt'), osp.join(mio, 'clean_raw'),
                         values='raw')
    paired_files = [(osp.join(mio, 'lq', a), osp.join(mio, 'gt', b)) for a, b, _ in pairs]
    gt_files = [(osp.join(mio, 'gt', f'{i:03d}.png'),) for i in range(images)]
    # aio3: 481x321 clean images; rain pairs 481x321; haze pairs 620x460
    aio_pairs = []
    for i in range(images):
        clean = _stand_in(photos[i % len(photos)], 321, 481, rng)
        _write(osp.join(root, 'aio', 'clean', f'{i:03d}.png'), clean)
        rain_gt = _stand_in(photos[(i + 1) % len(photos)], 321, 481, rng)
        _write(osp.join(root, 'aio', 'gt', f'rain{i:03d}.png'), rain_gt)
        _write(osp.join(root, 'aio', 'lq', f'rain{i:03d}.png'), _degraded(rain_gt, 'rain', rng))
        haze_gt = _stand_in(photos[(i + 2) % len(photos)], 460, 620, rng)
        _write(osp.join(root, 'aio', 'gt', f'haze{i:03d}.png'), haze_gt)
        _write(osp.join(root, 'aio', 'lq', f'haze{i:03d}.png'), _degraded(haze_gt, 'haze', rng))
        aio_pairs += [(f'rain{i:03d}.png', f'rain{i:03d}.png', 'derain'), (f'haze{i:03d}.png', f'haze{i:03d}.png',
                                                                           'dehaze')]
    aio = osp.join(root, 'aio')
    with open(osp.join(aio, 'meta.txt'), 'w') as f:
        f.write(''.join(f'{a} {b} {c}\n' for a, b, c in aio_pairs))
    # DIV2K-size GT
    div = osp.join(root, 'div2k')
    for i in range(max(2, images // 8)):
        _write(osp.join(div, f'{i:03d}.png'), _stand_in(photos[i % len(photos)], 1356, 2040, rng))
    aio3_tasks = ['denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze']
    noise = {f'denoise_{s}': {'type': 'noise', 'sigma': s, 'quantize': 'truncate'} for s in (15, 25, 50)}
    mio_paired = dict(common, type='PairedTaskDataset', tasks=TASKS, meta_file=osp.join(mio, 'meta.txt'),
                      dataroot_lq=osp.join(mio, 'lq'), dataroot_gt=osp.join(mio, 'gt'))
    sets = {
        'mio7 pairs, PNG files': (mio_paired, paired_files),
        'mio7 pairs, LMDB of PNG values': (dict(mio_paired, io_backend={'type': 'lmdb'},
                                                meta_file=osp.join(mio, 'lmdb_png', 'meta.txt'),
                                                dataroot_lq=osp.join(mio, 'lmdb_png', 'lq.lmdb'),
                                                dataroot_gt=osp.join(mio, 'lmdb_png', 'gt.lmdb')), 'lmdb_png'),
        'mio7 pairs, LMDB of raw values': (dict(mio_paired, io_backend={'type': 'lmdb'},
                                                meta_file=osp.join(mio, 'lmdb_raw', 'meta.txt'),
                                                dataroot_lq=osp.join(mio, 'lmdb_raw', 'lq.lmdb'),
                                                dataroot_gt=osp.join(mio, 'lmdb_raw', 'gt.lmdb'))
                                           if raw_ok else None, 'lmdb_raw'),
        'mio7 on the fly': (dict(common, type='SyntheticTaskDataset', tasks=TASKS, dataroot_gt=osp.join(mio, 'gt')),
                            gt_files),
        'mio7 on the fly, LMDB of raw values': (dict(common, type='SyntheticTaskDataset', tasks=TASKS,
                                                     io_backend={'type': 'lmdb'},
                                                     meta_file=osp.join(mio, 'clean_raw', 'meta.txt'),
                                                     dataroot_gt=osp.join(mio, 'clean_raw', 'gt.lmdb'))
                                                if raw_ok else None, 'clean_raw'),
        'aio3 noise part': (dict(common, type='SyntheticTaskDataset', tasks=aio3_tasks,
                                 synth_tasks=aio3_tasks[:3], degradations=noise,
                                 dataroot_gt=osp.join(aio, 'clean')),
                            [(osp.join(aio, 'clean', f'{i:03d}.png'),) for i in range(images)]),
        'aio3 paired part': (dict(common, type='PairedTaskDataset', tasks=aio3_tasks,
                                  meta_file=osp.join(aio, 'meta.txt'), dataroot_lq=osp.join(aio, 'lq'),
                                  dataroot_gt=osp.join(aio, 'gt')),
                             [(osp.join(aio, 'lq', a), osp.join(aio, 'gt', b)) for a, b, _ in aio_pairs]),
        'DIV2K-size GT on the fly': (dict(common, type='SyntheticTaskDataset', tasks=TASKS, dataroot_gt=div),
                                     [(osp.join(div, n),) for n in sorted(os.listdir(div))]),
    }
    return {name: (opt, files, pairs) for name, (opt, files) in sets.items()}


def _cell(rate: float | None) -> str:
    return '-' if rate is None else f'{rate:.0f}'


def _ratio(rate: float | None, floor: float | None) -> str:
    return '-' if rate is None or floor is None else f'{rate / floor:.2f}'


def _timed_rate(draw: Callable[[int], object], count: int, seconds: float) -> float:
    """Samples/s of draw(i) over shuffled indices (one warm-up draw), for about `seconds`."""
    order = np.random.default_rng(1).permutation(count)
    draw(int(order[0]))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        draw(int(order[n % count]))
        n += 1
    return n / (time.perf_counter() - start)


def dataset_rate(opt: dict | None, seconds: float) -> float | None:
    """Samples/s of dataset[i] (training samples of epoch 1, shuffled), or None when the code cannot build it."""
    if opt is None:
        return None
    try:
        ds = build_dataset(dict(opt, name='bench'))
    except (KeyError, ValueError, TypeError):
        return None
    if opt.get('degrade_on') == 'device' and 'deg_params' not in ds[0]:  # code that ignores the option
        return None
    return _timed_rate(lambda i: ds[pack_index(1, i, len(ds))], len(ds), seconds)


def _lmdb_values(db: str) -> dict[str, bytes]:
    env = lmdb.open(db, readonly=True, lock=False, readahead=False)
    with env.begin() as txn:
        values = {k.decode(): bytes(v) for k, v in txn.cursor()}
    env.close()
    return values


def floor_rate(files: list[tuple[str, ...]] | str, pairs: list, root: str, size: int, seconds: float) -> float:
    """Samples/s of the decode floor: read each file of a sample (or its LMDB values), decode to uint8 (a raw
    value: view it), crop size x size and flip in uint8, make the (C, H, W) tensor."""
    rng = np.random.default_rng(2)
    if isinstance(files, str):  # an LMDB folder under the mio set: read through one open environment per database
        clean = files.startswith('clean')
        envs = {k: lmdb.open(osp.join(root, 'mio', files, f'{k}.lmdb'), readonly=True, lock=False, readahead=False)
                for k in (('gt',) if clean else ('lq', 'gt'))}
        keys = [(osp.splitext(b)[0],) for b in sorted({b for _, b, _ in pairs})] if clean else \
            [(osp.splitext(a)[0], osp.splitext(b)[0]) for a, b, _ in pairs]

        def buffers(i: int) -> list[bytes]:
            out = []
            for k, key in zip(envs, keys[i]):
                with envs[k].begin() as txn:
                    out.append(txn.get(key.encode()))
            return out
        count = len(keys)
    else:
        def buffers(i: int) -> list[bytes]:
            out = []
            for path in files[i]:
                with open(path, 'rb') as f:
                    out.append(f.read())
            return out
        count = len(files)

    def draw(i: int) -> None:
        imgs = []
        for buf in buffers(i):
            raw = npy_view(buf)  # a raw LMDB value: viewed, as the datasets read it
            imgs.append(raw if raw is not None else cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED))
        h, w = imgs[0].shape[:2]
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        flip = rng.random() < 0.5
        for img in imgs:
            crop = img[top:top + size, left:left + size, 2::-1]
            crop = crop[:, ::-1] if flip else crop
            torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
    return _timed_rate(draw, count, seconds)


def value_bytes(root: str, name: str) -> int:
    """Bytes of the values of an LMDB set (lq + gt of a pair set, gt of a clean one)."""
    return sum(len(v) for k in ('lq', 'gt') if osp.isdir(osp.join(root, 'mio', name, f'{k}.lmdb'))
               for v in _lmdb_values(osp.join(root, 'mio', name, f'{k}.lmdb')).values())


def forward_gflop(recipe: str, size: int) -> float:
    """Forward GFLOP of one size x size sample of the recipe's network_g (torch's FlopCounterMode, on the meta
    device when the network allows, else on the CPU)."""
    with open(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'train', f'{recipe}.yml')) as f:
        net_opt = dict(yaml.safe_load(f)['network_g'])
    for device in ('meta', 'cpu'):
        try:
            with torch.device(device):
                net = build_network(dict(net_opt)).eval()
                x = torch.rand(1, 3, size, size) if device == 'cpu' else torch.empty(1, 3, size, size)
                with FlopCounterMode(display=False) as counter:
                    net(x, x) if 'AirNet' in recipe else net(x)
            return counter.get_total_flops() / 1e9
        except RuntimeError:
            continue
    raise RuntimeError(f'cannot count the FLOPs of {recipe}')


def measured_gpu_rates(path: str) -> dict[str, float]:
    """{arch: images/s} of the fastest finished TUR cell of each backbone in bench_step.py's JSON."""
    with open(path) as f:
        cells = json.load(f)['cells']
    rates: dict[str, float] = {}
    for cell in cells:
        result = cell.get('result') or {}
        if cell.get('loss') == 'TUR' and result.get('status') == 'ok':
            rate = result['images'] / (result['ms_step'] / 1e3)
            rates[cell['arch']] = max(rate, rates.get(cell['arch'], 0.0))
    return rates


def per_core_tables(seconds: float, images: int, parent: str, gpu_rates: dict[str, float]) -> str:
    """The per-core table and the cores table (module docstring), as Markdown."""
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    out = []
    rates: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(dir=parent) as root:
        sets = build_per_core_sets(root, images)
        rows = []
        for name, (opt, files, pairs) in sets.items():
            floor = floor_rate(files, pairs, root, 128, seconds) if opt is not None else None
            workers = dataset_rate(opt, seconds)
            device = dataset_rate(dict(opt, degrade_on='device'), seconds) \
                if opt is not None and opt['type'] == 'SyntheticTaskDataset' else None
            rates[name] = {'workers': workers, 'device': device}
            disk = f' ({value_bytes(root, files) / 1e6:.1f} MB of values)' if isinstance(files, str) and opt else ''
            rows.append([name + disk, _cell(workers), _cell(device), _cell(floor), _ratio(workers, floor),
                         _ratio(device, floor)])
        out.append(markdown_table(['Setting', 'degrade_on: workers (samples/s per core)',
                                   'degrade_on: device (samples/s per core)', 'decode floor (samples/s per core)',
                                   'workers / floor', 'device / floor'], rows))
    rows = []
    for recipe, size, feeds in BACKBONES:
        gflop = forward_gflop(recipe, size)
        gpu = gpu_rates.get(recipe.split('/')[1].rsplit('_', 1)[0])
        source = 'measured' if gpu else 'FLOP estimate'
        gpu = gpu or H100_BF16_DENSE * MFU / (3 * gflop * 1e9)
        for label, mix in feeds.items():
            # per sample, a core spends 1/rate seconds on each setting's share: cores = 1.5 x GPU rate x that sum
            per_sample = [share / (rates[name]['device'] or rates[name]['workers'] or float('nan'))
                          for name, share in mix.items()]
            paths = '+'.join(sorted({'device' if rates[name]['device'] else 'workers' for name in mix}))
            rows.append([recipe, f'{size}²', f'{gflop:.1f}', f'{gpu:.0f} ({source})', label, paths,
                         f'{1.5 * gpu * sum(per_sample):.1f}'])
    out.append(markdown_table(['Recipe', 'patch', 'forward GFLOP', 'H100 images/s', 'data', 'degrade_on',
                               'cores to feed 1.5x'], rows))
    return '\n\n'.join(out)


def main() -> None:
    """Build the temporary set and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=32)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--gt_size', type=int, default=128)
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--lmdb-write', action='store_true', help='time LMDB writers instead (module docstring)')
    parser.add_argument('--per-core', action='store_true', help='samples/s per core of every setting (docstring)')
    parser.add_argument('--seconds', type=float, default=4.0, help='--per-core: seconds timed per row and path')
    parser.add_argument('--per-core-images', type=int, default=16, help='--per-core: images of each stand-in set')
    parser.add_argument('--gpu-rates', nargs='*', default=[], metavar='ARCH=IMAGES_PER_S',
                        help='--per-core: measured GPU training rates (e.g. SRResNet=2300)')
    parser.add_argument('--gpu-rates-json', metavar='FILE', help='--per-core: bench_step.py --json output')
    parser.add_argument('--write-sets', nargs='+', default=['500x128', '64x512'], metavar='NxSIZE')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--dir', default=tempfile.gettempdir(), help='parent of the temporary folder (a local disk)')
    args = parser.parse_args()
    if args.per_core:
        gpu_rates = {k: float(v) for k, v in (item.split('=') for item in args.gpu_rates)}
        if args.gpu_rates_json:
            gpu_rates.update(measured_gpu_rates(args.gpu_rates_json))
        print(f'# per core: one process, torch and OpenCV on one thread, 128x128 patches, {args.seconds:.0f} s per '
              f'row and path, {args.per_core_images} images per set\n')
        print(per_core_tables(args.seconds, args.per_core_images, args.dir, gpu_rates))
        return
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
