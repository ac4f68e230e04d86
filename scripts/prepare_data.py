"""Prepare one of the paper's five all-in-one settings from the datasets as their authors distribute them.

  python scripts/prepare_data.py mio7|aio3|aio5|allweather|realweather [--root datasets] [--raw RAW] [--lmdb]
                                 [--seed N] [--workers N] [--copy]

Reads the downloads under --raw (default <root>/raw, layouts in datasets/README.md), checks every folder, pairs the
files by each dataset's naming rule (basicsr_tur/data/settings.py) and checks that partners have the same size,
then writes <root>/<setting>/: the training and test pairs where the options read them (per-file symlinks into the
raw folder, or copies with --copy; synthesized and resized images as PNG), the meta files `meta_train.txt` and
`meta_test_<set>.txt` (lines `lq_path gt_path task`, and `# source: ...` lines saying where each part's images come
from, which test.py prints), `meta_train_clean.txt` listing the clean images the options degrade on the fly (aio3,
aio5 denoising), and with --lmdb `lmdb/<split>/{lq.lmdb,gt.lmdb,meta.txt}` (`lmdb/train_clean/{gt.lmdb,meta.txt}`).
Synthesized images (MiOIR degradations, BSD68 noise) are drawn once from generators seeded by (--seed, dataset,
task, file name), so a rebuild gives the same files whatever the worker count. When MiOIR's released degraded test
set (MiO_test/single_indis/<task>/) is under the raw folder, mio7 links it instead of re-synthesising it. Everything
is written under <root>/<setting>.partial and renamed when complete; a failure removes it. --lmdb on an existing
setting folder without lmdb/ adds the LMDBs only.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import shutil
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from multiprocessing import Pool
from os import path as osp

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.data.data_util import IMG_EXTENSIONS, task_index, write_png
from basicsr_tur.data.degradations import degrade
from basicsr_tur.data.paired_task_dataset import SOURCE_PREFIX, read_meta_file, read_meta_sources
from basicsr_tur.data.settings import (
    SETTINGS,
    SOURCES,
    NamingError,
    Part,
    Setting,
    Source,
    clean_meta_name,
    meta_name,
    mio_sub_name,
    mio_windows,
)
from basicsr_tur.data.synthetic_task_dataset import degradation_specs, read_image_list
from basicsr_tur.utils.files import atomic_write
from basicsr_tur.utils.meta_file import format_meta_line

MAX_LISTED = 10  # problems quoted in one error; the rest are counted
DEPTH_DIRS = {'df2k': 'DF2K/depth', 'mio_test': 'MiO_test/original/depth'}


class PrepareError(ValueError):
    """The downloads do not have the layout, naming or sizes a setting needs."""


def _raise_problems(what: str, problems: list[str]) -> None:
    """Raise one PrepareError quoting the first problems and counting the rest."""
    if problems:
        more = f'\n  ... and {len(problems) - MAX_LISTED} more' if len(problems) > MAX_LISTED else ''
        raise PrepareError(f'{what}: {len(problems)} problem(s):\n  ' + '\n  '.join(problems[:MAX_LISTED]) + more)


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """Generator of one synthesized file: a function of the seed and its keys (dataset, task, name) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(zlib.crc32(k.encode()) for k in keys)]))


# --- Reading the downloads -----------------------------------------------------------------------------------------

def _is_image(rel: str) -> bool:
    return rel.lower().endswith(IMG_EXTENSIONS)


def scan_images(folder: str, pattern: str = '*') -> list[str]:
    """Sorted '/'-separated paths, relative to folder, of the image files matching pattern ('*', '*/blur/*', '**/*')."""
    found = glob.glob(osp.join(glob.escape(folder), pattern), recursive=True)
    rels = (osp.relpath(p, folder).replace(os.sep, '/') for p in found if osp.isfile(p))
    return sorted(r for r in rels if _is_image(r))


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image from its header (PIL reads no pixels here)."""
    with Image.open(path) as img:
        return img.size[1], img.size[0]


def source_dirs(part: Part) -> list[str]:
    """The folders (relative to the raw folder) of a part's sources."""
    return [d for key in part.sources for d in (SOURCES[key].lq_dir, SOURCES[key].gt_dir) if d]


def resolve(raw: str, part: Part) -> Part:
    """The part to write: its `released` alternative (the authors' own images) when all its folders exist."""
    if part.released and all(osp.isdir(osp.join(raw, d)) for d in source_dirs(part.released)):
        return part.released
    return part


def missing_folders(raw: str, setting: Setting) -> list[str]:
    """'folder: expected layout' for every source folder of the setting that does not exist."""
    missing = []
    keys = dict.fromkeys(k for part in _all_parts(setting) for k in resolve(raw, part).sources)
    for key in keys:
        source = SOURCES[key]
        for folder in dict.fromkeys(d for d in (source.lq_dir, source.gt_dir) if d):
            if not osp.isdir(osp.join(raw, folder)):
                missing.append(f'missing folder {osp.join(raw, folder)}: expected {source.layout} '
                               f'(datasets/README.md)')
    return missing


def lq_names(raw: str, key: str) -> list[str]:
    """LQ paths of a source, relative to its LQ folder: from the authors' list file when it defines the set."""
    source = SOURCES[key]
    lq_dir = osp.join(raw, source.lq_dir)
    list_file = osp.join(raw, source.list_file) if source.list_file else ''
    if list_file and osp.isfile(list_file):
        with open(list_file, encoding='utf-8') as f:
            lines = [line for line in f if line.strip()]
        names, problems = [], []
        for line_no, line in enumerate(lines, 1):
            try:
                name = source.list_entry(line)
            except NamingError as err:
                problems.append(f'{list_file} line {line_no}: {err}')
                continue
            if not osp.isfile(osp.join(lq_dir, name)):
                problems.append(f'{list_file} line {line_no} lists {osp.join(lq_dir, name)}, which does not exist')
            names.append(name)
        _raise_problems(f'{key} list {list_file}', problems)
    elif source.list_required:
        raise PrepareError(f'missing list file {list_file}: expected {source.layout}')
    else:
        names = scan_images(lq_dir, source.glob)
    if not names:
        raise PrepareError(f'no images in {lq_dir}: expected {source.layout}')
    return names


def pair_source(raw: str, key: str) -> list[tuple[str, str]]:
    """Checked (lq, gt) paths of a paired source, relative to its folders: partner found, same size."""
    source = SOURCES[key]
    lq_dir, gt_dir = osp.join(raw, source.lq_dir), osp.join(raw, source.gt_dir)
    pairs, problems = [], []
    sizes: dict[str, tuple[int, int] | None] = {}

    def size_of(path: str) -> tuple[int, int] | None:
        if path not in sizes:
            try:
                sizes[path] = image_size(path)
            except OSError as err:
                sizes[path] = None
                problems.append(f'cannot read {path}: {err}')
        return sizes[path]

    for lq in lq_names(raw, key):
        lq_path = osp.join(lq_dir, lq)
        try:
            candidates = source.rule(lq)
        except NamingError as err:
            problems.append(f'{lq_path}: {err}')
            continue
        gt = next((c for c in candidates if osp.isfile(osp.join(gt_dir, c))), None)
        if gt is None:
            expected = ' or '.join(osp.join(gt_dir, c) for c in candidates)
            problems.append(f'no GT partner for {lq_path}: expected {expected}')
            continue
        gt_path = osp.join(gt_dir, gt)
        lq_size, gt_size = size_of(lq_path), size_of(gt_path)
        if lq_size and gt_size and lq_size != gt_size:
            problems.append(f'LQ/GT size mismatch: {lq_path} is {lq_size[0]}x{lq_size[1]}, '
                            f'{gt_path} is {gt_size[0]}x{gt_size[1]}')
            continue
        pairs.append((lq, gt))
    _raise_problems(f'{key} ({source.layout})', problems)
    return pairs


def _all_parts(setting: Setting) -> list[Part]:
    """Training and test parts of a setting."""
    return [*setting.train, *(p for parts in setting.tests.values() for p in parts)]


def splits_of(setting: Setting) -> dict[str, tuple[Part, ...]]:
    """The setting's splits in writing order: 'train', then 'test_<name>' per test set."""
    return {'train': setting.train, **{f'test_{name}': parts for name, parts in setting.tests.items()}}


def roots_of(setting: Setting, split: str) -> tuple[str, str]:
    """LQ and GT roots of a split, relative to the setting folder."""
    return setting.roots['train' if split == 'train' else 'test']


def plan(raw: str, setting: Setting) -> dict[str, list[tuple[Part, list[tuple[str, str, str]]]]]:
    """Check the downloads and list each part's items (source key, LQ path, GT path or '') before writing anything."""
    _raise_problems(f'layout under {raw}', missing_folders(raw, setting))
    cache: dict[str, list[tuple[str, str]]] = {}
    out = {}
    for split, parts in splits_of(setting).items():
        out[split] = []
        for original in parts:
            part = resolve(raw, original)
            items = []
            for key in part.sources:
                if key not in cache:
                    paired = SOURCES[key].rule is not None
                    cache[key] = pair_source(raw, key) if paired else [(n, '') for n in lq_names(raw, key)]
                items += [(key, lq, gt) for lq, gt in cache[key]]
            if part.kind == 'mio':
                problems = []
                for key, name, _ in items:
                    path = osp.join(raw, SOURCES[key].lq_dir, name)
                    h, w = image_size(path)
                    if min(h, w) < part.crop[0]:
                        problems.append(f'{path} is {h}x{w}, smaller than the {part.crop[0]}x{part.crop[0]} '
                                        'MiOIR sub-image')
                _raise_problems('MiOIR training images', problems)
            if callable(part.task):
                problems = []
                for key, lq, _ in items:
                    try:
                        part.task_of(lq)
                    except NamingError as err:
                        problems.append(f'{osp.join(raw, SOURCES[key].lq_dir, lq)}: {err}')
                _raise_problems(f'tasks of {", ".join(part.sources)}', problems)
            if part is not original:  # a released set must hold every task of the set it replaces
                found = {part.task_of(lq) for _, lq, _ in items}
                lacking = [t for t in original.task if t not in found]
                if lacking:
                    where = osp.join(raw, SOURCES[part.sources[0]].lq_dir)
                    raise PrepareError(f'{where} has no images of task(s) {", ".join(lacking)}: expected '
                                       f'{SOURCES[part.sources[0]].layout} for each of {", ".join(original.task)}')
            out[split].append((part, items))
    return out


# --- Image jobs (top-level functions, so that a worker pool can run them) ------------------------------------------

def read_rgb(path: str) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise PrepareError(f'cannot read image {path} (missing, corrupt or not an image)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop16(img: np.ndarray) -> np.ndarray:
    """Centre crop to multiples of 16, as AirNet/PromptIR's crop_img(base=16)."""
    h, w = img.shape[:2]
    ch, cw = h % 16, w % 16
    return img[ch // 2:h - ch + ch // 2, cw // 2:w - cw + cw // 2]


def transweather_size(w: int, h: int) -> tuple[int, int]:
    """(width, height) TransWeather's ValData resizes a w x h test image to: long side <= 1024, sides x16 (ceil)."""
    if h > w and h > 1024:
        w, h = int(math.ceil(w * 1024 / h)), 1024
    elif h <= w and w > 1024:
        w, h = 1024, int(math.ceil(h * 1024 / w))
    return int(16 * math.ceil(w / 16.0)), int(16 * math.ceil(h / 16.0))


def resize16(img: np.ndarray) -> np.ndarray:
    """Resize as TransWeather's ValData (PIL ANTIALIAS, i.e. Lanczos); sizes already right are kept as they are."""
    h, w = img.shape[:2]
    size = transweather_size(w, h)
    return img if size == (w, h) else np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS))


def load_depth(path: str, shape: tuple[int, int]) -> np.ndarray:
    """Depth (H, W) for haze from <stem>.npy, or MiOIR's .mat ('data_obj', predicted at 1/4 size), resized to shape."""
    try:
        if path.endswith('.npy'):
            depth = np.load(path)
        else:
            from scipy.io import loadmat
            depth = loadmat(path)['data_obj']
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        raise PrepareError(f'cannot read depth map {path}: {err!r}') from err
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise PrepareError(f'depth map {path} has shape {depth.shape}; expected (H, W)')
    if depth.shape != shape:  # MiOIR resizes its quarter-size prediction by cv2.resize (bilinear)
        depth = cv2.resize(depth, (shape[1], shape[0]))
    return depth


def find_depth(raw: str, key: str, name: str) -> str:
    """Depth file of a MiOIR image, or '' when there is none (haze then uses the vertical-ramp fallback)."""
    if key not in DEPTH_DIRS:
        return ''
    stem = osp.splitext(name)[0]
    folder = osp.join(raw, DEPTH_DIRS[key])
    for rel in (f'{stem}.npy', f'{stem}.mat', f'LR_tensor/{stem}/predict_depth.mat'):
        if osp.isfile(osp.join(folder, rel)):
            return osp.join(folder, rel)
    return ''


# AirNet/PromptIR's DenoiseTestDataset: np.clip(clean + randn * sigma, 0, 255).astype(np.uint8) on the cropped image.
TEST_NOISE = {'type': 'noise', 'quantize': 'truncate'}


def job_noisy(job: tuple) -> None:
    """Write one noisy test pair cropped to multiples of 16: (clean path, LQ path, GT path or '', sigma, keys)."""
    src, lq_dst, gt_dst, sigma, seed, keys = job
    img = crop16(read_rgb(src))
    if gt_dst:
        write_png(gt_dst, img)
    noisy, _ = degrade(img.astype(np.float32) / 255.0, dict(TEST_NOISE, sigma=sigma), rng_for(seed, *keys))
    write_png(lq_dst, noisy)


def job_transform(job: tuple) -> None:
    """Write a test pair cropped (crop16) or resized (resize16): (kind, LQ src, GT src, LQ dst, GT dst or '')."""
    kind, lq_src, gt_src, lq_dst, gt_dst = job
    fn = crop16 if kind == 'crop16' else resize16
    write_png(lq_dst, fn(read_rgb(lq_src)))
    if gt_dst:
        write_png(gt_dst, fn(read_rgb(gt_src)))


def job_mio(job: tuple) -> list[str]:
    """Degrade one GT once per task; 'mio' cuts GT and LQ into sub-images. Returns the written GT-relative names."""
    kind, src, name, depth_path, tasks, lq_root, gt_root, crop, seed, key = job
    gt = read_rgb(src)
    h, w = gt.shape[:2]
    depth = load_depth(depth_path, (h, w)) if depth_path else None
    specs = degradation_specs(list(tasks), None, 'MiOIR degradations')
    gt_float = gt.astype(np.float32) / 255.0
    lqs = {}
    for task in tasks:
        lq, _ = degrade(gt_float, specs[task], rng_for(seed, key, task, name), depth=depth)
        lqs[task] = np.clip(np.rint(lq * 255.0), 0, 255).astype(np.uint8)
    if kind == 'mio_test':
        out = osp.splitext(name)[0] + '.png'
        for task, lq in lqs.items():
            write_png(osp.join(lq_root, task, out), lq)
        return [out]
    size, step, thres = crop
    subs = []
    for index, (top, left) in enumerate(mio_windows(h, w, size, step, thres), 1):
        sub = mio_sub_name(name, index)
        write_png(osp.join(gt_root, sub), gt[top:top + size, left:left + size])
        for task, lq in lqs.items():
            write_png(osp.join(lq_root, task, sub), lq[top:top + size, left:left + size])
        subs.append(sub)
    return subs


def run_jobs(fn: Callable[[tuple], object], jobs: list[tuple], workers: int, desc: str) -> list:
    """Run fn over jobs in order, in a pool of `workers` processes (in this process when workers <= 1)."""
    if not jobs:
        return []
    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit='image')]
    with Pool(workers) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit='image'))


# --- Writing a setting ---------------------------------------------------------------------------------------------

class SplitWriter:
    """Writes one split's files under the setting folder and collects its meta lines."""

    def __init__(self, setting_dir: str, raw: str, lq_root: str, gt_root: str, copy: bool) -> None:
        self.raw, self.copy = raw, copy
        self.lq_root, self.gt_root = osp.join(setting_dir, lq_root), osp.join(setting_dir, gt_root)
        self.owner: dict[str, str] = {}  # output file -> the source file it holds
        self.lines: list[tuple[str, str, str]] = []
        self.clean: list[str] = []  # clean images of 'clean' parts, relative to the GT root
        self.sources: list[str] = []  # '# source:' line of each part
        self.clean_sources: list[str] = []

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

    def write_part(self, part: Part, items: list[tuple[str, str, str]], seed: int, workers: int) -> None:
        """Write one part's files and append its meta lines (each pair `part.repeat` times) and source line."""
        lq_out, gt_out = osp.join(self.lq_root, part.lq_out), osp.join(self.gt_root, part.gt_out)
        lines, jobs = [], []
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
                    jobs.append((src_lq, lq_dst, write_gt, part.sigma, seed, (key, f'noise{part.sigma:g}', lq)))
            elif part.kind in ('crop16', 'resize16'):
                src_gt = osp.join(self.raw, source.gt_dir, gt)
                lq_dst = osp.join(lq_out, osp.splitext(rename(lq))[0] + '.png')
                gt_dst = osp.join(gt_out, osp.splitext(rename(gt))[0] + '.png')
                if self.claim(lq_dst, src_lq):
                    jobs.append((part.kind, src_lq, src_gt, lq_dst, gt_dst if self.claim(gt_dst, src_gt) else ''))
            else:
                raise ValueError(f'unknown part kind {part.kind!r}')
            lines.append(self.line(lq_dst, gt_dst, part.task_of(lq)))
        if part.kind == 'noisy16':
            run_jobs(job_noisy, jobs, workers, f'{part.lq_out} (sigma {part.sigma:g})')
        elif jobs:
            run_jobs(job_transform, jobs, workers, f'{part.lq_out} ({part.kind})')
        self.lines += lines * part.repeat
        tasks = ', '.join(dict.fromkeys(task for _, _, task in lines))
        how = {'link': 'linked as distributed', 'crop16': 'centre-cropped to multiples of 16',
               'resize16': "resized as TransWeather's ValData",
               'noisy16': f'centre-cropped to multiples of 16 + Gaussian noise of sigma {part.sigma:g} drawn once '
                          f'(truncated to 8 bits as AirNet/PromptIR, seed {seed})'}[part.kind]
        self.sources.append(f'{tasks}: {dirs} {how}')

    def _write_mio(self, part: Part, items: list[tuple[str, str, str]], seed: int, workers: int) -> None:
        """MiOIR sets: every GT degraded once per task (then cut into sub-images for training)."""
        lq_out, gt_out = osp.join(self.lq_root, part.lq_out), osp.join(self.gt_root, part.gt_out)
        jobs, no_depth = [], []
        for key, name, _ in items:
            depth = find_depth(self.raw, key, name) if 'haze' in part.task else ''
            if 'haze' in part.task and not depth:
                no_depth.append(name)
            jobs.append((part.kind, osp.join(self.raw, SOURCES[key].lq_dir, name), name, depth, part.task, lq_out,
                         gt_out, part.crop, seed, key))
        if no_depth:
            from basicsr.utils import get_root_logger
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


def _source_header(sources: list[str]) -> str:
    """The `# source: ...` lines that open a meta file (read back by read_meta_sources)."""
    return ''.join(f'{SOURCE_PREFIX} {source}\n' for source in sources)


def write_meta(path: str, rows: list[tuple[str, ...]], sources: list[str]) -> None:
    """Write the `# source: ...` lines, then one line per row (utils/meta_file.format_meta_line, so any file name
    survives), its fields '/'-separated paths (or a task name): `lq gt task` for a pair meta file, `name` for a
    clean list."""
    atomic_write(path, _source_header(sources)
                 + ''.join(format_meta_line([field.replace(os.sep, '/') for field in row]) for row in rows))


def _prepend_sources(path: str, meta_file: str) -> None:
    """Put the `# source:` lines of meta_file at the top of the text file path (an LMDB's meta.txt)."""
    with open(path, encoding='utf-8') as f:
        body = f.read()
    atomic_write(path, _source_header(read_meta_sources(meta_file)) + body)


def build_lmdbs(setting_dir: str, setting: Setting) -> None:
    """<setting>/lmdb/<split>/{lq.lmdb, gt.lmdb, meta.txt} from the split's meta file (and <split>_clean/ with
    gt.lmdb and meta.txt from its clean list), `# source:` lines kept, written atomically."""
    from basicsr_tur.utils.lmdb_util import build_clean_lmdb, build_paired_lmdb
    out = osp.join(setting_dir, 'lmdb')
    tmp = out + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        index = task_index(list(setting.tasks), 'prepare_data')
        for split in splits_of(setting):
            lq_root, gt_root = (osp.join(setting_dir, r) for r in roots_of(setting, split))
            meta = osp.join(setting_dir, meta_name(split))
            build_paired_lmdb(read_meta_file(meta, index), lq_root, gt_root, osp.join(tmp, split))
            _prepend_sources(osp.join(tmp, split, 'meta.txt'), meta)
            clean_meta = osp.join(setting_dir, clean_meta_name(split))
            if osp.isfile(clean_meta):
                build_clean_lmdb(read_image_list(clean_meta), gt_root, osp.join(tmp, f'{split}_clean'))
                _prepend_sources(osp.join(tmp, f'{split}_clean', 'meta.txt'), clean_meta)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def summarize(setting_dir: str, setting: Setting) -> dict[str, dict[str, tuple[int, int]]]:
    """{split: {task: (distinct pairs, meta lines)}} read back from the meta files; a task degraded on the fly
    counts its clean images and, as lines, the samples an epoch (each image `repeat` times per task)."""
    index = task_index(list(setting.tasks), 'prepare_data')
    out = {}
    for split, parts in splits_of(setting).items():
        pairs = read_meta_file(osp.join(setting_dir, meta_name(split)), index)
        lines = Counter(task for _, _, task in pairs)
        distinct = Counter(task for _, _, task in set(pairs))
        clean_meta = osp.join(setting_dir, clean_meta_name(split))
        if osp.isfile(clean_meta):
            n = len(read_image_list(clean_meta))
            for part in parts:
                for task in part.task if part.kind == 'clean' else ():
                    distinct[task], lines[task] = n, n * part.repeat
        out[split] = {task: (distinct[task], lines[task]) for task in setting.tasks if lines[task]}
    return out


def prepare(name: str, root: str, raw: str | None = None, seed: int = 2025, lmdb: bool = False, copy: bool = False,
            workers: int = 1) -> dict[str, dict[str, tuple[int, int]]]:
    """Build <root>/<name> (and its LMDBs with lmdb=True); returns the summary of summarize()."""
    if name not in SETTINGS:
        raise KeyError(f"unknown setting '{name}'; expected one of {', '.join(SETTINGS)}")
    if seed < 0:
        raise ValueError(f'--seed must be >= 0, got {seed}')
    setting = SETTINGS[name]
    raw = raw or osp.join(root, 'raw')
    out = osp.join(root, name)
    if osp.exists(out):
        if lmdb and not osp.exists(osp.join(out, 'lmdb')):
            build_lmdbs(out, setting)
            return summarize(out, setting)
        raise FileExistsError(f'{out} already exists; delete it to rebuild the {name} setting')
    items = plan(raw, setting)
    tmp = out.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        for split, parts in items.items():
            writer = SplitWriter(tmp, raw, *roots_of(setting, split), copy)
            for part, part_items in parts:
                writer.write_part(part, part_items, seed, workers)
            write_meta(osp.join(tmp, meta_name(split)), writer.lines, writer.sources)
            if writer.clean:
                write_meta(osp.join(tmp, clean_meta_name(split)), [(name,) for name in writer.clean],
                           writer.clean_sources)
        if lmdb:
            build_lmdbs(tmp, setting)
        summary = summarize(tmp, setting)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, prepare the setting and print its summary; errors print one message and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('setting', choices=list(SETTINGS))
    parser.add_argument('--root', default='datasets', help='where <setting>/ is written (default: datasets)')
    parser.add_argument('--raw', help='the downloads, laid out as in datasets/README.md (default: <root>/raw)')
    parser.add_argument('--lmdb', action='store_true', help='also build <root>/<setting>/lmdb/<split>/')
    parser.add_argument('--seed', type=int, default=2025, help='seed of every synthesized image (default: 2025)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='processes for image writing')
    parser.add_argument('--copy', action='store_true', help='copy the downloaded files instead of symlinking them')
    args = parser.parse_args(argv)
    try:
        summary = prepare(args.setting, args.root, args.raw, args.seed, args.lmdb, args.copy, args.workers)
    except (OSError, ValueError, KeyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    out = osp.join(args.root, args.setting)
    print(f'{args.setting} -> {out}')
    for split, parts in splits_of(SETTINGS[args.setting]).items():
        on_the_fly = {task: part.repeat for part in parts if part.kind == 'clean' for task in part.task}
        counts = summary[split]
        total = sum(n for task, (_, n) in counts.items() if task not in on_the_fly)
        print(f'  {split:<18s} {meta_name(split):<26s} {total:>8d} lines')
        for task, (pairs, lines) in counts.items():
            if task in on_the_fly:
                print(f'    {task:<14s} {pairs:>8d} clean images x {on_the_fly[task]} = {lines} samples an epoch, '
                      f'degraded on the fly ({clean_meta_name(split)})')
                continue
            repeats = f' x {lines // pairs} = {lines} lines' if lines != pairs else ''
            print(f'    {task:<14s} {pairs:>8d} pairs{repeats}')
    if args.lmdb:
        print(f'  LMDB: {osp.join(out, "lmdb")}/<split>/{{lq.lmdb, gt.lmdb, meta.txt}}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
