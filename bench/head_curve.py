"""Learning curves of the TUR head: the authors' head (features shared with the restorer) against the head on
detached features (`network_g.uncertainty_detach: true`), and plain L1, on one task (Gaussian noise).

    python bench/head_curve.py [--steps 1500] [--seeds 0 1 2] [--out bench/figures/head_curve] [--threads 1]

The setting of issue 9's measurement: SRResNet with 16 features and 16 blocks, batch 4 of 64x64 patches cut from
scikit-image's shipped photographs (astronaut, coffee, rocket, the left part of motorcycle_left) with MiOIR's noise
(sigma drawn in [15, 50] per patch), Adam lr 2e-3 (betas 0.9/0.99, constant), one thread. Every run of a seed sees
the same patches and noise in the same order; only the loss and the head differ. Evaluated every --eval_every steps
on held-out crops (chelsea, the right part of motorcycle_left) at sigma 15, 25 and 50 with fixed noise: PSNR of the
8-bit result, as test.py scores it.

Writes <out>.md (a table: test PSNR at chosen steps, mean over seeds), <out>.csv (every logged step of every run:
training L1 of the restored batch, the loss, test PSNR) and <out>.png (two panels: training L1 smoothed over 25
steps, and test PSNR; one line per configuration, mean over seeds) when matplotlib is installed
(requirements-dev.txt).
"""
from __future__ import annotations

import basicsr_tur  # noqa: F401  # isort: skip  (first: it adds the torchvision alias basicsr needs)
import argparse
import platform
import time

import cv2
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from basicsr_tur.data.degradations import add_noise
from basicsr_tur.losses.tur_loss import TURLoss
from basicsr_tur.utils.files import atomic_write
from basicsr_tur.utils.tables import csv_table, markdown_table

CONFIGS = {  # label -> (loss, uncertainty head, head on detached features)
    'L1': ('L1', False, False),
    "TUR, authors' head": ('TUR', True, False),
    'TUR, detached head': ('TUR', True, True),
}
TEST_SIGMAS = (15, 25, 50)
REPORT_STEPS = (0, 100, 300, 500, 700, 1000, 1500)


def photos() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training images and held-out 128x128 test crops, RGB float32 in [0, 1]."""
    motorcycle = skimage.data.stereo_motorcycle()[0]
    train = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), motorcycle[:, :440]]
    test = [cv2.resize(skimage.data.chelsea(), (128, 128), interpolation=cv2.INTER_AREA),
            motorcycle[200:328, 500:628]]
    return [im.astype(np.float32) / 255 for im in train], [im.astype(np.float32) / 255 for im in test]


def training_batches(train: list[np.ndarray], steps: int, batch: int, size: int,
                     seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` batches of (noisy, clean) patches (batch, 3, size, size), drawn once so every config sees the same."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        lq, gt = [], []
        for _ in range(batch):
            img = train[rng.integers(len(train))]
            top, left = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
            patch = np.ascontiguousarray(img[top:top + size, left:left + size])
            gt.append(patch)
            lq.append(add_noise(patch, {'sigma': float(rng.uniform(15, 50))}, rng))
        out.append(tuple(torch.from_numpy(np.stack(x).transpose(0, 3, 1, 2)) for x in (lq, gt)))
    return out


def test_pairs(test: list[np.ndarray]) -> list[tuple[torch.Tensor, np.ndarray]]:
    """(noisy input (1, 3, H, W), clean 8-bit BGR image) for every test crop and sigma, with fixed noise."""
    pairs = []
    for i, img in enumerate(test):
        for sigma in TEST_SIGMAS:
            noisy = add_noise(img, {'sigma': float(sigma)}, np.random.default_rng(1000 * i + sigma))
            gt8 = tensor2img([torch.from_numpy(img.transpose(2, 0, 1))])
            pairs.append((torch.from_numpy(noisy.transpose(2, 0, 1))[None], gt8))
    return pairs


def test_psnr(net: torch.nn.Module, pairs: list[tuple[torch.Tensor, np.ndarray]]) -> float:
    """Mean PSNR (8-bit, RGB, no crop) of the network's output over the test pairs."""
    net.eval()
    with torch.no_grad():
        values = [calculate_psnr(tensor2img([net(lq)]), gt, crop_border=0) for lq, gt in pairs]
    net.train()
    return float(np.mean(values))


def run(label: str, batches, pairs, seed: int, lr: float, eval_every: int) -> list[dict]:
    """Train one configuration from the seed's initial weights; return one record per step."""
    loss_name, head, detach = CONFIGS[label]
    torch.manual_seed(seed)
    net = build_network({'type': 'SRResNet', 'num_feat': 16, 'num_block': 16, 'uncertainty_head': head,
                         'uncertainty_detach': detach})
    optim = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
    tur = TURLoss()
    task_ids = torch.zeros(batches[0][0].shape[0], dtype=torch.long)
    records = [{'config': label, 'seed': seed, 'step': 0, 'train_l1': float('nan'), 'loss': float('nan'),
                'test_psnr': test_psnr(net, pairs)}]
    for step, (lq, gt) in enumerate(batches, 1):
        if head:
            out, u = net(lq, with_uncertainty=True)
            loss = tur(out, gt, u, task_ids)
        else:
            out = net(lq)
            loss = F.l1_loss(out, gt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        record = {'config': label, 'seed': seed, 'step': step, 'train_l1': F.l1_loss(out.detach(), gt).item(),
                  'loss': loss.item(), 'test_psnr': float('nan')}
        if step % eval_every == 0 or step == len(batches):
            record['test_psnr'] = test_psnr(net, pairs)
        records.append(record)
    return records


def table(records: list[dict], steps: list[int]) -> str:
    """Markdown: mean (min-max over seeds) test PSNR of each configuration at the given steps."""
    rows = []
    for label in CONFIGS:
        cells = []
        for s in steps:
            vals = [r['test_psnr'] for r in records if r['config'] == label and r['step'] == s]
            cells.append(f'{np.mean(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})' if len(vals) > 1
                         else f'{vals[0]:.2f}')
        rows.append([label] + cells)
    return markdown_table(['Configuration'] + [f'step {s}' for s in steps], rows)


def figure(records: list[dict], path: str) -> bool:
    """Two panels (training L1 smoothed over 25 steps; test PSNR), mean over seeds; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_l1, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4))
    for label in CONFIGS:
        runs = {}
        for r in records:
            if r['config'] == label:
                runs.setdefault(r['seed'], []).append(r)
        l1 = np.mean([[r['train_l1'] for r in rs[1:]] for rs in runs.values()], axis=0)
        smooth = np.convolve(l1, np.ones(25) / 25, mode='valid')
        ax_l1.plot(np.arange(25, len(l1) + 1), smooth, label=label)
        first = next(iter(runs.values()))
        steps = [r['step'] for r in first if np.isfinite(r['test_psnr'])]
        psnr = np.mean([[r['test_psnr'] for r in rs if np.isfinite(r['test_psnr'])] for rs in runs.values()], axis=0)
        ax_psnr.plot(steps, psnr, label=label)
    ax_l1.set(xlabel='step', ylabel='training L1 of the restored batch', title='Restoration L1 (25-step mean)')
    ax_psnr.set(xlabel='step', ylabel='PSNR (dB)', title='Held-out noisy crops, sigma 15/25/50')
    for ax in (ax_l1, ax_psnr):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=100))
    plt.close(fig)
    return True


def main() -> None:
    """Run every configuration for every seed; write the table, the CSV and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--eval_every', type=int, default=50)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='bench/figures/head_curve')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = photos()
    pairs = test_pairs(test)
    records = []
    start = time.time()
    for seed in args.seeds:
        batches = training_batches(train, args.steps, args.batch, args.size, seed)
        for label in CONFIGS:
            records += run(label, batches, pairs, seed, args.lr, args.eval_every)
            print(f'seed {seed}, {label}: test PSNR {records[-1]["test_psnr"]:.2f} dB after {args.steps} steps '
                  f'({time.time() - start:.0f} s so far)', flush=True)
    steps = [s for s in REPORT_STEPS if s < args.steps] + [args.steps]
    text = (f'torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}; seeds {args.seeds}; '
            f'{args.steps} steps; test PSNR in dB, mean (min-max) over seeds\n\n' + table(records, steps))
    atomic_write(args.out + '.md', text)
    atomic_write(args.out + '.csv', csv_table(list(records[0]), [list(r.values()) for r in records]))
    drawn = figure(records, args.out + '.png')
    print(text)
    print(f'wrote {args.out}.md, .csv' + (', .png' if drawn else ' (no figure: pip install matplotlib)'))


if __name__ == '__main__':
    main()
