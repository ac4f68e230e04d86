"""Benchmark one training step (forward + backward + Adam) of every backbone at its official size, TUR against L1.

    python bench/bench_archs.py [--batch 8] [--size 128] [--repeat 2] [--archs SRResNet PromptIR ...]

Prints a Markdown table (paste into BENCHMARKS.md): parameters (head off), the head's parameters, seconds per step
with L1 (no head) and with TUR (head on, TURLoss over 7 tasks), and the difference.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import torch
import torch.nn.functional as F
from basicsr.archs import build_network

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


def step_time(opt: dict, loss: str, batch: int, size: int, repeat: int, device: str) -> float:
    """Median seconds of one Adam step after one warm-up step."""
    torch.manual_seed(0)
    net = build_network(dict(opt, uncertainty_head=loss == 'TUR')).to(device).train()
    optim = torch.optim.Adam(net.parameters(), lr=1e-4)
    lq = torch.rand(batch, 3, size, size, device=device)
    gt = torch.rand(batch, 3, size, size, device=device)
    ids = (torch.arange(batch) % 7).to(device)
    tur = TURLoss()

    def step() -> None:
        optim.zero_grad(set_to_none=True)
        if loss == 'TUR':
            out, u = net(lq, with_uncertainty=True)
            tur(out, gt, u, ids).backward()
        else:
            F.l1_loss(net(lq), gt).backward()
        optim.step()

    step()
    times = []
    for _ in range(repeat):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count(opt: dict, head: bool) -> int:
    """Parameters of the backbone, built on the meta device (no memory)."""
    with torch.device('meta'):
        return sum(p.numel() for p in build_network(dict(opt, uncertainty_head=head)).parameters())


def main() -> None:
    """Time each backbone and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--archs', nargs='+', default=list(OFFICIAL), choices=list(OFFICIAL))
    args = parser.parse_args()
    print(f'# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, '
          f'{platform.processor() or platform.machine()}, batch {args.batch}, {args.size}x{args.size}\n')
    print('| Backbone | Params (M) | Head (M) | L1 step (s) | TUR step (s) | TUR vs L1 |\n|---|---|---|---|---|---|')
    for name in args.archs:
        opt = OFFICIAL[name]
        params, with_head = count(opt, False), count(opt, True)
        l1 = step_time(opt, 'L1', args.batch, args.size, args.repeat, args.device)
        tur = step_time(opt, 'TUR', args.batch, args.size, args.repeat, args.device)
        print(f'| {name} | {params / 1e6:.3f} | {(with_head - params) / 1e6:.3f} | {l1:.2f} | {tur:.2f} | '
              f'{100 * (tur / l1 - 1):+.1f}% |', flush=True)


if __name__ == '__main__':
    main()
