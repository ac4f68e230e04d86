"""Restore a list of images to files: find the inputs (files, folders, globs), plan every output
path before anything is written, and run each image's read -> network -> write, with threads that
read ahead and write behind while the network runs. restore.py (the command) and app.py (the page)
both restore through these; the σ picture and the input | restored | σ | GT grid are drawn here.
"""
from __future__ import annotations

import glob
import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from os import path as osp

import numpy as np
from basicsr.metrics import calculate_psnr
from tqdm import tqdm

from basicsr_tur.data.data_util import IMG_EXTENSIONS
from basicsr_tur.inference.images import Staged, read_image
from basicsr_tur.inference.restorer import Restored, Restorer
from basicsr_tur.utils.errors import ArgumentError, DataError, UserError
from basicsr_tur.utils.files import atomic_write, write_image
from basicsr_tur.utils.visual import (
    colour_sigma,
    display_range,
    eight_bits,
    fit_height,
    hstack,
    labelled,
    to_bgr8,
    with_colour_bar,
)

IMAGE_EXTENSIONS = IMG_EXTENSIONS  # what the datasets read
# Grid tiles taller than this are scaled down (the restored image itself is written at full size).
GRID_HEIGHT = 512
# An image that cannot be read, restored or written: named in one line; the others go on.
IMAGE_ERRORS = (UserError, OSError)  # what an image can do wrong; anything else is a bug and propagates
IO_THREADS = 2  # --io-threads: one image read ahead and one written back while the network runs
READ_AHEAD = 2  # images read and staged ahead of the one the network runs


@dataclass
class Job:
    """One input image and every file restoring it writes."""

    source: str
    relative: str  # the input's path under the folder or glob root it was found in
    output: str
    sigma_png: str | None = None
    sigma_npy: str | None = None
    grid: str | None = None

    def outputs(self) -> list[str]:
        """Every file this job writes."""
        return [p for p in (self.output, self.sigma_png, self.sigma_npy, self.grid) if p]


def _is_image(path: str) -> bool:
    return osp.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def collect_inputs(entries: list[str], recursive: bool = False, skip_under: str | None = None
                   ) -> list[tuple[str, str]]:
    """(file, relative path) of every image the -i entries name, in order, each file once.

    A folder gives its images (sub-folders with recursive), relative to the folder; a file gives
    itself, relative to its folder; a glob (`*`, `?`, `[`; `**` spans folders) its matching
    images, relative to the glob's first folder without a wildcard. Images that a folder or a glob
    finds under `skip_under` (the output folder: earlier results when -o lies inside an input
    folder) are left out; a file named itself never is. Raises
    FileNotFoundError (one line) for an entry that names nothing, ArgumentError for no image at all.
    """
    skip = osp.join(osp.realpath(skip_under), '') if skip_under else None
    found: dict[str, str] = {}
    for entry in entries:
        if osp.isdir(entry):
            if recursive:
                files = [osp.join(d, f) for d, _, names in os.walk(entry) for f in names]
            else:
                files = [osp.join(entry, f) for f in os.listdir(entry)]
            root = entry
        elif osp.isfile(entry):
            files, root = [entry], osp.dirname(entry)
        elif glob.has_magic(entry):
            matches = glob.glob(entry, recursive=recursive or '**' in entry)
            files = [f for f in matches if osp.isfile(f)]
            parts = entry.split(os.sep)
            first_magic = next(i for i, p in enumerate(parts) if glob.has_magic(p))
            root = os.sep.join(parts[:first_magic]) or '.'
            if not files:
                raise FileNotFoundError(f'-i {entry}: no file matches')
        else:
            raise FileNotFoundError(f'-i {entry}: no such file or folder')
        images = sorted(f for f in files if _is_image(f) and osp.isfile(f))
        if osp.isfile(entry) and not images:
            raise ArgumentError(f'-i {entry}: not an image file name (expected '
                                f"{', '.join(IMAGE_EXTENSIONS)})")
        for file in images:
            if skip and not osp.isfile(entry) and osp.realpath(file).startswith(skip):
                continue
            found.setdefault(osp.realpath(file), osp.relpath(file, root or '.'))
    if not found:
        raise ArgumentError(f"no image ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(entries)}"
                            + (f' outside the output folder {skip_under}' if skip_under else '')
                            + ('' if recursive else ' (sub-folders are read with --recursive)'))
    return [(file, relative) for file, relative in found.items()]


def plan_jobs(inputs: list[tuple[str, str]], out_dir: str, suffix: str = '', ext: str | None = None,
              uncertainty: bool = False, grid: bool = False) -> list[Job]:
    """The files each input will write under out_dir. Raises ArgumentError (one line) when two
    inputs would write one file, or when a file to write is one of the inputs."""
    jobs = []
    for source, relative in inputs:
        stem, own_ext = osp.splitext(relative)
        base = osp.join(out_dir, stem + suffix)
        job = Job(source, relative, base + (f'.{ext.lstrip(".")}' if ext else own_ext))
        if uncertainty:
            job.sigma_png, job.sigma_npy = base + '_sigma.png', base + '_sigma.npy'
        if grid:
            job.grid = base + '_grid.png'
        jobs.append(job)
    writers: dict[str, str] = {}
    sources = {osp.realpath(s) for s, _ in inputs}
    for job in jobs:
        for out in job.outputs():
            real = osp.realpath(out)
            if real in sources:
                raise ArgumentError(f'{out} would overwrite the input {real}; choose another -o '
                                    'folder or a --suffix')
            if real in writers and writers[real] != job.source:
                how = 'keep their extensions (no --ext)' if ext else 'rename one'
                raise ArgumentError(f'{writers[real]} and {job.source} would both be written to '
                                    f'{out}; restore them into different -o folders, or {how}')
            writers[real] = job.source
    return jobs


def find_gt(gt_dir: str, relative: str) -> str | None:
    """The ground truth of an input: gt_dir/<relative path>, else an image of the same name with
    another extension in the same sub-folder of gt_dir; None when there is none."""
    exact = osp.join(gt_dir, relative)
    if osp.isfile(exact):
        return exact
    stem = osp.splitext(exact)[0]
    return next((stem + e for e in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)
                 if osp.isfile(stem + e)), None)


def grid_picture(img: np.ndarray, restored: np.ndarray, sigma: np.ndarray | None,
                 gt: np.ndarray | None,
                 coloured: tuple[np.ndarray, float, float] | None = None) -> np.ndarray:
    """input | restored | σ (own scale, colour bar) | ground truth, 8-bit BGR, labelled (PSNR
    against the GT). coloured: sigma_picture(sigma), when the caller has it already."""
    tiles = [to_bgr8(img), to_bgr8(restored)]
    labels = ['input', 'restored']
    if gt is not None:
        gt8 = to_bgr8(gt)
        if gt8.shape != tiles[0].shape:
            raise DataError(f'ground truth is {gt8.shape[1]}x{gt8.shape[0]}, the input '
                            f'{tiles[0].shape[1]}x{tiles[0].shape[0]}')
        labels = [f'{label} {calculate_psnr(tile, gt8, 0):.2f} dB'
                  for label, tile in zip(labels, tiles)]
    tiles = [labelled(fit_height(t, GRID_HEIGHT), text) for t, text in zip(tiles, labels)]
    if sigma is not None:
        picture, lo, hi = coloured or sigma_picture(sigma)
        picture = fit_height(picture, GRID_HEIGHT)
        tiles.append(labelled(with_colour_bar(picture, lo, hi, clipped=True), 'sigma (TUR head)'))
    if gt is not None:
        tiles.append(labelled(fit_height(to_bgr8(gt), GRID_HEIGHT), 'ground truth'))
    return hstack(tiles)


def sigma_picture(sigma: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(σ (H, W) colour-mapped as 8-bit BGR (H, W, 3), lo, hi) on its own scale (display_range)."""
    lo, hi = display_range(sigma)
    return colour_sigma(sigma, lo, hi), lo, hi


def _encodable(path: str, img: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(img as the output format can hold it, notes): 8 bits where the format has no 16-bit mode
    (JPEG, WebP, BMP), no alpha in JPEG. Each reduction is said in a note naming the file."""
    ext, notes = osp.splitext(path)[1].lower(), []
    if img.dtype == np.uint16 and ext not in ('.png', '.tif', '.tiff'):
        img = eight_bits(img)
        notes.append(f'{path}: written with 8 bits ({ext} has no 16-bit mode; PNG and TIFF keep '
                     '16)')
    if img.ndim == 3 and img.shape[2] == 4 and ext in ('.jpg', '.jpeg'):
        img = np.ascontiguousarray(img[..., :3])
        notes.append(f'{path}: written without its alpha channel (JPEG has none; PNG keeps it)')
    return img, notes


def read_job(restorer: Restorer, job: Job) -> Staged:
    """The job's input, read and staged for the network (restore_jobs: in a thread, ahead)."""
    return restorer.stage(read_image(job.source), job.source)


def run_job(restorer: Restorer, job: Job, staged: Staged, uncertainty: bool,
            pbar_position: int = 1) -> Restored:
    """The network's part of a job, with a progress bar over its tiles when it has several."""
    tiles = restorer.tiles_for(*staged.img.shape[:2])
    bar = tqdm(total=tiles, unit='tile', desc=osp.basename(job.source), leave=False,
               position=pbar_position) if tiles > 1 else None
    with_sigma = uncertainty or (job.grid is not None and restorer.has_head)
    try:
        return restorer.restore(staged, uncertainty=with_sigma, name=job.source,
                                progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()


def write_job(job: Job, img: np.ndarray, result: Restored, gt_dir: str | None) -> dict:
    """Write a restored image's files (image, σ picture and .npy, grid); returns {'megapixels',
    'tiles', 'notes'}. numpy and OpenCV only: restore_jobs runs it in a thread beside the
    network."""
    image, notes = _encodable(job.output, result.image)
    write_image(job.output, image)
    coloured = None
    if result.sigma is not None and (job.sigma_png or job.grid):
        coloured = sigma_picture(result.sigma)  # one colour map for the σ picture and the grid
    if job.sigma_png:
        picture, lo, hi = coloured
        write_image(job.sigma_png, with_colour_bar(picture, lo, hi, clipped=True))
        # np.save appends '.npy' to a path without it, such as atomic_write's temporary name
        npy = io.BytesIO()
        np.save(npy, result.sigma)
        atomic_write(job.sigma_npy, npy.getvalue())
    if job.grid:
        gt = None
        if gt_dir:
            gt_path = find_gt(gt_dir, job.relative)
            if gt_path is None:
                notes.append(f'{job.source}: no ground truth under {gt_dir}; its grid has none')
            else:
                gt = read_image(gt_path)
                if gt.shape[:2] != img.shape[:2]:
                    notes.append(f'{job.source}: its ground truth {gt_path} is '
                                 f'{gt.shape[1]}x{gt.shape[0]}, the input {img.shape[1]}x'
                                 f'{img.shape[0]}; its grid has none')
                    gt = None
        write_image(job.grid, grid_picture(img, result.image, result.sigma, gt, coloured))
    megapixels = img.shape[0] * img.shape[1] / 1e6
    return {'megapixels': megapixels, 'tiles': result.tiles, 'notes': notes}


def restore_job(restorer: Restorer, job: Job, uncertainty: bool, gt_dir: str | None,
                pbar_position: int = 1) -> dict:
    """Restore one image and write its files, all in this thread; returns {'megapixels', 'tiles',
    'notes'}."""
    staged = read_job(restorer, job)
    result = run_job(restorer, job, staged, uncertainty, pbar_position)
    return write_job(job, staged.img, result, gt_dir)


def _failed(err: BaseException) -> Future:
    future = Future()
    future.set_exception(err)
    return future


def restore_jobs(restorer: Restorer, jobs: list[Job], uncertainty: bool, gt_dir: str | None,
                 io_threads: int = IO_THREADS) -> Iterator[tuple[Job, dict | BaseException]]:
    """Restore the jobs; yields, in the jobs' order, (job, restore_job's result) or (job, the error)
    for an image that could not be read, restored or written (IMAGE_ERRORS; any other exception is a
    bug and propagates).

    io_threads > 0: that many threads read and stage the next READ_AHEAD images and write the
    finished ones while this thread runs the network, so that the device does not wait for decoding
    and encoding; at most io_threads + 1 restored images wait for their writes. 0: each image read,
    restored and written in turn, in this thread. The files written are the same either way.
    """
    if io_threads == 0:
        for job in jobs:
            try:
                yield job, restore_job(restorer, job, uncertainty, gt_dir)
            except IMAGE_ERRORS as err:
                yield job, err
        return
    pool = ThreadPoolExecutor(io_threads, thread_name_prefix='restore-io')
    upcoming = iter(jobs)
    reads: deque[tuple[Job, Future]] = deque()
    writes: deque[tuple[Job, Future]] = deque()  # in the jobs' order, failures included

    def read_next() -> None:
        job = next(upcoming, None)
        if job is not None:
            reads.append((job, pool.submit(read_job, restorer, job)))

    def outcome(job: Job, future: Future) -> tuple[Job, dict | BaseException]:
        try:
            return job, future.result()
        except IMAGE_ERRORS as err:
            return job, err

    try:
        for _ in range(READ_AHEAD):
            read_next()
        while reads:
            job, reading = reads.popleft()
            read_next()
            try:
                staged = reading.result()
                result = run_job(restorer, job, staged, uncertainty)
            except IMAGE_ERRORS as err:
                writes.append((job, _failed(err)))
            else:
                writes.append((job, pool.submit(write_job, job, staged.img, result, gt_dir)))
                del staged, result  # the write holds what it needs
            while writes and (writes[0][1].done() or len(writes) > io_threads + 1):
                yield outcome(*writes.popleft())
        while writes:
            yield outcome(*writes.popleft())
    finally:  # also on Ctrl-C or a bug: writes under way finish (atomically), queued ones are not
        pool.shutdown(wait=True, cancel_futures=True)
