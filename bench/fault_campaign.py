"""Fault campaign: SIGKILL a tiny training at random moments, resume it each time, and check that nothing is lost.

    python bench/fault_campaign.py [--kills 10] [--seed 0] [--arch SRResNet Uformer] [--iters 80] [--out DIR]

For each backbone (the 2-block SRResNet, and a tiny Uformer whose DropPath draws from the global torch RNG in
training), trains run A uninterrupted, then run B killed `--kills` times and resumed with `--auto_resume` after
each kill. Each kill is, at random, one of:

- `timer`: SIGKILL from outside after a random delay (anywhere: start-up, training, saving, validation);
- `mid-write`: the process kills itself halfway through writing the bytes of a random checkpoint file (weights or
  training state) of this attempt;
- `before-rename`: the process kills itself with a checkpoint file fully written to its temporary name, just before
  the rename that publishes it.

Both runs save and validate every 5 iterations (val_freq == save_checkpoint_freq, so resumes land on validation
iterations). After every kill each `.pth`/`.state` in run B's experiment must load (`torch.load(weights_only=True)`);
a resume has worked when the next attempt starts from the latest state without an error. At the end, run B's final
weights, EMA-free, and its final training state's RNGs are compared with run A's, and the validations logged by B
(over all its attempts) with A's. Prints one Markdown table row per backbone (paste into BENCHMARKS.md) and writes
`campaign.json` with every attempt under --out (default: a temporary folder, removed unless --out is given).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from os import path as osp

import cv2
import numpy as np
import torch
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TASKS = ['sr', 'noise', 'dark']
SAVE_FREQ = 5
NETWORKS = {
    'SRResNet': {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': True},
    # DropPath 0.1 by default: training draws from the global torch RNG, so any RNG slip changes the weights.
    'Uformer': {'type': 'Uformer', 'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
                'modulator': True, 'uncertainty_head': True},
}
# Run in the training process before train_pipeline: with FAULT_MODE set, the FAULT_AT-th checkpoint file this
# process writes is interrupted by SIGKILL (halfway through its bytes, or just before its rename).
HOOK = '''
import io, os, signal, torch
_mode, _at, _count = os.environ.get('FAULT_MODE'), int(os.environ.get('FAULT_AT', '0')), [0]
_save, _replace = torch.save, os.replace
def _save_hook(obj, f, *args, **kwargs):
    if _mode == 'mid-write' and '.tmp' in str(f):
        _count[0] += 1
        if _count[0] == _at:
            buf = io.BytesIO(); _save(obj, buf, *args, **kwargs); data = buf.getvalue()
            with open(f, 'wb') as out:
                out.write(data[:len(data) // 2]); out.flush(); os.fsync(out.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
    return _save(obj, f, *args, **kwargs)
def _replace_hook(src, dst, *args, **kwargs):
    if _mode == 'before-rename' and '.tmp' in str(src):
        _count[0] += 1
        if _count[0] == _at:
            os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)
torch.save, os.replace = _save_hook, _replace_hook
import sys
from basicsr_tur.train import train_pipeline
train_pipeline(sys.argv[1], sys.argv[2:])
'''


def write_data(folder: str) -> tuple[str, str, str]:
    """Three 40x40 random-texture clean images and a paired val set of them: (clean dir, lq dir, gt dir)."""
    rng = np.random.default_rng(0)
    clean, lq, gt = (osp.join(folder, d) for d in ('clean', 'lq', 'gt'))
    lines = []
    for k in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (5, 5), 0)
        for d in (clean, gt):
            os.makedirs(d, exist_ok=True)
            cv2.imwrite(osp.join(d, f'img{k}.png'), img)
        for task in TASKS:
            os.makedirs(osp.join(lq, task), exist_ok=True)
            noisy = np.clip(img.astype(np.int16) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(osp.join(lq, task, f'img{k}.png'), noisy)
            lines.append(f'{task}/img{k}.png img{k}.png {task}')
    with open(osp.join(folder, 'meta.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return clean, lq, gt


def write_options(folder: str, arch: str, iters: int) -> str:
    """The campaign's options file for `arch` (saves and validates every SAVE_FREQ iterations)."""
    clean, lq, gt = write_data(folder)
    opt = {
        'name': 'campaign', 'model_type': 'TURModel', 'num_gpu': 0, 'manual_seed': 0, 'tasks': TASKS,
        'datasets': {
            'train': {'name': 'train', 'type': 'SyntheticTaskDataset', 'dataroot_gt': clean, 'gt_size': 16,
                      'use_hflip': True, 'use_rot': True, 'dataset_enlarge_ratio': 2, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 4},
            'val': {'name': 'val', 'type': 'PairedTaskDataset', 'dataroot_lq': lq, 'dataroot_gt': gt,
                    'meta_file': osp.join(folder, 'meta.txt')},
        },
        'network_g': NETWORKS[arch], 'path': {},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-3}, 'total_iter': iters,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [iters // 2], 'gamma': 0.5},
                  'pixel_opt': {'type': 'TURLoss'}},
        'val': {'val_freq': SAVE_FREQ, 'pbar': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': SAVE_FREQ, 'save_checkpoint_freq': SAVE_FREQ, 'use_tb_logger': False},
    }
    path = osp.join(folder, 'options.yml')
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def experiment(root: str) -> str:
    return osp.join(root, 'experiments', 'campaign')


def latest_state(root: str) -> int:
    """Iteration of the latest training state of run `root` (0 when none)."""
    iters = [int(osp.basename(p)[:-len('.state')]) for p in glob.glob(osp.join(experiment(root), 'training_states',
                                                                              '*.state'))]
    return max(iters, default=0)


def unreadable_files(root: str) -> list[str]:
    """Every .pth/.state of the experiment that torch.load cannot read (a checkpoint lost to a kill)."""
    bad = []
    for path in glob.glob(osp.join(experiment(root), '**', '*.pth'), recursive=True) + \
            glob.glob(osp.join(experiment(root), '**', '*.state'), recursive=True):
        try:
            torch.load(path, map_location='cpu', weights_only=True)
        except Exception:  # any failure to load is what is counted
            bad.append(path)
    return bad


def validated(root: str) -> list[int]:
    """Iterations whose validation is logged in any training log of the run (all its attempts)."""
    found = []
    for log in glob.glob(osp.join(experiment(root), 'train_campaign_*.log')):
        with open(log, encoding='utf-8') as f:
            found += [int(m) for m in re.findall(r'Validation val \(iter (\d+)\)', f.read())]
    return sorted(set(found))


def start(root: str, opt_path: str, log_path: str, resume: bool, env: dict) -> subprocess.Popen:
    """A training process of the campaign's run under `root`, its console output to log_path."""
    cmd = [sys.executable, '-c', HOOK, root, '-opt', opt_path] + (['--auto_resume'] if resume else [])
    with open(log_path, 'w', encoding='utf-8') as log:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def campaign(arch: str, args: argparse.Namespace, work: str, rng: random.Random) -> dict:
    """Run A, then run B with args.kills kills; return the figures of this backbone."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               PYTHONUNBUFFERED='1')
    env.pop('FAULT_MODE', None)
    a, b = osp.join(work, arch, 'a'), osp.join(work, arch, 'b')
    for folder in (a, b):
        os.makedirs(folder)
    opt_a, opt_b = write_options(a, arch, args.iters), write_options(b, arch, args.iters)
    begin = time.perf_counter()
    proc = start(a, opt_a, osp.join(a, 'console.log'), False, env)
    if proc.wait():
        sys.exit(f'fault_campaign: the uninterrupted {arch} run failed; see {a}/console.log')
    run_seconds = time.perf_counter() - begin

    attempts, corrupt = [], set()
    for k in range(args.kills + 1):  # the last attempt is not interrupted: it finishes the run
        final = k == args.kills
        mode = 'final' if final else rng.choice(['timer', 'timer', 'mid-write', 'before-rename'])
        attempt_env, delay = dict(env), None
        if mode == 'timer':
            delay = rng.uniform(0.5, 0.7 * run_seconds)  # start-up included; mostly before the run would end
        elif not final:
            # Each save writes two files (weights, then state): one of the next two saves' files is interrupted.
            attempt_env.update(FAULT_MODE=mode, FAULT_AT=str(rng.randint(1, 4)))
        before = latest_state(b)
        log_path = osp.join(b, f'console_{k}.log')
        proc = start(b, opt_b, log_path, True, attempt_env)
        try:
            proc.wait(timeout=delay if delay is not None else 20 * run_seconds + 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with open(log_path, encoding='utf-8') as f:
            console = f.read()
        bad = unreadable_files(b)
        corrupt.update(bad)
        resumed = re.search(r'Resuming training from epoch \d+, iter (\d+)', console)
        attempts.append({'mode': mode, 'delay_s': delay, 'fault_at': attempt_env.get('FAULT_AT'),
                         'returncode': proc.returncode, 'state_before': before, 'state_after': latest_state(b),
                         'resumed_from': int(resumed.group(1)) if resumed else None, 'unreadable': bad,
                         'error': (re.findall(r'^(?:error: |\w+Error: ).*$', console, re.M) or [None])[-1]})
        if proc.returncode == 0 and not final:
            attempts[-1]['mode'] = 'final'  # finished before the kill came: nothing left to interrupt
            break
    final_rc = attempts[-1]['returncode']

    # A resume (an attempt that found a state) worked when it did not fail with an error and, if it got as far as
    # logging where it resumed, resumed from the latest state.
    resumes = [t for t in attempts if t['state_before']]
    failed = [t for t in resumes if t['returncode'] not in (0, -signal.SIGKILL)
              or t['resumed_from'] not in (None, t['state_before'])]
    figures = {'arch': arch, 'kills': sum(t['returncode'] == -signal.SIGKILL for t in attempts),
               'modes': {m: sum(t['mode'] == m and t['returncode'] == -signal.SIGKILL for t in attempts)
                         for m in ('timer', 'mid-write', 'before-rename')},
               'resumes': len(resumes), 'resumes_failed': len(failed),
               'corrupt_files': sorted(corrupt), 'final_returncode': final_rc, 'attempts': attempts,
               'run_a_seconds': round(run_seconds, 1),
               'leftover_tmp': len(glob.glob(osp.join(experiment(b), '**', '*.tmp*'), recursive=True))}
    if final_rc == 0:
        final = [torch.load(osp.join(experiment(r), 'models', f'net_g_{args.iters}.pth'), weights_only=True)
                 for r in (a, b)]
        diffs = [(x.float() - y.float()).abs().max().item() if x.numel() else 0.0
                 for x, y in zip(final[0]['params'].values(), final[1]['params'].values())]
        states = [torch.load(osp.join(experiment(r), 'training_states', f'{args.iters}.state'), weights_only=True)
                  for r in (a, b)]
        rng_a, rng_b = states[0]['rng'], states[1]['rng']
        figures.update(identical_tensors=sum(d == 0 for d in diffs), tensors=len(diffs), max_abs_diff=max(diffs),
                       rng_equal=bool(torch.equal(rng_a['torch'], rng_b['torch'])
                                      and torch.equal(rng_a['numpy'][1], rng_b['numpy'][1])
                                      and rng_a['python'] == rng_b['python']),
                       validations_a=validated(a), validations_b=validated(b))
    return figures


def row(f: dict) -> str:
    """One Markdown row of the results table."""
    modes = ' / '.join(str(f['modes'][m]) for m in ('timer', 'mid-write', 'before-rename'))
    if f['final_returncode'] != 0:
        return f"| {f['arch']} | {f['kills']} ({modes}) | final run failed (rc {f['final_returncode']}) | | | | | |"
    missing = sorted(set(f['validations_a']) - set(f['validations_b']))
    return (f"| {f['arch']} | {f['kills']} ({modes}) | {f['resumes'] - f['resumes_failed']}/{f['resumes']} | "
            f"{len(f['corrupt_files'])} | {f['identical_tensors']}/{f['tensors']} (max abs diff "
            f"{f['max_abs_diff']:.3g}) | {'yes' if f['rng_equal'] else 'no'} | "
            f"{len(f['validations_b'])}/{len(f['validations_a'])}{' missing ' + str(missing) if missing else ''} | "
            f"{f['leftover_tmp']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=10, help='SIGKILLs per backbone')
    parser.add_argument('--seed', type=int, default=0, help='seed of the kill moments and modes')
    parser.add_argument('--arch', nargs='+', choices=sorted(NETWORKS), default=sorted(NETWORKS))
    parser.add_argument('--iters', type=int, default=80, help='total_iter of the runs (a multiple of 5)')
    parser.add_argument('--out', help='keep the runs and campaign.json here (default: a temporary folder, removed)')
    args = parser.parse_args()
    if args.iters % SAVE_FREQ or args.iters <= 0:
        parser.error(f'--iters {args.iters}: must be a positive multiple of {SAVE_FREQ}')
    work = osp.abspath(args.out) if args.out else tempfile.mkdtemp(prefix='fault_campaign_')
    if args.out and osp.exists(work) and os.listdir(work):
        parser.error(f'--out {work}: exists and is not empty')
    rng = random.Random(args.seed)
    results = []
    try:
        for arch in args.arch:
            begin = time.perf_counter()
            figures = campaign(arch, args, work, rng)
            figures['campaign_seconds'] = round(time.perf_counter() - begin, 1)
            results.append(figures)
        with open(osp.join(work, 'campaign.json'), 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print(f'Kills, resumes and final comparison ({args.iters} iterations, states and validation every {SAVE_FREQ}, '
          f'--seed {args.seed}):\n')
    print('| Backbone | Kills (timer / mid-write / before-rename) | Resumes that worked | Unreadable .pth/.state '
          '| Final weights bit-identical to run A | RNG identical | Validations logged (B / A) | Partial *.tmp* left |')
    print('|---|---|---|---|---|---|---|---|')
    for figures in results:
        print(row(figures))
    for figures in results:
        for t in figures['attempts']:
            if t['returncode'] not in (0, -signal.SIGKILL):
                print(f"{figures['arch']}: an attempt failed (rc {t['returncode']}): {t['error']}")
    if args.out:
        print(f'\nEvery attempt: {osp.join(work, "campaign.json")}')


if __name__ == '__main__':
    main()
