"""Kill-and-resume check on a real device: how far a run killed with SIGKILL and resumed with --auto_resume ends from
an uninterrupted run of the same options.

    python bench/resume_check.py [--device cpu|cuda] [--precision fp32|bf16|fp16] [--iters 40] [--kill_at 20]

Trains the demo's SRResNet (options/train/demo/SRResNet_TUR.yml, reduced to 4 blocks and 64² patches so that it
takes seconds) twice from the repository root: run A uninterrupted, run B killed from outside once its training
state `--kill_at` exists, then resumed. Prints one Markdown row: the largest absolute difference between the final
weights (raw and EMA) and how many of their tensors are bit-identical. On CPU the test suite requires bit-identical
weights (tests/test_resume.py); on a GPU, non-deterministic kernels (cuDNN's backward convolutions, atomics) leave a
difference, which this measures. The two experiments are removed afterwards.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from os import path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS = 'options/train/demo/SRResNet_TUR.yml'


def train_cmd(name: str, args: argparse.Namespace) -> list[str]:
    """train.py on the reduced demo options, named `name`."""
    precision = [] if args.precision == 'fp32' else [f'train:mixed_precision={args.precision}']
    return [sys.executable, 'train.py', '-opt', OPTIONS, '--force_yml', f'name={name}',
            f"num_gpu={1 if args.device == 'cuda' else 0}", f'train:total_iter={args.iters}',
            f'train:scheduler:periods=[{args.iters}]', 'network_g:num_block=4', 'datasets:train:gt_size=64',
            f'datasets:train:num_worker_per_gpu={args.workers}', 'logger:save_checkpoint_freq=5', 'logger:print_freq=5',
            f'val:val_freq={10 * args.iters}', *precision]


def remove_experiments(names: list[str]) -> None:
    """Delete the experiments (and tensorboard logs) of these run names under the repository root."""
    for name in names:
        shutil.rmtree(osp.join(ROOT, 'experiments', name), ignore_errors=True)
        shutil.rmtree(osp.join(ROOT, 'tb_logger', name), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--kill_at', type=int, default=20, help='kill run B once this training state exists')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--keep', action='store_true', help='keep the two experiments (experiments/resume_check_*)')
    args = parser.parse_args()
    if args.kill_at % 5 or not 0 < args.kill_at < args.iters:
        parser.error(f'--kill_at {args.kill_at}: must be a multiple of 5 (the state frequency) below --iters')
    tag = f'{args.device}_{args.precision}'
    names = [f'resume_check_{tag}_a', f'resume_check_{tag}_b']
    remove_experiments(names)  # earlier leftovers would be archived and confuse --auto_resume
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    log = tempfile.TemporaryFile('w+')  # the runs' console output, shown if one fails

    def train(name: str, *extra: str) -> None:
        if subprocess.run(train_cmd(name, args) + list(extra), cwd=ROOT, env=env, stdout=log, stderr=log).returncode:
            log.seek(0)
            sys.exit(''.join(log.readlines()[-20:]) + f'\nresume_check: the training run {name} failed (above)')

    try:
        start = time.perf_counter()
        train(names[0])
        seconds = time.perf_counter() - start
        states = osp.join(ROOT, 'experiments', names[1], 'training_states')
        proc = subprocess.Popen(train_cmd(names[1], args), cwd=ROOT, env=env, stdout=log, stderr=log)
        while not osp.exists(osp.join(states, f'{args.kill_at}.state')) and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if osp.exists(osp.join(states, f'{args.iters}.state')):
            sys.exit(f'run B finished before it could be killed: raise --iters above {args.iters}')
        killed_at = max(int(f.split('.')[0]) for f in os.listdir(states) if f.endswith('.state'))
        train(names[1], '--auto_resume')
        final = [torch.load(osp.join(ROOT, 'experiments', n, 'models', f'net_g_{args.iters}.pth'), weights_only=True)
                 for n in names]
    finally:
        if not args.keep:
            remove_experiments(names)
    same, total, worst = 0, 0, {}
    for key in final[0]:  # params and params_ema
        diffs = [(a.float() - b.float()).abs().max().item() for a, b in zip(final[0][key].values(),
                                                                              final[1][key].values())]
        same += sum(d == 0 for d in diffs)
        total += len(diffs)
        worst[key] = max(diffs)
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    print('| Device | Precision | Iterations | Killed after state | Max abs diff (params / params_ema) '
          '| Bit-identical tensors | Run A (s) |')
    print('|---|---|---|---|---|---|---|')
    print(f"| {device} | {args.precision} | {args.iters} | {killed_at} | "
          f"{' / '.join(f'{worst[k]:.3g}' for k in final[0])} | {same}/{total} | {seconds:.0f} |")


if __name__ == '__main__':
    main()
