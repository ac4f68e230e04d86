"""Benchmark restore.py's inference per backbone: megapixels/s whole and tiled at fp32 and bf16, peak memory of a
4-megapixel image with and without tiles, and how far tiled output is from whole-image output (PSNR).

    python bench/bench_restore.py [--device cpu] [--size 512] [--tile 256] [--overlap 32] [--archs SRResNet ...]
        [--modes fp32 bf16] [--memory-archs SRResNet Restormer] [--memory-size 2048] [--repeat 3]
        [--demo-weights experiments/demo_Restormer_TUR/models/net_g_latest.pth] [--cell-timeout S]

Every cell runs in a process of its own (`--cell`), so that its peak memory is its own: the process's peak
resident set on the CPU, CUDA's peak allocated memory on a GPU. Inference is what restore.py runs:
basicsr_tur.inference.Restorer.restore_tensor (no_grad/inference mode, autocast for bf16, utils/tiling.py for
tiles). Backbones are at their official sizes (bench/bench_train.py's OFFICIAL) with random weights (speed and
memory do not depend on the weights); the tiled-against-whole PSNR is measured on scikit-image's astronaut (a real
photograph), with random weights for every backbone and, with --demo-weights, also with the trained demo Restormer.
Prints Markdown tables to paste into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import numpy as np
import torch
from basicsr.archs import build_network
from bench_train import OFFICIAL  # this folder: `python bench/bench_restore.py` puts it on sys.path

from basicsr_tur.inference import Restorer
from basicsr_tur.utils.memory import peak_memory

DEMO = {'type': 'Restormer', 'dim': 16, 'num_blocks': [1, 1, 1, 2], 'num_refinement_blocks': 1,
        'heads': [1, 2, 2, 4], 'ffn_expansion_factor': 2.0}  # options/test/demo/Restormer.yml


def photo(size: int) -> torch.Tensor:
    """scikit-image's astronaut resized to size x size, (1, 3, size, size) in [0, 1]."""
    import cv2
    from skimage import data
    img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA if size < 512 else cv2.INTER_CUBIC)
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


def build(arch: str, weights: str | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch == 'demo-Restormer':
        net = build_network(dict(DEMO))
        if weights:
            from basicsr_tur.utils.checkpoint import load_checkpoint
            load_checkpoint(net, weights, 'params_ema', strict=True)
        return net.eval()
    return build_network(dict(OFFICIAL[arch])).eval()


def run_cell(cell: dict) -> dict:
    """One measurement in this process: {'seconds', 'mp_per_s', 'peak'} or, for kind 'psnr', {'psnr'}."""
    device = torch.device(cell['device'])
    net = build(cell['arch'], cell.get('weights')).to(device)
    x = photo(cell['size'])
    if cell['kind'] == 'psnr':
        whole = Restorer(net, device).restore_tensor(x)[0].clamp(0, 1)
        tiled = Restorer(net, device, tile=cell['tile'], overlap=cell['overlap']).restore_tensor(x)[0].clamp(0, 1)
        mse = float(((whole - tiled) ** 2).mean())
        return {'psnr': 10 * np.log10(1 / mse) if mse > 0 else float('inf'),
                'max_abs': float((whole - tiled).abs().max())}
    restorer = Restorer(net, device, precision=cell['mode'], tile=cell.get('tile'), overlap=cell.get('overlap', 32))
    restorer.restore_tensor(x)  # warm-up (allocator, autocast caches, oneDNN kernels)
    times = []
    for _ in range(cell['repeat']):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        restorer.restore_tensor(x)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {'seconds': seconds, 'mp_per_s': cell['size'] ** 2 / 1e6 / seconds, 'peak': peak_memory(device)}


def spawn(cell: dict, timeout: float) -> dict:
    """run_cell in a fresh process; {'error': ...} when it fails or runs past timeout."""
    try:
        done = subprocess.run([sys.executable, __file__, '--cell', json.dumps(cell)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'over {timeout:.0f} s'}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f'exit {done.returncode}'])[-1]
        return {'error': 'killed (out of memory?)' if done.returncode < 0 else last[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--archs', nargs='+', default=list(OFFICIAL))
    parser.add_argument('--modes', nargs='+', default=['fp32', 'bf16'])
    parser.add_argument('--memory-archs', nargs='+', default=['SRResNet', 'Restormer'])
    parser.add_argument('--memory-size', type=int, default=2048)
    parser.add_argument('--memory-tile', type=int, default=512)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--demo-weights', help='the trained demo Restormer, for a tiled-vs-whole PSNR on real weights')
    parser.add_argument('--cell-timeout', type=float, default=900)
    parser.add_argument('--cell', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell))))
        return
    print(f'<!-- {platform.node()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, device {args.device}, {time.strftime("%Y-%m-%d")} -->')
    print(f'\n### Throughput: {args.size}x{args.size} image, whole and in {args.tile}² tiles (overlap '
          f'{args.overlap}), megapixels/s (peak memory)\n')
    header = [f'{mode} {how}' for mode in args.modes for how in ('whole', 'tiled')]
    print('| Backbone | ' + ' | '.join(header) + ' |\n|---|' + '---|' * len(header))
    for arch in args.archs:
        cells = []
        for mode in args.modes:
            for tile in (None, args.tile):
                r = spawn({'kind': 'speed', 'arch': arch, 'device': args.device, 'size': args.size, 'mode': mode,
                           'tile': tile, 'overlap': args.overlap, 'repeat': args.repeat}, args.cell_timeout)
                cells.append(r['error'] if 'error' in r else f"{r['mp_per_s']:.3f} ({r['peak'].split(' (')[0]})")
        print(f'| {arch} | ' + ' | '.join(cells) + ' |', flush=True)
    print(f'\n### Peak memory of a {args.memory_size}x{args.memory_size} image ({args.memory_size ** 2 / 1e6:.1f} MP), '
          f'fp32: whole against {args.memory_tile}² tiles\n')
    print('| Backbone | whole: peak | whole: s | tiled: peak | tiled: s |\n|---|---|---|---|---|')
    for arch in args.memory_archs:
        cells = []
        for tile in (None, args.memory_tile):
            r = spawn({'kind': 'speed', 'arch': arch, 'device': args.device, 'size': args.memory_size, 'mode': 'fp32',
                       'tile': tile, 'overlap': args.overlap, 'repeat': 1}, args.cell_timeout)
            cells += [r['error'], '-'] if 'error' in r else [r['peak'], f"{r['seconds']:.1f}"]
        print(f'| {arch} | ' + ' | '.join(cells) + ' |', flush=True)
    print(f'\n### Tiled against whole: PSNR of the tiled output ({args.tile}² tiles, overlap {args.overlap}) against '
          f'the whole-image output, {args.size}² astronaut\n')
    print('| Backbone | weights | PSNR (dB) | max abs diff |\n|---|---|---|---|')
    rows = [(arch, None) for arch in args.archs]
    if args.demo_weights:
        rows.append(('demo-Restormer', args.demo_weights))
    for arch, weights in rows:
        r = spawn({'kind': 'psnr', 'arch': arch, 'device': args.device, 'size': args.size, 'tile': args.tile,
                   'overlap': args.overlap, 'weights': weights}, args.cell_timeout)
        label = 'trained (demo, params_ema)' if weights else 'random'
        cells = [r['error'], '-'] if 'error' in r else [f"{r['psnr']:.2f}", f"{r['max_abs']:.2e}"]
        print(f'| {arch} | {label} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()
