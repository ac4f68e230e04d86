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
import logging
import math
import os
import sys
import time
from os import path as osp

from basicsr.utils import get_root_logger
from tqdm import tqdm

from basicsr_tur import presets
from basicsr_tur.inference import PRECISIONS, load_restorer, model_source
from basicsr_tur.inference.jobs import (
    IMAGE_EXTENSIONS,
    IO_THREADS,
    collect_inputs,
    plan_jobs,
    restore_jobs,
)
from basicsr_tur.utils.cli import error_message, run_cli
from basicsr_tur.utils.errors import ArgumentError
from basicsr_tur.utils.memory import peak_memory
from basicsr_tur.utils.tiling import check_tile


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
