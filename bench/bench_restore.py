"""Benchmark restore.py's inference per backbone: megapixels/s whole and tiled at fp32 and bf16, peak memory of a
4-megapixel image with and without tiles, how far tiled output is from whole-image output (PSNR);
megapixels/s per tiles per forward (--tile-batch); and the command end to end on 12-megapixel
photos: megapixels/s and host seconds per image.

    python bench/bench_restore.py [--device cpu] [--size 512] [--tile 256] [--overlap 32] [--archs SRResNet ...]
        [--modes fp32 bf16] [--memory-archs SRResNet Restormer] [--memory-size 2048] [--repeat 3]
        [--demo-weights experiments/demo_Restormer_TUR/models/net_g_latest.pth] [--cell-timeout S]
        [--tables throughput memory psnr batches pipeline]
        [--batch-archs tiny SRResNet] [--batch-tiles 128] [--batches 1 2 4 8]
        [--pipeline-tiles 128 512] [--pipeline-images 3] [--pipeline-size 4000x3000]
        [--pipeline-threads 1] [--pipeline-sigma] [--before-rev REV]

Every cell runs in a process of its own (`--cell`), so that its peak memory is its own: the process's peak
resident set on the CPU, CUDA's peak allocated memory on a GPU. Inference is what restore.py runs:
basicsr_tur.inference.Restorer.restore_tensor (no_grad/inference mode, autocast for bf16, utils/tiling.py for
tiles). Backbones are at their official sizes (bench/bench_train.py's OFFICIAL) with random weights (speed and
memory do not depend on the weights); the tiled-against-whole PSNR is measured on scikit-image's astronaut (a real
photograph), with random weights for every backbone and, with --demo-weights, also with the trained demo Restormer.

The pipeline table runs the command's pipeline (basicsr_tur.restore.restore_pipeline, PNG in
and out) on --pipeline-images photographs of --pipeline-size (scikit-image's astronaut enlarged,
with mild noise, so that PNG coding costs what a photo's does) with TINY, a tiny SRResNet with
random weights (its forward is quick, so that the host's share shows, as on a fast device), torch
on --pipeline-threads threads. Per path, per image scaled to 12 megapixels:
- MP/s: the command's own timer (reading the first image to writing the last);
- forward s: wall time inside the network's forward calls;
- host s, critical path: wall minus forward, the time a device would wait for the host;
- host CPU s: the process's CPU time (every thread) minus the CPU time of the forward calls
  (time.thread_time around each; exact with one torch thread, where the forward runs in the
  calling thread; with more, the forward's other threads count as host).
Paths: `serial` is --tile-batch 1 --io-threads 0 (one image at a time, one tile per forward, as
before the I/O threads and tile batches); `default` is the command's defaults; with
--before-rev REV, `before` runs the restore.py of commit REV (extracted with git archive) with the
same arguments.

Prints Markdown tables to paste into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import numpy as np
import torch
from bench_train import OFFICIAL  # this folder: `python bench/bench_restore.py` puts it on sys.path

from basicsr_tur.inference import ModelSource, Restorer, load_network, new_network
from basicsr_tur.utils.memory import peak_memory

DEMO = {'type': 'Restormer', 'dim': 16, 'num_blocks': [1, 1, 1, 2], 'num_refinement_blocks': 1,
        'heads': [1, 2, 2, 4], 'ffn_expansion_factor': 2.0}  # options/test/demo/Restormer.yml
TINY = {'type': 'SRResNet', 'num_feat': 4, 'num_block': 1}  # the pipeline's, and --batch-archs tiny
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(size: int) -> torch.Tensor:
    """scikit-image's astronaut resized to size x size, (1, 3, size, size) in [0, 1]."""
    import cv2
    from skimage import data
    img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA if size < 512 else cv2.INTER_CUBIC)
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


def build(arch: str, weights: str | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch == 'tiny':
        return new_network(TINY)
    if arch == 'demo-Restormer':
        if weights:
            return load_network(ModelSource(dict(DEMO), weights, 'params_ema', arch))[0]
        return new_network(DEMO)
    return new_network(OFFICIAL[arch])


def run_cell(cell: dict) -> dict:
    """One measurement in this process: {'seconds', 'mp_per_s', 'peak'}; for kind 'psnr',
    {'psnr', 'max_abs'}; for kind 'pipeline', pipeline_cell's figures."""
    if cell['kind'] == 'pipeline':
        return pipeline_cell(cell)
    device = torch.device(cell['device'])
    net = build(cell['arch'], cell.get('weights')).to(device)
    x = photo(cell['size'])
    if cell['kind'] == 'psnr':
        whole = Restorer(net, device).restore_tensor(x)[0].clamp(0, 1)
        tiled = Restorer(net, device, tile=cell['tile'], overlap=cell['overlap']).restore_tensor(x)[0].clamp(0, 1)
        mse = float(((whole - tiled) ** 2).mean())
        return {'psnr': 10 * np.log10(1 / mse) if mse > 0 else float('inf'),
                'max_abs': float((whole - tiled).abs().max())}
    batch = {'tile_batch': cell['batch']} if 'batch' in cell else {}
    restorer = Restorer(net, device, precision=cell['mode'], tile=cell.get('tile'),
                        overlap=cell.get('overlap', 32), **batch)
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


def throughput_table(args: argparse.Namespace) -> None:
    """Megapixels/s (peak memory) per backbone, whole and tiled, per precision."""
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


def memory_table(args: argparse.Namespace) -> None:
    """Peak memory and seconds of a large image, whole against tiled."""
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


def psnr_table(args: argparse.Namespace) -> None:
    """PSNR of the tiled output against the whole-image output."""
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


def pipeline_cell(cell: dict) -> dict:
    """restore.py's pipeline on cell['argv'] in this process, timed: {'seconds' (the command's
    own), 'megapixels', 'images', 'forward_s', 'forward_cpu_s', 'cpu_s'} (cpu_s: the process's CPU
    time from the end of the model's loading). Runs the basicsr_tur first on sys.path (spawn's
    `tree`)."""
    torch.set_num_threads(cell['threads'])
    from basicsr_tur import restore
    figures = {'forward_s': 0.0, 'forward_cpu_s': 0.0}
    cuda = cell['device'].startswith('cuda')
    load = restore.load_restorer

    def timed(forward):
        def call(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            out = forward(*args, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            figures['forward_s'] += time.perf_counter() - wall
            figures['forward_cpu_s'] += time.thread_time() - cpu
            return out
        return call

    def timed_load(*args, **kwargs):
        restorer = load(*args, **kwargs)
        restorer._forward = timed(restorer._forward)
        figures['cpu_start'] = time.process_time()
        return restorer

    restore.load_restorer = timed_load  # restore_pipeline calls it by this module's name
    done = restore.restore_pipeline(REPO, cell['argv'] + ['--device', cell['device']])
    if done['failed']:
        raise RuntimeError(f"{done['failed']} images failed")
    cpu = time.process_time() - figures.pop('cpu_start')
    return {'seconds': done['seconds'], 'megapixels': done['megapixels'], 'images': done['images'],
            'cpu_s': cpu, **figures}


def make_photos(folder: str, count: int, width: int, height: int) -> None:
    """count PNG photographs of width x height in folder: the astronaut enlarged (cubic) with
    noise of up to 6 levels."""
    import cv2
    from skimage import data
    rng = np.random.default_rng(0)
    base = cv2.resize(data.astronaut()[..., ::-1], (width, height), interpolation=cv2.INTER_CUBIC)
    for i in range(count):
        noisy = np.clip(base + rng.integers(-6, 7, base.shape, dtype=np.int16), 0, 255)
        cv2.imwrite(os.path.join(folder, f'photo{i}.png'), noisy.astype(np.uint8))


def checkout(rev: str, folder: str) -> str:
    """The files of commit `rev` of this repository, extracted under folder (git archive); their
    root."""
    root = os.path.join(folder, 'before')
    os.makedirs(root)
    archive = subprocess.run(['git', '-C', REPO, 'archive', rev], capture_output=True,
                             check=True).stdout
    subprocess.run(['tar', '-x', '-C', root], input=archive, check=True)
    return root


def pipeline_table(args: argparse.Namespace) -> None:
    """The command end to end: each path at each tile size, one cell (process) each."""
    width, height = (int(v) for v in args.pipeline_size.split('x'))
    with tempfile.TemporaryDirectory(prefix='bench_restore_') as work:
        inputs = os.path.join(work, 'in')
        os.makedirs(inputs)
        make_photos(inputs, args.pipeline_images, width, height)
        weights = os.path.join(work, 'tiny.pth')
        torch.manual_seed(0)
        net = new_network(TINY, head=True)
        torch.save({'params': net.state_dict()}, weights)
        paths = [('serial', REPO, ['--tile-batch', '1', '--io-threads', '0']),
                 ('default', REPO, [])]
        if args.before_rev:
            paths.insert(0, (f'before ({args.before_rev})', checkout(args.before_rev, work), []))
        sigma = ', with --uncertainty (σ PNG and .npy)' if args.pipeline_sigma else ''
        print(f'\n### restore.py end to end: {args.pipeline_images} PNG photos of {width}x{height} '
              f'({width * height / 1e6:.1f} MP), SRResNet {TINY["num_feat"]} features '
              f'{TINY["num_block"]} block, overlap {args.overlap}, {args.device}, torch '
              f'{args.pipeline_threads} thread(s){sigma}; seconds per 12-MP image\n')
        print('| Tiles | Path | MP/s | forward s | host s, critical path (wall - forward) '
              '| host CPU s |\n|---|---|---|---|---|---|')
        for tile in args.pipeline_tiles:
            for name, tree, extra in paths:
                out = os.path.join(work, 'out', f'{tile}_{name.split()[0]}')
                argv = ['--arch', 'SRResNet', '--arch-opt', f'num_feat={TINY["num_feat"]}',
                        f'num_block={TINY["num_block"]}', '--weights', weights, '-i', inputs,
                        '-o', out, '--tile', str(tile), '--tile-overlap', str(args.overlap),
                        *extra, *(['--uncertainty'] if args.pipeline_sigma else [])]
                r = spawn({'kind': 'pipeline', 'device': args.device, 'argv': argv,
                           'threads': args.pipeline_threads}, args.cell_timeout, tree)
                if 'error' in r:
                    print(f'| {tile}² | {name} | {r["error"]} | - | - | - |', flush=True)
                    continue
                per = 12 / r['megapixels']  # seconds per 12 megapixels
                host_wall = r['seconds'] - r['forward_s']
                host_cpu = r['cpu_s'] - r['forward_cpu_s']
                cells = [r['megapixels'] / r['seconds'], r['forward_s'] * per, host_wall * per,
                         host_cpu * per]
                print(f'| {tile}² | {name} | ' + ' | '.join(f'{c:.2f}' for c in cells) + ' |',
                      flush=True)


def batches_table(args: argparse.Namespace) -> None:
    """Megapixels/s of Restorer.restore_tensor per tiles per forward, per backbone and tile."""
    print(f'\n### Tiles per forward (--tile-batch): {args.size}x{args.size} image, overlap '
          f'{args.overlap}, fp32, {args.device}, megapixels/s\n')
    print('| Backbone | tile | ' + ' | '.join(f'batch {b}' for b in args.batches) + ' |\n|---|---|'
          + '---|' * len(args.batches))
    for arch in args.batch_archs:
        for tile in args.batch_tiles:
            cells = []
            for batch in args.batches:
                r = spawn({'kind': 'speed', 'arch': arch, 'device': args.device, 'size': args.size,
                           'mode': 'fp32', 'tile': tile, 'overlap': args.overlap,
                           'repeat': args.repeat, 'batch': batch}, args.cell_timeout)
                cells.append(r['error'] if 'error' in r else f"{r['mp_per_s']:.3f}")
            print(f'| {arch} | {tile}² | ' + ' | '.join(cells) + ' |', flush=True)


def spawn(cell: dict, timeout: float, tree: str | None = None) -> dict:
    """run_cell in a fresh process, with basicsr_tur imported from `tree` when given; {'error': ...}
    when it fails or runs past timeout."""
    env = None
    if tree:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.environ.get('PYTHONPATH', '')]))
    try:
        done = subprocess.run([sys.executable, __file__, '--cell', json.dumps(cell)], capture_output=True, text=True,
                              timeout=timeout, env=env)
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
    tables = ['throughput', 'memory', 'psnr', 'batches', 'pipeline']
    parser.add_argument('--tables', nargs='+', default=tables, choices=tables)
    parser.add_argument('--batch-archs', nargs='+', default=['tiny', 'SRResNet'],
                        help="backbones of the batches table ('tiny': TINY)")
    parser.add_argument('--batch-tiles', nargs='+', type=int, default=[128])
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 2, 4, 8])
    parser.add_argument('--pipeline-tiles', nargs='+', type=int, default=[128, 512])
    parser.add_argument('--pipeline-images', type=int, default=3)
    parser.add_argument('--pipeline-size', default='4000x3000', help='WIDTHxHEIGHT of the photos')
    parser.add_argument('--pipeline-threads', type=int, default=1,
                        help='torch threads of the pipeline cells')
    parser.add_argument('--pipeline-sigma', action='store_true',
                        help='the pipeline also writes σ maps (--uncertainty)')
    parser.add_argument('--before-rev', help='also run the restore.py of this commit')
    parser.add_argument('--cell', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell))))
        return
    print(f'<!-- {platform.node()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, device {args.device}, {time.strftime("%Y-%m-%d")} -->')
    if 'throughput' in args.tables:
        throughput_table(args)
    if 'memory' in args.tables:
        memory_table(args)
    if 'psnr' in args.tables:
        psnr_table(args)
    if 'batches' in args.tables:
        batches_table(args)
    if 'pipeline' in args.tables:
        pipeline_table(args)


if __name__ == '__main__':
    main()
