"""Host time of one training step at a tiny batch, where the per-step overhead (loops over parameters, syncs) shows.

    python bench/bench_host_step.py [--recipes mio7/Uformer_TUR.yml aio3/PromptIR_TUR.yml] [--batch 1] [--size 32]
                                    [--steps 20] [--threads 1]

Builds TURModel from each paper recipe at full size (fp32, uncompiled, on the CPU, one thread) and times
`optimize_parameters` on a batch of `--batch` random `--size`² crops: the median over `--steps` steps after three
warm-up steps of the process's CPU time (time.process_time: what the host spent, less sensitive than wall time to
other jobs on a shared machine) and of wall time; then the same forward and backward alone (the model's
`compute_losses` and `backward`), so that the rest of the step (zero_grad, the non-finite guard, the optimizer, EMA,
logging) is the difference. On a CPU the optimizer's arithmetic is part of that rest; on a GPU it is one fused
kernel, and what is left is the host's work. Prints one Markdown table; runs on any commit of this project (the
model's public interface only), so that `before` and `after` are measured by the same script.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import basicsr_tur  # noqa: F401  (the torchvision alias, before basicsr)  # isort: skip
import torch
from basicsr.models import build_model

from basicsr_tur.utils.options import parse_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def time_recipe(recipe: str, batch: int, size: int, steps: int, root: str) -> tuple[int, float, float, float]:
    """(parameter tensors, median host ms, median wall ms, median host ms of the forward and backward alone) per
    step of the recipe's model."""
    opt, _ = parse_options(root, True, [
        '-opt', osp.join(REPO, 'options', 'train', recipe), '--force_yml', 'num_gpu=0', 'train:compile=false',
        'train:mixed_precision=null', f'name=host_step_{osp.basename(recipe)[:-4]}'])
    model = build_model(opt)
    tasks = opt['tasks']
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(batch) % len(tasks)
    data = {'lq': torch.rand(batch, 3, size, size, generator=g), 'gt': torch.rand(batch, 3, size, size, generator=g),
            'task_id': ids, 'task': [tasks[i] for i in ids.tolist()]}
    host, wall, forward_backward = [], [], []
    for it in range(1, steps + 4):
        model.feed_data(data)
        t0, w0 = time.process_time(), time.perf_counter()
        model.optimize_parameters(it)
        if it > 3:
            host.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
            # The same forward and backward alone (the model's own compute_losses), to tell the rest of the step
            # (zero_grad, guard, optimizer, EMA, logging) apart.
            t0 = time.process_time()
            loss, _ = model.compute_losses(it)
            loss.backward()
            forward_backward.append(time.process_time() - t0)
    model.get_current_log()
    return (sum(1 for _ in model.net_g.parameters()), *(1000 * statistics.median(v)
                                                         for v in (host, wall, forward_backward)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--recipes', nargs='+', default=['mio7/Uformer_TUR.yml', 'aio3/PromptIR_TUR.yml'])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(osp.join(root, 'experiments'), exist_ok=True)
        for recipe in args.recipes:
            tensors, host_ms, wall_ms, fb_ms = time_recipe(recipe, args.batch, args.size, args.steps, root)
            rows.append(f'| {recipe} | {tensors} | {args.batch}x{args.size}² | {host_ms:.1f} | {wall_ms:.1f} | '
                        f'{fb_ms:.1f} | {host_ms - fb_ms:.1f} |')
    print('| recipe | parameter tensors | batch | host ms/step | wall ms/step | forward + backward host ms | '
          'rest of the step host ms |\n|---|---|---|---|---|---|---|\n' + '\n'.join(rows))


if __name__ == '__main__':
    main()
