"""Benchmark TURLoss (both variants) against plain L1: the loss alone, and one full SRResNet training step with each.

    python bench/bench_loss.py [--threads N] [--device cpu|cuda] [--repeat 20] [--no_step]

Prints Markdown tables (paste into BENCHMARKS.md). Times are medians over --repeat runs after warm-up.
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from basicsr.archs import build_network

from basicsr_tur.losses.tur_loss import TURLoss


def median_time(fn, repeat: int, device: str, warmup: int = 3) -> float:
    """Median seconds of fn() over `repeat` runs after `warmup` untimed runs (synchronising CUDA around each)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loss_only(batch: int, size: int, device: str, repeat: int) -> tuple[float, float, float]:
    """Forward+backward seconds of L1, TUR per_task and TUR cumulative (7 tasks) on (batch, 3, size, size) tensors."""
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(batch, 3, size, size, generator=g).to(device).requires_grad_(True)
    target = torch.rand(batch, 3, size, size, generator=g).to(device)
    u = (torch.rand(batch, 3, size, size, generator=g) + 0.1).to(device).requires_grad_(True)
    ids = (torch.arange(batch) % 7).to(device)
    per_task, cumulative = TURLoss(), TURLoss(variant='cumulative')

    def step_l1():
        F.l1_loss(pred, target).backward()

    return (median_time(step_l1, repeat, device),
            median_time(lambda: per_task(pred, target, u, ids).backward(), repeat, device),
            median_time(lambda: cumulative(pred, target, u, ids).backward(), repeat, device))


def train_step(batch: int, size: int, device: str, repeat: int, loss: str, head: bool) -> float:
    """Seconds of one Adam step of the official SRResNet (64 features, 16 blocks) with the given loss."""
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'uncertainty_head': head}).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    lq = torch.rand(batch, 3, size, size, device=device)
    gt = torch.rand(batch, 3, size, size, device=device)
    ids = (torch.arange(batch) % 7).to(device)
    tur = TURLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        if loss == 'TUR':
            out, u = net(lq, with_uncertainty=True)
            tur(out, gt, u, ids).backward()
        else:
            F.l1_loss(net(lq), gt).backward()
        opt.step()

    return median_time(step, repeat, device)


def main() -> None:
    """Run both benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--step_repeat', type=int, default=5)
    parser.add_argument('--no_step', action='store_true', help='time the losses only, not the training step')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, '
          f'{platform.processor() or platform.machine()}, {args.size}x{args.size}\n')
    print('| Loss fwd+bwd | batch | L1 (ms) | TUR per_task (ms) | TUR cumulative (ms) | per_task / L1 | '
          'cumulative / L1 |\n|---|---|---|---|---|---|---|')
    for batch in (8, 32):
        l1, per_task, cumulative = loss_only(batch, args.size, args.device, args.repeat)
        print(f'| loss only | {batch} | {l1 * 1e3:.2f} | {per_task * 1e3:.2f} | {cumulative * 1e3:.2f} | '
              f'{per_task / l1:.2f}x | {cumulative / l1:.2f}x |')
    if args.no_step:
        return
    print('\n| SRResNet 16x64 train step, batch 8 | time (ms) | vs L1 without head |\n|---|---|---|')
    base = train_step(8, args.size, args.device, args.step_repeat, 'L1', head=False)
    tur = train_step(8, args.size, args.device, args.step_repeat, 'TUR', head=True)
    print(f'| L1, no head (baseline) | {base * 1e3:.1f} | +0.0% |')
    print(f'| TUR, with uncertainty head | {tur * 1e3:.1f} | {100 * (tur / base - 1):+.1f}% |')


if __name__ == '__main__':
    main()
