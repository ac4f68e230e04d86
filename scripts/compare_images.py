"""A picture comparing trained runs on one test image per task: input | each run | σ of each TUR run | ground truth.

    python scripts/compare_images.py -opt options/test/demo/Restormer.yml \
        --run L1=experiments/demo_Restormer_L1/models/net_g_latest.pth \
        --run TUR=experiments/demo_Restormer_TUR/models/net_g_latest.pth --out results/demo_compare.png

The test options give the backbone (`network_g`), the weights' key (`path.param_key_g`, e.g. params_ema), the tasks
and the first test set; `--index N` picks each task's N-th image of it (sorted as the test set lists them). Each
restored tile is labelled with its PSNR against the ground truth (basicsr's calculate_psnr on the 8-bit images, RGB,
no border crop). A run whose checkpoint holds the TUR uncertainty head also gets a σ column: the head's per-pixel
uncertainty, averaged over the colour channels and colour-mapped (matplotlib's viridis) between its minimum and
maximum over the whole picture (one scale for every task and run, given in the tiles' labels); σ is what TUR divides
each task's error by (README, "TUR in one formula"). Inference never uses the head: the restored tiles are the
network's plain output. Errors are one line.
"""
from __future__ import annotations

import argparse
import sys
from os import path as osp

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# basicsr_tur first: it installs the torchvision alias basicsr 1.4.2 needs, so basicsr is imported after it, here.
from basicsr_tur.data.data_util import unit_tensor
from basicsr_tur.inference import ModelSource, Restorer, load_restorer
from basicsr_tur.utils.cli import run_cli
from basicsr_tur.utils.errors import ArgumentError, DataError
from basicsr_tur.utils.files import write_image
from basicsr_tur.utils.options import parse_options
from basicsr_tur.utils.registry import run_prepare_step
from basicsr_tur.utils.visual import GAP, hstack, labelled, sigma_tiles

from basicsr.data import build_dataset  # isort: skip
from basicsr.metrics import calculate_psnr  # isort: skip
from basicsr.utils import tensor2img  # isort: skip

TASK_W = 70


def parse_runs(entries: list[str]) -> dict[str, str]:
    """{label: checkpoint} from LABEL=FILE entries; ArgumentError for a malformed or repeated entry
    or a missing file."""
    runs = {}
    for entry in entries:
        label, sep, path = entry.partition('=')
        if not sep or not label or not path:
            raise ArgumentError(f'--run {entry!r}: expected LABEL=CHECKPOINT, '
                                'e.g. TUR=experiments/demo_Restormer_TUR/models/net_g_latest.pth')
        if label in runs:
            raise ArgumentError(f"--run {entry!r}: label '{label}' is given twice")
        if not osp.isfile(path):
            raise ArgumentError(f'--run {entry}: checkpoint not found: {path}')
        runs[label] = path
    return runs


def load_run(opt: dict, label: str, path: str) -> Restorer:
    """The options' backbone with the weights of `path` (param_key_g), on the CPU, with the TUR
    head when the file holds one; whole images at fp32 and no test-time padding, so that each tile
    is the network's plain output."""
    source = ModelSource(opt['network_g'], path, opt['path'].get('param_key_g', 'params'),
                         f'--run {label}')
    return load_restorer(source, device='cpu', uncertainty=None)


def comparison(opt: dict, runs: dict[str, str], index: int = 0) -> tuple[np.ndarray, list[str]]:
    """(8-bit BGR picture, one text line per task with each tile's PSNR) for the first test set of `opt`.

    Raises DataError when a task has fewer than index + 1 images in the test set.
    """
    dataset_opt = next(iter(sorted(opt['datasets'].items())))[1]
    dataset = build_dataset(dataset_opt)
    item_tasks = dataset.item_tasks()
    restorers = {label: load_run(opt, label, path) for label, path in runs.items()}
    found, lines = [], []  # per task: (name, [(label, 8-bit image)], [(label, σ map)], {label: PSNR}, 8-bit GT)
    for task_id, task in enumerate(opt['tasks']):
        items = [i for i, t in enumerate(item_tasks) if t == task_id]
        if len(items) <= index:
            raise DataError(f"test set '{dataset_opt['name']}': task '{task}' has {len(items)} "
                            f'images, --index {index} needs {index + 1}')
        sample = dataset[items[index]]
        lq = unit_tensor(sample['lq']).unsqueeze(0)  # 8-bit samples ship as uint8
        gt = tensor2img([unit_tensor(sample['gt'])])
        images, sigmas = [('input', tensor2img([lq[0]]))], []
        for label, restorer in restorers.items():
            out, sigma = restorer.restore_tensor(lq, uncertainty=restorer.has_head)
            if sigma is not None:
                sigmas.append((label, sigma[0].mean(0).numpy()))
            images.append((label, tensor2img([out[0]])))
        psnrs = {label: calculate_psnr(img, gt, 0) for label, img in images}
        found.append((task, images, sigmas, psnrs, gt))
        lines.append(f"{task} ({osp.basename(sample['lq_path'])}): "
                     + ', '.join(f'{k} {v:.2f} dB' for k, v in psnrs.items()))
    # One σ scale over the whole picture, so that tasks and runs can be compared by colour.
    all_sigmas = [m for _, _, sigmas, _, _ in found for _, m in sigmas]
    maps, scale = sigma_tiles(all_sigmas) if all_sigmas else ([], '')
    maps = iter(maps)
    rows = []
    for task, images, sigmas, psnrs, gt in found:
        tiles = [labelled(img, f'{label} {psnrs[label]:.2f} dB') for label, img in images]
        tiles += [labelled(next(maps), f'sigma {label} ({scale})') for label, _ in sigmas]
        tiles.append(labelled(gt, 'ground truth'))
        name = np.full((tiles[0].shape[0], TASK_W, 3), 255, np.uint8)
        cv2.putText(name, task, (4, tiles[0].shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
        rows.append(hstack([name] + tiles))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0), lines


def main(argv: list[str] | None = None) -> int:
    """Write the picture; errors print one line and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', required=True, help='test options (network_g, path.param_key_g, tasks, test set)')
    parser.add_argument('--run', action='append', required=True, metavar='LABEL=CHECKPOINT',
                        help='a trained run, in column order; repeatable')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--index', type=int, default=0, help="which image of each task (default: the first)")
    parser.add_argument('--root', default=None, help='the folder relative paths are under (default: the working one)')
    args = parser.parse_args(argv)
    return run_cli(lambda root: compare(args), '.')


def compare(args: argparse.Namespace) -> None:
    """Make and write the picture of the command line's runs; print each tile's PSNR."""
    runs = parse_runs(args.run)
    opt, _ = parse_options(args.root or '.', is_train=False,
                           argv=['-opt', args.opt] + (['--root', args.root] if args.root else []))
    run_prepare_step(opt, opt['path']['root'])
    picture, lines = comparison(opt, runs, args.index)
    write_image(args.out, picture)
    print('\n'.join(lines))
    print(f'Comparison picture written to {args.out}')


if __name__ == '__main__':
    sys.exit(main())
