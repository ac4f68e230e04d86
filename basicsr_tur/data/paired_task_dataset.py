"""Paired, task-labelled images (LQ, GT, task) from a meta file or per-task folders, on disk or LMDB."""
from __future__ import annotations

from os import path as osp

import numpy as np
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_tur.data.data_util import TaskDataset, list_images, lookup_task, to_tensor
from basicsr_tur.utils.lmdb_util import check_lmdb_keys


def read_meta_file(meta_file: str, index: dict[str, int] | None) -> list[tuple[str, str, str]]:
    """Read `lq_path gt_path task` lines (paths relative to dataroot_lq / dataroot_gt; '#' starts a comment).

    Task names are checked against `index` (None: any name, for tools that take the tasks from the file).
    """
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'meta file not found: {meta_file}')
    pairs = []
    with open(meta_file, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 3:
                raise ValueError(f'{meta_file} line {line_no}: expected "lq_path gt_path task", got {line!r}')
            if index is not None:
                lookup_task(fields[2], index, f'{meta_file} line {line_no}')
            pairs.append((fields[0], fields[1], fields[2]))
    if not pairs:
        raise ValueError(f'{meta_file}: no image pairs listed')
    return pairs


SOURCE_PREFIX = '# source:'


def read_meta_sources(meta_file: str) -> list[str]:
    """Where a meta file's images come from: the texts of the `# source: ...` lines of its leading comment block.

    scripts/prepare_data.py writes one such line per part at the top of the file (e.g. MiOIR's released test set,
    linked, or the same set re-synthesised), so that test.py can say which was scored; the pairs below are not read.
    """
    sources = []
    with open(meta_file, encoding='utf-8') as f:
        for line in f:
            if not line.startswith('#'):
                break
            if line.startswith(SOURCE_PREFIX):
                sources.append(line[len(SOURCE_PREFIX):].strip())
    return sources


def read_meta_source(meta_file: str) -> str:
    """read_meta_sources joined by '; ' ('' when there is none)."""
    return '; '.join(read_meta_sources(meta_file))


def scan_task_folders(lq_root: str, gt_root: str, tasks: list[str]) -> list[tuple[str, str, str]]:
    """Pair `lq_root/<task>/NAME` with `gt_root/<task>/NAME`, or with `gt_root/NAME` when GT is shared by tasks."""
    pairs = []
    for task in tasks:
        lq_dir = osp.join(lq_root, task)
        if not osp.isdir(lq_dir):
            raise FileNotFoundError(f"LQ folder of task '{task}' not found: {lq_dir}")
        gt_sub = task if osp.isdir(osp.join(gt_root, task)) else ''
        names = list_images(lq_dir)
        if not names:
            raise ValueError(f"LQ folder of task '{task}' holds no images: {lq_dir}")
        for name in names:
            gt_rel = osp.join(gt_sub, name)
            if not osp.isfile(osp.join(gt_root, gt_rel)):
                raise FileNotFoundError(f'no GT partner for {osp.join(lq_dir, name)}: expected '
                                        f'{osp.join(gt_root, gt_rel)}')
            pairs.append((osp.join(task, name), gt_rel, task))
    return pairs


@DATASET_REGISTRY.register()
class PairedTaskDataset(TaskDataset):
    """Paired LQ/GT images labelled with their task; returns lq, gt (C, H, W), task_id, task, lq_path, gt_path.

    Options:
        tasks: the setting's task names (filled from the top-level `tasks`); a task's id is its position.
        dataroot_lq, dataroot_gt: image roots (folders, or `.lmdb` folders with io_backend type lmdb).
        meta_file: lines `lq_path gt_path task` relative to the roots ('# source: ...' lines say where the images
            come from, kept as `self.source`); without it, per-task folders are scanned: dataroot_lq/<task>/NAME
            pairs with dataroot_gt/<task>/NAME or dataroot_gt/NAME.
        io_backend: {type: disk} or {type: lmdb} (the LMDB roots are taken from dataroot_lq/gt).
        gt_size: crop size for training; none for validation. use_hflip, use_rot: dihedral augmentation.
        dataset_enlarge_ratio: training length multiplier (each repeat draws its own crop and flips).
        key_crop: also return `lq_key`, a second crop of the same degraded image (AirNet's contrastive key).
        seed: base of the per-sample generators (defaults to the run's manual_seed).
    Randomness of sample `index` in epoch `e` comes only from a generator seeded by (seed, e, index).
    """

    OPTION_KEYS = ('dataroot_lq', 'dataroot_gt', 'meta_file', 'gt_size', 'use_hflip', 'use_rot', 'seed',
                   'dataset_enlarge_ratio', 'key_crop')

    def __init__(self, opt: dict) -> None:
        super().__init__(opt, {'lq': 'dataroot_lq', 'gt': 'dataroot_gt'})
        self.lq_root, self.gt_root = opt['dataroot_lq'], opt['dataroot_gt']
        if opt.get('meta_file'):
            self.pairs = read_meta_file(opt['meta_file'], self.task_to_id)
            self.source = read_meta_source(opt['meta_file'])
        else:
            self.pairs = scan_task_folders(self.lq_root, self.gt_root, self.tasks)
            self.source = ''
        if self.io_backend['type'] == 'lmdb':  # x.png and x.jpg have one key: one would be served for the other
            check_lmdb_keys([lq for lq, _, _ in self.pairs], f"{self.where}: LQ images of {opt['meta_file']}")
            check_lmdb_keys([gt for _, gt, _ in self.pairs], f"{self.where}: GT images of {opt['meta_file']}")
        self.num_items = len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        index = self.locate(index)
        lq_rel, gt_rel, task = self.pairs[index % len(self.pairs)]
        lq = self.read(self.lq_root, lq_rel, 'lq')
        gt = self.read(self.gt_root, gt_rel, 'gt')
        lq_path, gt_path = osp.join(self.lq_root, lq_rel), osp.join(self.gt_root, gt_rel)
        if lq.shape != gt.shape:
            raise ValueError(f'{self.where}: LQ/GT size mismatch: {lq_path} is {lq.shape[0]}x{lq.shape[1]}, '
                             f'{gt_path} is {gt.shape[0]}x{gt.shape[1]}')
        sample = {'task_id': self.task_to_id[task], 'task': task, 'lq_path': lq_path, 'gt_path': gt_path}
        if self.opt.get('phase') == 'train':
            rng = self.generator(index)
            lq_full, where = lq, f'{self.where}: {gt_path}'
            lq, gt = self.crop_and_flip([lq, gt], rng, where)
            if self.opt.get('key_crop'):
                sample['lq_key'] = to_tensor(self.crop_and_flip([lq_full], rng, where)[0])
        return dict(sample, lq=to_tensor(lq), gt=to_tensor(gt))

    def item_tasks(self) -> list[int]:
        """Task id of every index, without reading images (for the task-balanced sampler)."""
        return [self.task_to_id[self.pairs[i % len(self.pairs)][2]] for i in range(len(self))]

    def task_counts(self) -> dict[str, int]:
        """Number of pairs of each task."""
        tasks = np.array([p[2] for p in self.pairs])
        return {t: int((tasks == t).sum()) for t in self.tasks}
