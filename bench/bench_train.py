"""Benchmark training steps (forward + backward + Adam) of every backbone at its official size: TUR against L1, in
fp32, bf16 and bf16 + torch.compile, and the data loader's samples/s against the model's consumption.

    python bench/bench_train.py [--device cuda] [--batch 8] [--size 128] [--repeat 5] [--archs SRResNet ...]
        [--modes fp32 bf16 bf16+compile] [--workers 4] [--arch-batch Restormer=2 ...] [--cell-timeout S]

Each cell (backbone, mode, loss) runs in a process of its own, so that its peak memory is its own (peak allocated
CUDA memory on a GPU, peak resident memory of the process on CPU) and a cell killed for lack of memory is reported
as such instead of ending the benchmark. Prints Markdown tables (paste into BENCHMARKS.md): images/s with L1 (no
head) and TUR (head on, TURLoss over 7 tasks), TUR's overhead, peak memory; then SyntheticTaskDataset samples/s
(7 MiO tasks, 128² patches) against the fastest row.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import signal
import subprocess
import sys
import time

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from bench_loss import median_time  # this folder: `python bench/bench_train.py` puts it on sys.path

from basicsr_tur.losses.tur_loss import TURLoss

OFFICIAL = {
    'SRResNet': {'type': 'SRResNet'},
    'Restormer': {'type': 'Restormer'},
    'PromptIR': {'type': 'PromptIR', 'decoder': True},
    'AirNet': {'type': 'AirNet'},
    'Uformer-B': {'type': 'Uformer', 'embed_dim': 32, 'depths': [1, 2, 8, 8, 2, 8, 8, 2, 1], 'modulator': True,
                  'img_size': 128},
    'Transweather': {'type': 'Transweather'},
}


def step_time(opt: dict, loss: str, batch: int, size: int, repeat: int, device: str, mode: str) -> tuple[float, float]:
    """Median seconds of one Adam step after warm-up, and peak memory in GiB (allocated on CUDA, process RSS on CPU)."""
    torch.manual_seed(0)
    net = build_network(dict(opt, uncertainty_head=loss == 'TUR')).to(device).train()
    optim = torch.optim.Adam(net.parameters(), lr=1e-4)
    model = torch.compile(net) if mode.endswith('+compile') else net
    dtype = torch.bfloat16 if mode.startswith('bf16') else None
    lq = torch.rand(batch, 3, size, size, device=device)
    gt = torch.rand(batch, 3, size, size, device=device)
    ids = (torch.arange(batch) % 7).to(device)
    tur = TURLoss()

    def step() -> None:
        optim.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if loss == 'TUR':
                out, u = model(lq, with_uncertainty=True)
                value = tur(out, gt, u, ids)
            else:
                value = F.l1_loss(model(lq).float(), gt)
        value.backward()
        optim.step()

    if device == 'cuda':
        step()  # warm up before resetting the peak, so that it measures steady training
        torch.cuda.reset_peak_memory_stats()
    seconds = median_time(step, repeat, device, warmup=3 if mode.endswith('+compile') else 1)
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return seconds, peak


def run_cell(args: argparse.Namespace, name: str, mode: str, loss: str, batch: int) -> tuple[float, float] | str:
    """(seconds, peak GiB) of one cell measured in a fresh process, or why there is none (OOM, timeout, error)."""
    cmd = [sys.executable, __file__, '--cell', name, mode, loss, '--batch', str(batch), '--size', str(args.size),
           '--repeat', str(args.repeat), '--device', args.device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout)
    except subprocess.TimeoutExpired:
        return f'over {args.cell_timeout:.0f} s'
    if proc.returncode in (-signal.SIGKILL, 137) or 'out of memory' in proc.stderr.lower():
        return 'OOM'
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f'exit code {proc.returncode}'])[-1]
        return f'error: {last[:120]}'
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result['seconds'], result['peak_gib']


def loader_rate(batch: int, size: int, workers: int) -> float:
    """Samples/s of SyntheticTaskDataset (7 MiO tasks on the fly from scikit-image photos) through a DataLoader."""
    import tempfile

    import cv2
    import skimage.data
    from basicsr.data import build_dataset
    with tempfile.TemporaryDirectory() as root:
        for name in ('astronaut', 'coffee', 'rocket', 'chelsea'):
            cv2.imwrite(f'{root}/{name}.png', getattr(skimage.data, name)()[..., ::-1])
        ds = build_dataset({'name': 'bench', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'seed': 0,
                            'tasks': ['sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark'], 'dataroot_gt': root,
                            'gt_size': size, 'use_hflip': True, 'use_rot': True, 'dataset_enlarge_ratio': 50})
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
        it = iter(loader)
        next(it)
        start, n = time.perf_counter(), 0
        while n < 40 * batch:
            n += next(it)['lq'].shape[0]
        return n / (time.perf_counter() - start)


def count(opt: dict, head: bool) -> int:
    """Parameters of the backbone, built on the meta device (no memory)."""
    with torch.device('meta'):
        return sum(p.numel() for p in build_network(dict(opt, uncertainty_head=head)).parameters())


def main() -> None:
    """Time each backbone, one process per cell, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--arch-batch', nargs='+', default=[], metavar='ARCH=N',
                        help='another batch for some backbones (e.g. Restormer=2 where batch 8 does not fit in memory)')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--archs', nargs='+', default=list(OFFICIAL), choices=list(OFFICIAL))
    parser.add_argument('--modes', nargs='+', default=['fp32'], choices=['fp32', 'bf16', 'bf16+compile'])
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--cell-timeout', type=float, default=None,
                        help='seconds allowed to one cell (process start, compilation and steps included)')
    parser.add_argument('--no-loader', action='store_true', help='skip the data loader measurement')
    parser.add_argument('--cell', nargs=3, metavar=('ARCH', 'MODE', 'LOSS'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:  # a child process: one measurement, printed as JSON
        name, mode, loss = args.cell
        seconds, peak = step_time(OFFICIAL[name], loss, args.batch, args.size, args.repeat, args.device, mode)
        print(json.dumps({'seconds': seconds, 'peak_gib': peak}))
        return
    batches = {name: args.batch for name in args.archs}
    for item in args.arch_batch:
        name, _, value = item.partition('=')
        if name not in OFFICIAL or not value.isdigit() or int(value) < 1:
            parser.error(f'--arch-batch {item}: expected ARCH=N with ARCH one of {", ".join(OFFICIAL)}')
        batches[name] = int(value)
    print(f'# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, '
          f'{platform.processor() or platform.machine()}, {args.size}x{args.size}, '
          f'median of {args.repeat} step(s)\n')
    memory = 'Peak GiB allocated (TUR)' if args.device == 'cuda' else 'Peak RSS GiB (L1 / TUR)'
    print(f'| Backbone | Params (M) | Head (M) | Mode | Batch | L1 (img/s) | TUR (img/s) | TUR vs L1 time | {memory} |')
    print('|---|---|---|---|---|---|---|---|---|')
    fastest = 0.0
    for name in args.archs:
        opt = OFFICIAL[name]
        params, with_head = count(opt, False), count(opt, True)
        for mode in args.modes:
            start = time.perf_counter()
            batch = batches[name]
            l1, tur = run_cell(args, name, mode, 'L1', batch), run_cell(args, name, mode, 'TUR', batch)
            rate = {k: f'{batch / v[0]:.3g}' if isinstance(v, tuple) else v for k, v in (('l1', l1), ('tur', tur))}
            both = isinstance(l1, tuple) and isinstance(tur, tuple)
            overhead = f'{100 * (tur[0] / l1[0] - 1):+.1f}%' if both else '-'
            if isinstance(l1, tuple):
                fastest = max(fastest, batch / l1[0])
            if args.device == 'cuda':
                peak = f'{tur[1]:.2f}' if isinstance(tur, tuple) else '-'
            else:
                peak = ' / '.join(f'{v[1]:.1f}' if isinstance(v, tuple) else '-' for v in (l1, tur))
            print(f'| {name} | {params / 1e6:.3f} | {(with_head - params) / 1e6:.3f} | {mode} | {batch} | '
                  f'{rate["l1"]} | {rate["tur"]} | {overhead} | {peak} |', flush=True)
            print(f'  ({name} {mode}: {time.perf_counter() - start:.0f} s)', file=sys.stderr, flush=True)
    if args.no_loader:
        return
    rate = loader_rate(args.batch, args.size, args.workers)
    verdict = 'the loader keeps up' if rate >= fastest else 'the loader is the bottleneck'
    print(f'\nData loader (SyntheticTaskDataset, {args.workers} workers): {rate:.0f} samples/s; the fastest row above '
          f'consumes {fastest:.1f} img/s: {verdict}.')


if __name__ == '__main__':
    main()
