"""The data loader of each dataset of the options, our sampler and collate function, and a generator of its own."""
from __future__ import annotations

from functools import partial

import cv2
import torch
from basicsr.data import worker_init_fn
from basicsr.data.prefetch_dataloader import PrefetchDataLoader
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from torch.utils.data import DataLoader, Dataset, default_collate

from basicsr_tur.data.data_util import unit_tensor
from basicsr_tur.data.device_degradations import NONE_ROW
from basicsr_tur.data.samplers import build_sampler

# Image tensors of a sample: uint8 (8-bit values, scaled on the device) or float32 in [0, 1].
IMAGE_KEYS = ('lq', 'gt', 'lq_key', 'gt_key')
# Workers of validation and test loaders when the options give none: decoding off the main process on a GPU run; on a
# CPU-only run the main process would compete with them for the same cores.
EVAL_WORKERS_ON_GPU = 2


def _pad_kernel(kernel: torch.Tensor, side: int) -> torch.Tensor:
    """An odd (K, K) kernel centred in (side, side) zeros (side odd, >= K): a centred correlation is the same."""
    pad = (side - kernel.shape[-1]) // 2
    return torch.nn.functional.pad(kernel, (pad, pad, pad, pad))


def _fill_device_keys(samples: list[dict]) -> list[dict]:
    """Give every sample of a batch holding degrade_on: device samples the keys those carry (data/
    synthetic_task_dataset.py): a sample degraded by the workers gets the no-op row, seed 0, a zero rain kernel and a
    NaN depth; a device sample gets its `lq` (and `lq_key`) from its clean crop, which the model degrades."""
    sides = [s['deg_kernel'].shape[-1] for s in samples if 'deg_kernel' in s]
    side = max(sides) if sides else 0
    has_depth = any('deg_depth' in s for s in samples)
    has_key = any('lq_key' in s or 'gt_key' in s for s in samples)
    out = []
    for s in samples:
        s = dict(s)
        if 'deg_params' in s:
            s.setdefault('lq', s['gt'])
            if has_key:
                s.setdefault('lq_key', s['gt_key'])
        else:
            s['deg_params'] = torch.from_numpy(NONE_ROW.copy())
            s['deg_seed'] = 0
        s.pop('gt_key', None)
        if side:
            s['deg_kernel'] = _pad_kernel(s['deg_kernel'], side) if 'deg_kernel' in s \
                else torch.zeros(side, side)
        if has_depth:
            nan = torch.full(s['gt'].shape[-2:], float('nan'))
            s.setdefault('deg_depth', nan)
            if has_key:
                s.setdefault('deg_depth_key', nan)
        out.append(s)
    return out


def collate_samples(samples: list[dict]) -> dict:
    """torch's default_collate for the task datasets' samples: an image key whose samples mix uint8 and float32 is
    collated as float32 in [0, 1] (uint8 divided by 255: the values the device would give), and a batch with
    degrade_on: device samples gets the keys the model needs for all its rows (see _fill_device_keys)."""
    if any('deg_params' in s for s in samples):
        samples = _fill_device_keys(samples)
    for key in IMAGE_KEYS:
        dtypes = {s[key].dtype for s in samples if key in s}
        if len(dtypes) > 1:
            samples = [dict(s, **{key: unit_tensor(s[key])}) for s in samples]
    return default_collate(samples)


def init_worker(worker_id: int, num_workers: int, rank: int, seed: int | None) -> None:
    """Set up one loader worker: OpenCV on one thread (the worker is one core's work; OpenCV's own pool would
    oversubscribe the cores, as torch's would, which torch sets to one thread in workers), and basicsr's
    worker_init_fn seeding of NumPy's and Python's global generators (seed + num_workers * rank + worker_id; our
    datasets draw from per-sample generators and do not use them)."""
    cv2.setNumThreads(0)
    if seed is not None:
        worker_init_fn(worker_id, num_workers=num_workers, rank=rank, seed=seed)


def build_loader(dataset: Dataset, dataset_opt: dict, opt: dict) -> DataLoader:
    """The loader of `dataset` (options `dataset_opt`) on this rank, its sampler from samplers.build_sampler, its
    batches from collate_samples.

    Training: as basicsr's build_dataloader (batch_size_per_gpu and num_worker_per_gpu, both times num_gpu under
    DataParallel; incomplete batches dropped; per-worker seeds), plus: pin_memory on by default when training on a
    GPU, `persistent_workers` (default false) and `prefetch_factor` (batches each worker prepares ahead; torch's
    default 2) passed to torch, OpenCV on one thread per worker (init_worker). Validation and test: one image per
    batch, in order, each rank loading only its share of the images (a ShardSampler; basicsr's own evaluation loader
    takes no sampler, so every rank would load every image), decoded by `num_worker_per_gpu` workers (default
    EVAL_WORKERS_ON_GPU on a GPU run, 0 on a CPU-only one). prefetch_mode cpu and num_prefetch_queue are honoured.
    """
    sampler = build_sampler(dataset, dataset_opt, opt)
    on_gpu = bool(opt['num_gpu']) and torch.cuda.is_available()
    if dataset_opt['phase'] == 'train':
        multiplier = 1 if opt['dist'] or not opt['num_gpu'] else opt['num_gpu']
        batch_size = dataset_opt['batch_size_per_gpu'] * multiplier
        workers = dataset_opt.get('num_worker_per_gpu', 0) * multiplier
        # Pinned batches by default on a GPU: the model's non-blocking copy then overlaps the device's work.
        pin = dataset_opt.get('pin_memory')
        args = dict(batch_size=batch_size, shuffle=sampler is None, drop_last=True,
                    pin_memory=on_gpu if pin is None else pin)
    else:
        workers = dataset_opt.get('num_worker_per_gpu', EVAL_WORKERS_ON_GPU if on_gpu else 0)
        args = dict(batch_size=1, shuffle=False, pin_memory=dataset_opt.get('pin_memory', False))
    rank, _ = get_dist_info()
    args.update(dataset=dataset, sampler=sampler, num_workers=workers, collate_fn=collate_samples,
                worker_init_fn=partial(init_worker, num_workers=workers, rank=rank, seed=opt.get('manual_seed')))
    if workers:
        args.update(persistent_workers=dataset_opt.get('persistent_workers', False),
                    prefetch_factor=dataset_opt.get('prefetch_factor', 2))
    if dataset_opt.get('prefetch_mode') == 'cpu':
        queue = dataset_opt.get('num_prefetch_queue', 1)
        get_root_logger().info(f'Use cpu prefetch dataloader: num_prefetch_queue = {queue}')
        loader = PrefetchDataLoader(num_prefetch_queue=queue, **args)
    else:
        loader = DataLoader(**args)
    # Its own generator: making an iterator draws a seed, which must not come from the global torch RNG that
    # training (dropout) uses, so that a resumed run consumes that RNG exactly as an uninterrupted one.
    loader.generator = torch.Generator().manual_seed(opt['manual_seed'])
    return loader
