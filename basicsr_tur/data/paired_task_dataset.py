"""Paired, task-labelled images (LQ, GT, task) from a meta file or per-task folders, on disk or LMDB."""
from __future__ import annotations

from os import path as osp

import numpy as np
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_tur.data.data_util import (
    TaskDataset,
    list_images,
    lookup_task,
    raise_problems,
    to_tensor,
)
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.lmdb_util import check_lmdb_keys
from basicsr_tur.utils.meta_file import read_meta_rows
from basicsr_tur.utils.option_checks import PATH, Kind
from basicsr_tur.utils.text_file import read_text_lines


def read_meta_entries(meta_file: str, index: dict[str, int] | None) -> list[tuple[int, str, str, str]]:
    """(line number, lq_path, gt_path, task) of each line of a pair meta file (paths relative to dataroot_lq /
    dataroot_gt; the line format of utils/meta_file.py: names with spaces or a leading '#' are quoted, and an
    unquoted field starting with '#' starts a comment). Task names are checked against `index` (None: any name,
    for tools that take the tasks from the file)."""
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'meta file not found: {meta_file}')
    entries = []
    for line_no, fields in read_meta_rows(meta_file):
        if len(fields) != 3:
            raise DataError(f'{meta_file} line {line_no}: expected "lq_path gt_path task", got {len(fields)} '
                             f'fields {fields}')
        if index is not None:
            lookup_task(fields[2], index, f'{meta_file} line {line_no}')
        entries.append((line_no, fields[0], fields[1], fields[2]))
    if not entries:
        raise DataError(f'{meta_file}: no image pairs listed')
    return entries


def read_meta_file(meta_file: str, index: dict[str, int] | None) -> list[tuple[str, str, str]]:
    """(lq_path, gt_path, task) of each line of a pair meta file (see read_meta_entries)."""
    return [(lq, gt, task) for _, lq, gt, task in read_meta_entries(meta_file, index)]


SOURCE_PREFIX = '# source:'
# scripts/prepare_data.py marks the meta files it writes with the format of its output, in a
# `# prepared: format N` line beside their `# source:` lines; one with source lines and no such
# line was written before the mark existed (format 1).
FORMAT_PREFIX = '# prepared: format'
PREPARE_FORMAT = 2
# What each format changed in the prepared images: a folder of an older format misses these.
FORMAT_CHANGES = {
    2: "BSD68 test noise seeded as AirNet/PromptIR's test.py; real-weather test pairs resized as "
       "WGWS-Net's test code",
}


def read_meta_header(meta_file: str) -> tuple[list[str], int | None]:
    """(the texts of the `# source: ...` lines, N of the `# prepared: format N` line or None) of
    the leading comment block of a meta file; the lines below it are not read."""
    sources, version = [], None
    for line in read_text_lines(meta_file):
        if not line.startswith('#'):
            break
        if line.startswith(SOURCE_PREFIX):
            sources.append(line[len(SOURCE_PREFIX):].strip())
        elif line.startswith(FORMAT_PREFIX):
            text = line[len(FORMAT_PREFIX):].strip()
            version = int(text) if text.isdigit() else 0  # unreadable: older than any format
    return sources, version


def read_meta_sources(meta_file: str) -> list[str]:
    """Where a meta file's images come from: the texts of the `# source: ...` lines of its leading comment block.

    scripts/prepare_data.py writes one such line per part at the top of the file (e.g. MiOIR's released test set,
    linked, or the same set re-synthesised), so that test.py can say which was scored; the pairs below are not read.
    """
    return read_meta_header(meta_file)[0]


def old_format_note(meta_file: str, sources: list[str], version: int | None) -> str | None:
    """Why a meta file written by an older scripts/prepare_data.py (source lines, and no format
    line or an older format) is not scored as the current protocol, in one line; None for a
    current one or a hand-written one (no source lines)."""
    if not sources or (version is not None and version >= PREPARE_FORMAT):
        return None
    old = version or 1
    missed = ', '.join(f'format {n} ({what})' for n, what in sorted(FORMAT_CHANGES.items())
                       if n > old)
    return (f'{meta_file}: written by an earlier scripts/prepare_data.py (format {old}); it misses '
            f'{missed}, so it is not scored as the current protocol scores: re-run `python '
            'scripts/prepare_data.py <setting> --root <new folder>` and point the options there')


def warn_old_format(meta_file: str, header: tuple[list[str], int | None] | None = None) -> None:
    """Log old_format_note as one warning (basicsr logger) when there is one; header:
    read_meta_header(meta_file) when the caller has it."""
    note = old_format_note(meta_file, *(header or read_meta_header(meta_file)))
    if note:
        get_root_logger().warning(note)


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
            raise DataError(f"LQ folder of task '{task}' holds no images: {lq_dir}")
        for name in names:
            gt_rel = osp.join(gt_sub, name)
            if not osp.isfile(osp.join(gt_root, gt_rel)):
                raise FileNotFoundError(f'no GT partner for {osp.join(lq_dir, name)}: expected '
                                        f'{osp.join(gt_root, gt_rel)}')
            pairs.append((osp.join(task, name), gt_rel, task))
    return pairs


@DATASET_REGISTRY.register()
class PairedTaskDataset(TaskDataset):
    """Paired LQ/GT images labelled with their task; returns lq, gt (C, H, W), task_id, task, lq_path, gt_path and
    out_name (the stem its outputs are saved under, unique within its task: see data_util.output_names).

    Options:
        tasks: the setting's task names (filled from the top-level `tasks`); a task's id is its position.
        dataroot_lq, dataroot_gt: image roots (folders, or `.lmdb` folders with io_backend type lmdb).
        meta_file: lines `lq_path gt_path task` relative to the roots ('# source: ...' lines say where the images
            come from, kept as `self.source`); without it, per-task folders are scanned: dataroot_lq/<task>/NAME
            pairs with dataroot_gt/<task>/NAME or dataroot_gt/NAME.
        io_backend: {type: disk} or {type: lmdb} (the LMDB roots are taken from dataroot_lq/gt).
        check_images: paths (default: every listed file must exist when the dataset is built) or headers (also
            read every header: LQ/GT sizes must agree, training images must be at least gt_size).
        gt_size: crop size for training; none for validation. use_hflip, use_rot: dihedral augmentation.
        dataset_enlarge_ratio: training length multiplier (each repeat draws its own crop and flips).
        key_crop: also return `lq_key`, a second crop of the same degraded image (AirNet's contrastive key).
        seed: base of the per-sample generators (defaults to the run's manual_seed).
    Randomness of sample `index` in epoch `e` comes only from a generator seeded by (seed, e, index).
    """

    OPTION_KEYS: dict[str, Kind] = {
        **TaskDataset.OPTION_KEYS,
        'dataroot_lq': PATH.doc('folder (or .lmdb) of the degraded images'),
    }

    def __init__(self, opt: dict) -> None:
        super().__init__(opt, {'lq': 'dataroot_lq', 'gt': 'dataroot_gt'})
        self.lq_root, self.gt_root = opt['dataroot_lq'], opt['dataroot_gt']
        meta_file = opt.get('meta_file')
        if meta_file:
            entries = read_meta_entries(meta_file, self.task_to_id)
            self.pairs = [(lq, gt, task) for _, lq, gt, task in entries]
            labels = [f'line {line_no}' for line_no, *_ in entries]
            header = read_meta_header(meta_file)
            self.source = '; '.join(header[0])
            warn_old_format(meta_file, header)
        else:
            self.pairs = scan_task_folders(self.lq_root, self.gt_root, self.tasks)
            labels = [''] * len(self.pairs)
            self.source = ''
        if self.io_backend['type'] == 'lmdb':  # x.png and x.jpg have one key: one would be served for the other
            check_lmdb_keys([lq for lq, _, _ in self.pairs], f"{self.where}: LQ images of {meta_file or self.lq_root}")
            check_lmdb_keys([gt for _, gt, _ in self.pairs], f"{self.where}: GT images of {meta_file or self.gt_root}")
        sizes = self.check_files([(key, rel, label) for (lq, gt, _), label in zip(self.pairs, labels)
                                  for key, rel in (('lq', lq), ('gt', gt))], meta_file)
        if sizes:
            self._check_pair_sizes(sizes, labels)
        self.name_outputs([(task, lq) for lq, _, task in self.pairs])
        self.num_items = len(self.pairs)

    def _check_pair_sizes(self, sizes: dict, labels: list[str]) -> None:
        """One error listing every pair whose LQ and GT headers give different sizes."""
        def size(key: str, rel: str) -> str:
            return 'x'.join(map(str, sizes[(key, rel)]))

        mismatched = [f"{label + ': ' if label else ''}{osp.join(self.lq_root, lq)} is {size('lq', lq)}, "
                      f"{osp.join(self.gt_root, gt)} is {size('gt', gt)}"
                      for (lq, gt, _), label in zip(self.pairs, labels) if sizes[('lq', lq)] != sizes[('gt', gt)]]
        raise_problems(self.where, f'{len(mismatched)} LQ/GT size mismatches', mismatched)

    def sample_files(self, index: int) -> str:
        lq_rel, gt_rel, _ = self.pairs[index % len(self.pairs)]
        return f'{osp.join(self.lq_root, lq_rel)} (GT {osp.join(self.gt_root, gt_rel)})'

    def load_sample(self, index: int, epoch: int) -> dict:
        lq_rel, gt_rel, task = self.pairs[index % len(self.pairs)]
        lq = self.read(self.lq_root, lq_rel, 'lq')
        gt = self.read(self.gt_root, gt_rel, 'gt')
        lq_path, gt_path = osp.join(self.lq_root, lq_rel), osp.join(self.gt_root, gt_rel)
        if lq.shape != gt.shape:
            raise DataError(f'{self.where}: LQ/GT size mismatch: {lq_path} is {lq.shape[0]}x{lq.shape[1]}, '
                             f'{gt_path} is {gt.shape[0]}x{gt.shape[1]}')
        sample = {'task_id': self.task_to_id[task], 'task': task, 'lq_path': lq_path, 'gt_path': gt_path,
                  'out_name': self.output_name(task, lq_rel)}
        if self.opt.get('phase') == 'train':
            rng = self.generator(index, epoch)
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
