"""Benchmark the batched degradations: ms per 128x128 sample, per type, per-sample CPU path against
data/device_degradations.degrade_batch.

    python bench/bench_device_degradations.py [--batch 32] [--size 128] [--repeat 5] [--threads 1]

For each type (MiOIR's default ranges, a new draw per sample) and for a batch mixing all seven: the
per-sample path (degradations.apply_degradation, one numpy image after the other, as a dataset
worker runs it, random draws included) and degrade_batch on one (B, 3, S, S) batch on the CPU, and
on CUDA when there is a GPU (synchronised before and after each timed call; its noise and rain seeds
drawn on the device), with the CUDA output checked against the CPU one for the same random fields
(the largest difference in 8-bit levels and the share of values that differ). The rain kernels are
built beforehand, as the workers would send them; their host cost per sample (padded_rain_kernel)
is printed below the table. Median of --repeat runs after
one warm-up. Prints a Markdown table.
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import skimage.data
import torch

from basicsr_tur.data.degradations import DEGRADATION_TYPES, apply_degradation, sample_params
from basicsr_tur.data.device_degradations import degrade_batch, pack_params, padded_rain_kernel
from basicsr_tur.utils.tables import markdown_table

RAIN_SIDE = 41  # rain_kernel_side of MiOIR's longest streak, 40


def crops(batch: int, size: int) -> list[np.ndarray]:
    """batch different size x size RGB crops of scikit-image's photos, float32 in [0, 1]."""
    rng = np.random.default_rng(0)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    out = []
    for i in range(batch):
        photo = photos[i % len(photos)]
        top, left = (int(rng.integers(0, photo.shape[k] - size + 1)) for k in (0, 1))
        out.append(photo[top:top + size, left:left + size].astype(np.float32) / 255)
    return out


def median_ms(run: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    """Median wall time of run() in ms over repeat calls, after one warm-up call."""
    run()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1, help='torch and cv2 threads on the CPU')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    imgs = crops(args.batch, args.size)
    gt_cpu = torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy())
    cuda = torch.cuda.is_available()
    header = ['type', 'per-sample CPU', f'degrade_batch CPU (batch {args.batch})', 'speed-up']
    if cuda:
        header += [f'degrade_batch CUDA (batch {args.batch})', 'speed-up', 'CUDA - CPU: max levels, share differing']
    rows = []
    for name in (*DEGRADATION_TYPES, 'mixed'):
        rng = np.random.default_rng(1)
        types = DEGRADATION_TYPES if name == 'mixed' else (name,)
        params = [sample_params({'type': types[i % len(types)]}, rng) for i in range(args.batch)]
        packed = torch.from_numpy(np.stack([pack_params(p) for p in params]))
        kernels = np.zeros((args.batch, RAIN_SIDE, RAIN_SIDE), np.float32)
        for i, p in enumerate(params):
            if p['type'] == 'rain':
                kernels[i] = padded_rain_kernel(p, RAIN_SIDE)
        kernels_cpu = torch.from_numpy(kernels)

        def per_sample(params=params) -> None:
            for i, (img, p) in enumerate(zip(imgs, params)):
                apply_degradation(img, p, np.random.default_rng(i))

        def batched(gt, kernel, generator, packed=packed) -> Callable[[], object]:
            return lambda: degrade_batch(gt, packed, rain_kernels=kernel, generator=generator)

        cpu_gen = torch.Generator().manual_seed(0)
        ms_sample = median_ms(per_sample, args.repeat, lambda: None) / args.batch
        ms_cpu = median_ms(batched(gt_cpu, kernels_cpu, cpu_gen), args.repeat,
                           lambda: None) / args.batch
        row = [name, f'{ms_sample:.3f}', f'{ms_cpu:.3f}', f'{ms_sample / ms_cpu:.1f}x']
        if cuda:
            gen = torch.Generator('cuda').manual_seed(0)
            ms_cuda = median_ms(batched(gt_cpu.cuda(), kernels_cpu.cuda(), gen), args.repeat,
                                torch.cuda.synchronize) / args.batch
            fields = torch.Generator().manual_seed(2)
            noise = torch.randn(gt_cpu.shape, generator=fields)
            seeds = torch.rand(gt_cpu.shape[0], *gt_cpu.shape[2:], generator=fields) * 256
            on_cpu = degrade_batch(gt_cpu, packed, rain_kernels=kernels_cpu, noise=noise, rain_seeds=seeds)
            on_cuda = degrade_batch(gt_cpu.cuda(), packed, rain_kernels=kernels_cpu.cuda(), noise=noise.cuda(),
                                    rain_seeds=seeds.cuda()).cpu()
            levels = (on_cuda - on_cpu).abs() * 255
            row += [f'{ms_cuda:.4f}', f'{ms_sample / ms_cuda:.0f}x',
                    f'{float(levels.max()):.2f}, {float((levels > 1e-3).float().mean()):.1e}']
        rows.append(row)
    print(f'ms per {args.size}x{args.size} sample, {args.threads} CPU thread(s), median of '
          f'{args.repeat}' + (f', GPU {torch.cuda.get_device_name()}' if cuda else ', no GPU'))
    print()
    print(markdown_table(header, rows))
    rain = [sample_params({'type': 'rain'}, np.random.default_rng(i)) for i in range(args.batch)]
    ms_kernel = median_ms(lambda: [padded_rain_kernel(p, RAIN_SIDE) for p in rain], args.repeat,
                          lambda: None) / args.batch
    print(f'Rain kernels (padded_rain_kernel, on the host): {ms_kernel:.3f} ms per sample.')


if __name__ == '__main__':
    main()
