"""Writing a setting's folder: each part's files (links or copies of the downloads, converted test images, MiOIR
synthesis), its meta files with their `# source:` lines, and the LMDB copies of every split.

A split's noisy16 parts (BSD68) draw from one numpy RandomState(TEST_NOISE_SEED) that the
SplitWriter holds, in the order its parts are written and, within a part, in sorted file order, as
AirNet/PromptIR's test.py draws from the global stream it seeds once: the files depend on that
order, and on nothing else (not on --seed).

SplitWriter writes one split under the setting folder and collects its meta lines; write_meta writes a meta file;
build_lmdbs adds `lmdb/<split>/` to a written setting folder.
"""
from __future__ import annotations

import os
import shutil
from os import path as osp

import numpy as np
from basicsr.utils import get_root_logger

from basicsr_tur.data.data_util import task_index
from basicsr_tur.data.paired_task_dataset import (
    FORMAT_PREFIX,
    PREPARE_FORMAT,
    SOURCE_PREFIX,
    read_meta_file,
    read_meta_header,
)
from basicsr_tur.data.synthetic_task_dataset import read_image_list
from basicsr_tur.prepare.images import (
    TEST_NOISE_SEED,
    TRANSFORMS,
    NoisyJob,
    TransformJob,
    job_transform,
    run_jobs,
    write_noisy,
)
from basicsr_tur.prepare.mioir import DEPTH_DIRS, MioJob, find_depth, job_mio
from basicsr_tur.prepare.plan import Item, PrepareError
from basicsr_tur.prepare.settings import SOURCES, Part, Setting, Source, clean_meta_name, meta_name, roots_of, splits_of
from basicsr_tur.utils.files import atomic_dir, atomic_write
from basicsr_tur.utils.lmdb_util import build_clean_lmdb, build_paired_lmdb
from basicsr_tur.utils.meta_file import format_meta_line


class SplitWriter:
    """Writes one split's files under the setting folder and collects its meta lines."""

    def __init__(self, setting_dir: str, raw: str, lq_root: str, gt_root: str, copy: bool) -> None:
        self.raw, self.copy = raw, copy
        self.lq_root, self.gt_root = osp.join(setting_dir, lq_root), osp.join(setting_dir, gt_root)
        self.owner: dict[str, str] = {}  # output file -> the source file it holds
        self.lines: list[tuple[str, str, str]] = []  # meta lines (lq, gt, task)
        self.clean: list[str] = []  # clean images of 'clean' parts, relative to the GT root
        self.sources: list[str] = []  # '# source:' line of each part
        self.clean_sources: list[str] = []
        # The BSD68 test noise: one stream for the split's noisy16 parts; the sigmas drawn so far.
        self.noise_stream = np.random.RandomState(TEST_NOISE_SEED)
        self.noise_sigmas: list[float] = []

    def claim(self, dst: str, src: str) -> bool:
        """Reserve an output path for src; False when it already holds src, an error when it holds another file."""
        if dst in self.owner:
            if self.owner[dst] != src:
                raise PrepareError(f'{self.owner[dst]} and {src} would both be written to {dst} '
                                   '(file names must be unique within a folder)')
            return False
        self.owner[dst] = src
        return True

    def link(self, src: str, dst: str) -> None:
        """Symlink dst -> src (relative, so the tree survives being moved with its raw folder), or copy with --copy."""
        if not self.claim(dst, src):
            return
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if self.copy:
            shutil.copyfile(src, dst)
        else:
            # <setting>.partial and <setting> are siblings, so the relative target stays right after the rename.
            os.symlink(osp.relpath(osp.abspath(src), osp.dirname(osp.abspath(dst))), dst)

    def line(self, lq_dst: str, gt_dst: str, task: str) -> tuple[str, str, str]:
        """Meta line of an output pair: paths relative to the split's LQ and GT roots."""
        return osp.relpath(lq_dst, self.lq_root), osp.relpath(gt_dst, self.gt_root), task

    def write_part(self, part: Part, items: list[Item], seed: int, workers: int) -> None:
        """Write one part's files and append its meta lines (each pair `part.repeat` times) and source line."""
        lq_out, gt_out = osp.join(self.lq_root, part.lq_out), osp.join(self.gt_root, part.gt_out)
        lines, jobs = [], []  # NoisyJob for noisy16, TransformJob for the kinds of TRANSFORMS
        dirs = ', '.join(dict.fromkeys(SOURCES[k].lq_dir for k in part.sources))
        if part.kind in ('mio', 'mio_test'):
            self._write_mio(part, items, seed, workers)
            self.sources.append(f'{", ".join(part.task)}: re-synthesised from {dirs} by scripts/prepare_data.py '
                                f'(MiOIR formulas of basicsr_tur/data/degradations.py, seed {seed})')
            return
        if part.kind == 'clean':
            for key, name, _ in items:
                dst = osp.join(gt_out, SOURCES[key].out_name(name) if SOURCES[key].out_name else name)
                self.link(osp.join(self.raw, SOURCES[key].lq_dir, name), dst)
                self.clean.append(osp.relpath(dst, self.gt_root))
            self.clean_sources.append(f'{", ".join(part.task)}: clean images of {dirs}, degraded on the fly by the '
                                      f'options (the authors list each {part.repeat} times per task)')
            return
        if part.kind == 'noisy16':  # the stream is drawn in this order (plan() sorts them too)
            items = sorted(items, key=lambda item: (item[0], item[1]))
        for key, lq, gt in items:
            source: Source = SOURCES[key]
            rename = source.out_name or (lambda rel: rel)
            src_lq = osp.join(self.raw, source.lq_dir, lq)
            if part.kind == 'link':
                lq_dst, gt_dst = osp.join(lq_out, rename(lq)), osp.join(gt_out, rename(gt))
                self.link(src_lq, lq_dst)
                self.link(osp.join(self.raw, source.gt_dir, gt), gt_dst)
            elif part.kind == 'noisy16':
                png = osp.splitext(rename(lq))[0] + '.png'
                lq_dst, gt_dst = osp.join(lq_out, png), osp.join(gt_out, png)
                new = self.claim(lq_dst, src_lq)
                write_gt = gt_dst if self.claim(gt_dst, src_lq) else ''
                if new:
                    jobs.append(NoisyJob(src=src_lq, lq_dst=lq_dst, gt_dst=write_gt,
                                         sigma=part.sigma))
            elif part.kind in TRANSFORMS:
                src_gt = osp.join(self.raw, source.gt_dir, gt)
                lq_dst = osp.join(lq_out, osp.splitext(rename(lq))[0] + '.png')
                gt_dst = osp.join(gt_out, osp.splitext(rename(gt))[0] + '.png')
                if self.claim(lq_dst, src_lq):
                    jobs.append(TransformJob(kind=part.kind, lq_src=src_lq, gt_src=src_gt, lq_dst=lq_dst,
                                             gt_dst=gt_dst if self.claim(gt_dst, src_gt) else ''))
            else:
                raise ValueError(f'unknown part kind {part.kind!r}')
            lines.append(self.line(lq_dst, gt_dst, part.task_of(lq)))
        if part.kind == 'noisy16':
            how = self._noise_source(part.sigma)
            write_noisy(jobs, self.noise_stream, f'{part.lq_out} (sigma {part.sigma:g})')
            self.noise_sigmas.append(part.sigma)
        else:
            run_jobs(job_transform, jobs, workers, f'{part.lq_out} ({part.kind})')
            how = {'link': 'linked as distributed', 'crop16': 'centre-cropped to multiples of 16',
                   'resize16': "resized as TransWeather's ValData",
                   'resize32': "resized as WGWS-Net's testing_model_Seting3.py scores them "
                               '(my_dataset_eval: bilinear, sides rounded down to multiples of 32; '
                               'rounded to 8 bits)',
                   'half_resize32': "resized as WGWS-Net's testing_model_Seting3.py scores them "
                                    '(my_dataset_eval_realH: halved with PIL bilinear, then '
                                    'bilinear, sides rounded down to multiples of 32; rounded to '
                                    '8 bits)'}[part.kind]
        self.lines += lines * part.repeat
        tasks = ', '.join(dict.fromkeys(task for _, _, task in lines))
        note = f'; {part.note}' if part.note else ''
        self.sources.append(f'{tasks}: {dirs} {how}{note}')

    def _noise_source(self, sigma: float) -> str:
        """How a noisy16 part is written, for its `# source:` line, with where its draws are."""
        where = (f'after sigma {", ".join(f"{s:g}" for s in self.noise_sigmas)} of this split'
                 if self.noise_sigmas else 'from its start')
        return (f'centre-cropped to multiples of 16 + Gaussian noise of sigma {sigma:g} drawn '
                "once, seeded as AirNet/PromptIR's test.py (numpy seed 0, sigma order, sorted file "
                f'order): one RandomState({TEST_NOISE_SEED}) stream, drawn {where}, images in '
                'sorted order (theirs: os.listdir order), truncated to 8 bits; --seed does not '
                'apply')

    def _write_mio(self, part: Part, items: list[Item], seed: int, workers: int) -> None:
        """MiOIR sets: every GT degraded once per task (then cut into sub-images for training)."""
        lq_out, gt_out = osp.join(self.lq_root, part.lq_out), osp.join(self.gt_root, part.gt_out)
        jobs, no_depth = [], []
        for key, name, _ in items:
            depth = find_depth(self.raw, key, name) if 'haze' in part.task else ''
            if 'haze' in part.task and not depth:
                no_depth.append(name)
            jobs.append(MioJob(kind=part.kind, src=osp.join(self.raw, SOURCES[key].lq_dir, name), name=name,
                               depth=depth, tasks=part.task, lq_root=lq_out, gt_root=gt_out, crop=part.crop,
                               seed=seed, key=key))
        if no_depth:
            get_root_logger().warning(
                f'{len(no_depth)} of {len(items)} images (e.g. {no_depth[0]}) have no depth map under '
                f'{osp.join(self.raw, DEPTH_DIRS.get(items[0][0], ""))}; haze uses the vertical-ramp fallback depth')
        results = run_jobs(job_mio, jobs, workers, f'MiOIR {part.kind}')
        gt_names = []
        for (key, name, _), outs in zip(items, results):
            if part.kind == 'mio_test':
                self.link(osp.join(self.raw, SOURCES[key].lq_dir, name), osp.join(gt_out, name))
                gt_names.append((outs[0], name))
            else:
                gt_names += [(sub, sub) for sub in outs]
        # MiOIR's mixed meta file: the per-task lists concatenated, in the order of the tasks.
        for task in part.task:
            self.lines += [self.line(osp.join(lq_out, task, lq), osp.join(gt_out, gt), task)
                           for lq, gt in gt_names] * part.repeat


def source_header(sources: list[str], version: int | None = PREPARE_FORMAT) -> str:
    """The `# prepared: format N` line (none for version None) and the `# source: ...` lines that
    open a meta file (read back by read_meta_header; the datasets warn of an older format)."""
    mark = f'{FORMAT_PREFIX} {version}\n' if version is not None else ''
    return mark + ''.join(f'{SOURCE_PREFIX} {source}\n' for source in sources)


def write_meta(path: str, rows: list[tuple[str, ...]], sources: list[str]) -> None:
    """Write the format line and the `# source: ...` lines, then one line per row
    (utils/meta_file.format_meta_line, so any file name survives), its fields '/'-separated paths
    (or a task name): `lq gt task` for a pair meta file, `name` for a clean list."""
    atomic_write(path, source_header(sources)
                 + ''.join(format_meta_line([field.replace(os.sep, '/') for field in row]) for row in rows))


def prepend_sources(path: str, meta_file: str) -> None:
    """Put the format line and the `# source:` lines of meta_file at the top of the text file path
    (an LMDB's meta.txt), as they are there."""
    with open(path, encoding='utf-8') as f:
        body = f.read()
    sources, version = read_meta_header(meta_file)
    atomic_write(path, source_header(sources, version) + body)


def build_lmdbs(setting_dir: str, setting: Setting) -> None:
    """<setting>/lmdb/<split>/{lq.lmdb, gt.lmdb, meta.txt} from the split's meta file (and <split>_clean/ with
    gt.lmdb and meta.txt from its clean list), format and `# source:` lines kept, written whole or
    not at all (utils/files.atomic_dir: raises FileExistsError when <setting>/lmdb exists)."""
    with atomic_dir(osp.join(setting_dir, 'lmdb')) as tmp:
        index = task_index(list(setting.tasks), 'prepare_data')
        for split in splits_of(setting):
            lq_root, gt_root = (osp.join(setting_dir, r) for r in roots_of(setting, split))
            meta = osp.join(setting_dir, meta_name(split))
            build_paired_lmdb(read_meta_file(meta, index), lq_root, gt_root, osp.join(tmp, split))
            prepend_sources(osp.join(tmp, split, 'meta.txt'), meta)
            clean_meta = osp.join(setting_dir, clean_meta_name(split))
            if osp.isfile(clean_meta):
                build_clean_lmdb(read_image_list(clean_meta), gt_root, osp.join(tmp, f'{split}_clean'))
                prepend_sources(osp.join(tmp, f'{split}_clean', 'meta.txt'), clean_meta)
