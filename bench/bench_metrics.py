"""Cost and figures of the two scoring protocols on one test image: basicsr's 8-bit metrics against the float
metrics of AirNet/PromptIR's test code (basicsr_tur/metrics/skimage_metric.py).

    python bench/bench_metrics.py [--sigma 0.05] [--repeat 10]

A 481 x 321 crop of scikit-image's astronaut (BSD68's image size) with Gaussian noise of `--sigma` (on [0, 1]) as the
"restored" image; prints one Markdown row per metric: ms per image on this host and the value, so that the size of
the protocol difference (SSIM's window above all) is seen beside its cost.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import skimage.data

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import basicsr_tur  # noqa: F401  (the torchvision alias basicsr needs, and the float metrics)
from basicsr_tur.utils.tables import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sigma', type=float, default=0.05, help='noise of the "restored" image, on [0, 1]')
    parser.add_argument('--repeat', type=int, default=10, help='timed calls per metric')
    args = parser.parse_args()
    from basicsr.metrics import calculate_metric  # after basicsr_tur: its torchvision alias
    gt = skimage.data.astronaut()[:321, :481].astype(np.float64) / 255
    out = np.clip(gt + np.random.default_rng(0).normal(0, args.sigma, gt.shape), 0, 1)
    images = {'8-bit': ((out * 255).round().astype(np.uint8), (gt * 255).round().astype(np.uint8)),
              'float': (out, gt)}
    rows = []
    for name, kind in (('calculate_psnr', '8-bit'), ('calculate_ssim', '8-bit'),
                       ('calculate_psnr_skimage', 'float'), ('calculate_ssim_skimage', 'float')):
        data = {'img': images[kind][0], 'img2': images[kind][1]}
        opt = {'type': name, 'crop_border': 0}
        value = calculate_metric(data, opt)  # warm-up (imports)
        start = time.perf_counter()
        for _ in range(args.repeat):
            calculate_metric(data, opt)
        rows.append((name, kind, f'{(time.perf_counter() - start) / args.repeat * 1000:.1f}', f'{value:.4f}'))
    print(markdown_table(('metric', 'images', 'ms / image', 'value'), rows), end='')


if __name__ == '__main__':
    main()
