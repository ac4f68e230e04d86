"""The data loader of each dataset of the options: basicsr's loader with our sampler and a generator of its own."""
from __future__ import annotations

import torch
from basicsr.data import build_dataloader
from basicsr.data.prefetch_dataloader import PrefetchDataLoader
from basicsr.utils import get_root_logger
from torch.utils.data import DataLoader, Dataset

from basicsr_tur.data.samplers import build_sampler


def build_loader(dataset: Dataset, dataset_opt: dict, opt: dict) -> DataLoader:
    """The loader of `dataset` (options `dataset_opt`) on this rank, its sampler from samplers.build_sampler.

    Training: basicsr's train loader (batch_size_per_gpu, num_worker_per_gpu, both times num_gpu under DataParallel;
    incomplete batches dropped; per-worker seeds; pin_memory on by default when training on a GPU) on the options'
    train sampler. Validation and test: basicsr's
    evaluation loader (one image per batch, in order, no workers; pin_memory, persistent_workers, prefetch_mode cpu
    and num_prefetch_queue honoured), except that each rank loads only its share of the images (a ShardSampler;
    basicsr's own evaluation loader takes no sampler, so every rank would load every image).
    """
    sampler = build_sampler(dataset, dataset_opt, opt)
    if dataset_opt['phase'] == 'train':
        # Pinned batches by default on a GPU: the model's non-blocking copy then overlaps the device's work.
        pin = dataset_opt.get('pin_memory')
        pin = bool(opt['num_gpu']) and torch.cuda.is_available() if pin is None else pin
        loader = build_dataloader(dataset, {**dataset_opt, 'pin_memory': pin}, num_gpu=opt['num_gpu'],
                                  dist=opt['dist'], sampler=sampler, seed=opt['manual_seed'])
    else:
        args = dict(dataset=dataset, batch_size=1, sampler=sampler, num_workers=0,
                    pin_memory=dataset_opt.get('pin_memory', False),
                    persistent_workers=dataset_opt.get('persistent_workers', False))
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
