"""Restore your own images: `python restore.py -i INPUTS -o DIR` (installed as `basicsr-tur-restore`).

The model comes from a test options file (`-opt`: its network_g, path.pretrain_network_g and
val.pad, the test-time padding test.py applies, applied the same way), from `--arch NAME
--weights FILE [--arch-opt key=value ...]`, or from a preset of published weights (`--preset NAME [--weights FILE]`,
`--list-presets`). Inputs are files, folders (`--recursive` for sub-folders) and globs; each output keeps its
input's path relative to the folder (or glob root) it was found under, its name (plus `--suffix`) and its format
(or `--ext`). Nothing is written before every output path is known: two inputs that would write one file, or an
output that would overwrite an input, stop the run in one line. An image that cannot be read or restored is named
in one line and the others are still restored (exit status 1 at the end).

With `--uncertainty` (a checkpoint trained with TURLoss, which holds the head): `<name>_sigma.png`, the σ map
colour-mapped (viridis) between its 1st and 99th percentiles, with its colour bar and scale on the right, and
`<name>_sigma.npy`, σ as float32 (H, W) averaged over the colour channels on the [0, 1] intensity scale. `--grid`
writes `<name>_grid.png`: input | restored | σ (when the checkpoint has the head) | ground truth (with `--gt DIR`,
found by the same relative path or name; the tiles then carry their PSNR).

The device is kept busy: `--io-threads` threads (restore_jobs) read and decode the next images and
encode and write the finished ones while the network runs, and `--tile-batch` tiles go through
the network per forward call. The files are the same as one image at a time (`--io-threads 0`).
"""
from __future__ import annotations

import argparse
import glob
import io
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from os import path as osp

import numpy as np
from basicsr.metrics import calculate_psnr
from basicsr.utils import get_root_logger
from tqdm import tqdm

from basicsr_tur import presets
from basicsr_tur.data.data_util import IMG_EXTENSIONS
from basicsr_tur.inference import (
    PRECISIONS,
    Restored,
    Restorer,
    Staged,
    load_restorer,
    model_source,
    read_image,
)
from basicsr_tur.utils.cli import error_message, run_cli
from basicsr_tur.utils.errors import ArgumentError, DataError
from basicsr_tur.utils.files import atomic_write, write_image
from basicsr_tur.utils.memory import peak_memory
from basicsr_tur.utils.tiling import check_tile
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
GRID_HEIGHT = 512  # grid tiles taller than this are scaled down (the restored image itself is written at full size)
# An image that cannot be read, restored or written: named in one line; the others go on.
IMAGE_ERRORS = (ValueError, OSError, RuntimeError)
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

    A folder gives its images (sub-folders with recursive), relative to the folder; a file gives itself, relative
    to its folder; a glob (`*`, `?`, `[`; `**` spans folders) its matching images, relative to the glob's first
    folder without a wildcard. Images that a folder or a glob finds under `skip_under` (the output folder: earlier
    results when -o lies inside an input folder) are left out; a file named itself never is. Raises
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
            files = [f for f in glob.glob(entry, recursive=recursive or '**' in entry) if osp.isfile(f)]
            parts = entry.split(os.sep)
            root = os.sep.join(parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]) or '.'
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
    """The ground truth of an input: gt_dir/<relative path>, else an image of the same name with another extension
    in the same sub-folder of gt_dir; None when there is none."""
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
        labels = [f'{label} {calculate_psnr(tile, gt8, 0):.2f} dB' for label, tile in zip(labels, tiles)]
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
    """(img as the output format can hold it, notes): 8 bits where the format has no 16-bit mode (JPEG, WebP, BMP),
    no alpha in JPEG. Each reduction is said in a note naming the file."""
    ext, notes = osp.splitext(path)[1].lower(), []
    if img.dtype == np.uint16 and ext not in ('.png', '.tif', '.tiff'):
        img = eight_bits(img)
        notes.append(f'{path}: written with 8 bits ({ext} has no 16-bit mode; PNG and TIFF keep 16)')
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='restore.py', description='Restore images with an all-in-one model (basicsr-tur).',
        epilog='Example: python restore.py -opt options/test/demo/Restormer.yml -i photos/ -o restored/ --tile 512')
    parser.add_argument('-i', '--input', nargs='+', default=[], help='image files, folders or globs')
    parser.add_argument('-o', '--output', help='folder for the restored images (created)')
    model = parser.add_argument_group('model (one of -opt, --arch, --preset)')
    model.add_argument('-opt', help='a test options file: its network_g, path.pretrain_network_g, '
                                    'path.param_key_g, val.pad')
    model.add_argument('--arch', help='a registered arch (SRResNet, Restormer, PromptIR, Uformer, AirNet, ...)')
    model.add_argument('--arch-opt', action='extend', nargs='+', default=[], metavar='KEY=VALUE',
                       help="the arch's arguments (values read as YAML: dim=48 num_blocks=[4,6,6,8])")
    model.add_argument('--preset', help='published weights by name (see --list-presets)')
    model.add_argument('--weights', help='the weights file (overrides the options file; needed with --arch)')
    model.add_argument('--param-key', help='the weights\' key in the file (default: params_ema when present, '
                                           'else params)')
    model.add_argument('--list-presets', action='store_true', help='print the presets table and exit')
    run = parser.add_argument_group('running')
    run.add_argument('--device', help='cpu, cuda or cuda:N (default: CUDA when available)')
    run.add_argument('--precision', choices=list(PRECISIONS), default='fp32')
    run.add_argument('--channels-last', action='store_true', help='channels_last memory format (faster on GPUs)')
    run.add_argument('--compile', action='store_true', help='torch.compile the network (pays off with --tile)')
    run.add_argument('--tile', type=int, help='restore tile by tile, tiles of this side (pixels)')
    run.add_argument('--tile-overlap', type=int, default=32, help='minimum overlap of tiles (default 32)')
    run.add_argument('--tile-batch', type=int, metavar='N',
                     help='tiles per forward call (default: as many as hold the pixels of one '
                          '512² tile on CUDA, 16 of 128² and 4 of 256², and of one 256² tile on '
                          'the CPU, 4 of 128², as measured; a GPU with memory to spare may go '
                          'faster with more)')
    run.add_argument('--io-threads', type=int, default=IO_THREADS, metavar='N',
                     help='threads that read the next images and write finished ones while the '
                          f'network runs (default {IO_THREADS}; 0: each image read, restored and '
                          'written in turn)')
    out = parser.add_argument_group('outputs')
    out.add_argument('--recursive', action='store_true', help='also read the sub-folders of input folders')
    out.add_argument('--suffix', default='', help="added to each output's name (e.g. _restored)")
    out.add_argument('--ext', help='output format for every image (png, tif, jpg; default: the input\'s)')
    out.add_argument('--uncertainty', action='store_true', help='also write the σ map (PNG and .npy)')
    out.add_argument('--grid', action='store_true', help='also write input | restored | σ | GT side by side')
    out.add_argument('--gt', help='folder of ground-truth images for --grid (same relative paths or names)')
    out.add_argument('--dry-run', action='store_true', help='list what would be written, write nothing')
    return parser


def restore_pipeline(root: str, argv: list[str] | None = None) -> dict:
    """Run the command; returns {'images', 'failed', 'megapixels', 'seconds', 'written': [paths]}."""
    args = build_parser().parse_args(argv)
    if args.list_presets:
        print(presets.presets_table())
        return {'images': 0, 'failed': 0, 'megapixels': 0.0, 'seconds': 0.0, 'written': []}
    if not args.input or not args.output:
        raise ArgumentError('give the images with -i and the output folder with -o '
                            '(python restore.py -h)')
    if args.gt and not args.grid:
        raise ArgumentError('--gt is used by --grid; add --grid')
    if args.gt and not osp.isdir(args.gt):
        raise FileNotFoundError(f'--gt {args.gt}: no such folder')
    if args.tile is not None:
        check_tile(args.tile, args.tile_overlap, ('--tile', '--tile-overlap'))
    if args.tile_batch is not None and args.tile_batch < 1:
        raise ArgumentError(f'--tile-batch must be >= 1, got {args.tile_batch}')
    if args.tile_batch is not None and args.tile is None:
        raise ArgumentError(f'--tile-batch {args.tile_batch} batches the tiles of --tile, which '
                            'is not given (whole images go through the network one at a time)')
    if args.io_threads < 0:
        raise ArgumentError(f'--io-threads must be >= 0, got {args.io_threads}')
    if osp.exists(args.output) and not osp.isdir(args.output):
        raise FileExistsError(f'-o {args.output}: is a file; give a folder for the restored images')
    if args.ext and ('.' + args.ext.lstrip('.').lower()) not in IMAGE_EXTENSIONS:
        raise ArgumentError(f'--ext {args.ext}: expected one of '
                            f"{', '.join(e[1:] for e in IMAGE_EXTENSIONS)}")
    source = model_source(opt=args.opt, arch=args.arch, preset=args.preset, arch_opt=args.arch_opt,
                          weights=args.weights, param_key=args.param_key, root=root)
    # An -o folder inside an input folder holds earlier results, not inputs: restoring them again would nest
    # restored/restored/... on every run.
    jobs = plan_jobs(collect_inputs(args.input, args.recursive, skip_under=args.output), args.output, args.suffix,
                     args.ext, args.uncertainty, args.grid)
    if args.dry_run:
        if not osp.isfile(source.weights):
            raise FileNotFoundError(f'weights not found: {source.weights} ({source.described})')
        for job in jobs:
            print(f"{job.source} -> {', '.join(job.outputs())}")
        print(f'dry run: {len(jobs)} images, {sum(len(j.outputs()) for j in jobs)} files would be written; '
              f'model {source.network_g["type"]} from {source.weights}')
        return {'images': 0, 'failed': 0, 'megapixels': 0.0, 'seconds': 0.0, 'written': []}
    logger = get_root_logger(logger_name='basicsr')
    logger.setLevel(logging.INFO)  # basicsr sets the level only when a log file is given; the choices are logged
    restorer = load_restorer(source, args.device, args.precision, args.tile, args.tile_overlap, args.channels_last,
                             args.compile, uncertainty=True if args.uncertainty else (None if args.grid else False),
                             logger=logger, tile_batch=args.tile_batch)
    if source.padding:  # -opt only: an options file's val.pad, applied as test.py applies it
        logger.info(f'{source.described}: test-time padding val.pad {source.padding} applied as '
                    'test.py does: each image padded before the network (and before tiling), '
                    'the outputs cropped back')
    start, megapixels, failed, written = time.perf_counter(), 0.0, [], []
    with tqdm(total=len(jobs), unit='image', desc='Restore') as bar:
        for job, done in restore_jobs(restorer, jobs, args.uncertainty, args.gt, args.io_threads):
            bar.update(1)
            if isinstance(done, BaseException):
                failed.append(job.source)
                tqdm.write(f'error: {error_message(done)}', file=sys.stderr)
                continue
            megapixels += done['megapixels']
            written += job.outputs()
            for note in done['notes']:
                logger.warning(note)
    seconds = time.perf_counter() - start
    restored = len(jobs) - len(failed)
    rate = f'{megapixels / seconds:.2f} MP/s' if seconds > 0 and restored else '-'
    tiles = (f'tiles {args.tile} ({restorer.tile_batch} per forward)' if args.tile
             else 'whole images')
    summary = (f'restored {restored} of {len(jobs)} images ({megapixels:.2f} MP) in {seconds:.1f} s ({rate}) on '
               f'{restorer.device}, {args.precision}, {tiles}'
               + f'; peak memory {peak_memory(restorer.device)}; written to {args.output}')
    if failed:
        summary += f"; {len(failed)} failed: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}"
    print(summary, flush=True)
    return {'images': restored, 'failed': len(failed), 'megapixels': megapixels,
            'seconds': seconds if math.isfinite(seconds) else 0.0, 'written': written}


def main(argv: list[str] | None = None) -> int:
    """The console script: 0 when every image was restored, 1 when any failed (or the run could not start)."""
    outcome = {}
    code = run_cli(lambda root: outcome.update(restore_pipeline(root, argv)), os.getcwd())
    return 1 if code == 0 and outcome.get('failed') else code


if __name__ == '__main__':
    sys.exit(main())
