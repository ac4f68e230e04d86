"""Host-device sync points per training step, for the plain L1 loss, both TUR variants and every task weighting.

    python bench/count_syncs.py [--batch 8] [--size 32] [--steps 3] [--losses L1Loss TURLoss ...]

Builds TURModel from the demo's recipes (options/train/demo/Restormer_TUR.yml for TURLoss, Restormer_L1.yml for the
others, reduced to a tiny batch), runs two warm-up steps (which create the optimizer state) and counts, over `--steps`
calls of `optimize_parameters`, what utils/sync_count.SyncCounter sees (every `.item()`, data-dependent-size op and
host read; the optimizer's host-side step counters excluded). On a CPU every tensor counts as a device tensor, so
the count is what a GPU would wait for. Prints one Markdown table (syncs per step, and by kind). Runs on any tree that
has basicsr_tur/utils/sync_count.py (copy it in to count an older commit).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import basicsr_tur  # noqa: F401  (the torchvision alias, before basicsr)  # isort: skip
import torch
from basicsr.models import build_model

from basicsr_tur.utils.options import parse_options
from basicsr_tur.utils.sync_count import SyncCounter, optimizer_step_counters

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOSSES = {  # name -> (recipe, force_yml overrides)
    'L1Loss': ('Restormer_L1.yml', []),
    'TURLoss per_task': ('Restormer_TUR.yml', ['train:pixel_opt:variant=per_task']),
    'TURLoss cumulative': ('Restormer_TUR.yml', ['train:pixel_opt:variant=cumulative']),
    'KendallLoss': ('Restormer_L1.yml', ['train:pixel_opt={type: KendallLoss}']),
    'RLWLoss': ('Restormer_L1.yml', ['train:pixel_opt={type: RLWLoss}']),
    'DWALoss': ('Restormer_L1.yml', ['train:pixel_opt={type: DWALoss, window: 1}']),
    'FAMOLoss': ('Restormer_L1.yml', ['train:pixel_opt={type: FAMOLoss}']),
}


def count(loss: str, batch: int, size: int, steps: int, root: str) -> SyncCounter:
    """Sync points of `steps` training steps of the demo recipe with `loss` (after two warm-up steps)."""
    recipe, overrides = LOSSES[loss]
    opt, _ = parse_options(root, True, ['-opt', osp.join(REPO, 'options', 'train', 'demo', recipe), '--force_yml',
                                        f'name=count_syncs_{loss.replace(" ", "_")}', *overrides])
    model = build_model(opt)
    tasks = opt['tasks']
    g = torch.Generator().manual_seed(0)

    def feed() -> None:
        ids = torch.arange(batch) % len(tasks)
        model.feed_data({'lq': torch.rand(batch, 3, size, size, generator=g),
                         'gt': torch.rand(batch, 3, size, size, generator=g), 'task_id': ids,
                         'task': [tasks[i] for i in ids.tolist()]})

    for it in (1, 2):
        feed()
        model.optimize_parameters(it)
    counter = SyncCounter(exclude=optimizer_step_counters(model.optimizer_g))
    for it in range(3, 3 + steps):
        feed()
        with counter:
            model.optimize_parameters(it)
    model.get_current_log()
    return counter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--losses', nargs='+', default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(osp.join(root, 'experiments'), exist_ok=True)
        for loss in args.losses:
            counter = count(loss, args.batch, args.size, args.steps, root)
            kinds = ', '.join(f'{k} {v / args.steps:g}' for k, v in sorted(counter.counts.items())) or '-'
            rows.append(f'| {loss} | {counter.total / args.steps:g} | {kinds} |')
    print('| pixel loss | syncs per step | by kind (per step) |\n|---|---|---|\n' + '\n'.join(rows))


if __name__ == '__main__':
    main()
