"""Fault campaign: SIGKILL a tiny training at random moments, resume it each time, and check that nothing is lost.

    python bench/fault_campaign.py [--kills 10] [--seed 0] [--arch SRResNet Uformer] [--iters 80] [--out DIR]

For each backbone (the 2-block SRResNet, and a tiny Uformer whose DropPath draws from the global torch RNG in
training), trains run A uninterrupted, then run B killed `--kills` times and resumed with `--auto_resume` after
each kill. The kills aim at `--kills` target iterations drawn uniformly over the whole run (sorted, `--seed`), one per
attempt, so that they land early and late: in late epochs, on the last save, the last validation, net_g_latest.pth.
Each kill is, at random, one of:

- `timer`: SIGKILL from outside, once the attempt's training loop has started, after the time run A took per
  iteration (saves and validations included) times the iterations left to the target: it lands near the target,
  in whatever the run is doing then (training, saving, validating);
- `mid-write`: the process kills itself halfway through writing the bytes of a checkpoint file (the weights or the
  training state, at random) of the first save at or after the target that this attempt makes (or net_g_latest.pth);
- `before-rename`: the same file fully written to its temporary name, the process killed just before the rename
  that publishes it.

Both runs save and validate every 5 iterations (val_freq == save_checkpoint_freq, so resumes land on validation
iterations). After every kill each `.pth`/`.state` in run B's experiment must load (`torch.load(weights_only=True)`);
a resume has worked when the next attempt starts from the latest state without an error. Where each kill landed
(the last iteration done, and whether it was training, saving or validating) is read from the attempt's console,
where the training process prints its steps, writes and validations. At the end, run B's final weights (of the last
save and net_g_latest.pth), EMA-free, and its final training state's RNGs are compared with run A's, and the
validations logged by B (over all its attempts: iterations and PSNRs) with A's. Prints one Markdown table row per
backbone (paste into BENCHMARKS.md) and every attempt, and writes `campaign.json` with every attempt under --out
(default: a temporary folder, removed unless --out is given).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
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

from basicsr_tur.utils.files import atomic_write

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TASKS = ['sr', 'noise', 'dark']
SAVE_FREQ = 5
NETWORKS = {
    'SRResNet': {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': True},
    # DropPath 0.1 by default: training draws from the global torch RNG, so any RNG slip changes the weights.
    'Uformer': {'type': 'Uformer', 'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
                'modulator': True, 'uncertainty_head': True},
}
# Run in the training process before train_pipeline. With FAULT_MODE set, the checkpoint file named FAULT_AT
# (`net_g_40.pth`, `40.state`, `net_g_latest.pth`) is interrupted by SIGKILL: halfway through its bytes, or just before
# the rename that publishes it. Every process also prints where it is (`[campaign] iter N` after each optimizer step,
# `[campaign] write FILE`, `[campaign] validate N`), so that the campaign can tell where each kill landed; printing
# draws no random number and changes nothing in the training.
HOOK = '''
import io, os, signal, sys, torch
from os import path as osp
_mode, _at = os.environ.get('FAULT_MODE'), os.environ.get('FAULT_AT')
_save, _replace = torch.save, os.replace
def _name(f):
    return osp.basename(str(f)).split('.tmp')[0]
def _save_hook(obj, f, *args, **kwargs):
    if '.tmp' in str(f):
        print(f'[campaign] write {_name(f)}', flush=True)
        if _mode == 'mid-write' and _name(f) == _at:
            buf = io.BytesIO(); _save(obj, buf, *args, **kwargs); data = buf.getvalue()
            with open(f, 'wb') as out:
                out.write(data[:len(data) // 2]); out.flush(); os.fsync(out.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
    return _save(obj, f, *args, **kwargs)
def _replace_hook(src, dst, *args, **kwargs):
    if _mode == 'before-rename' and '.tmp' in str(src) and _name(dst) == _at:
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)
torch.save, os.replace = _save_hook, _replace_hook
import basicsr_tur.train as _train
from basicsr_tur.models.tur_model import TURModel
_step, _validate = TURModel.optimize_parameters, _train.validate
def _step_hook(self, current_iter, step=True):
    _step(self, current_iter, step)
    if step:
        print(f'[campaign] iter {current_iter}', flush=True)
def _validate_hook(model, val_loaders, current_iter, *args, **kwargs):
    print(f'[campaign] validate {current_iter}', flush=True)
    return _validate(model, val_loaders, current_iter, *args, **kwargs)
TURModel.optimize_parameters, _train.validate = _step_hook, _validate_hook
_train.train_pipeline(sys.argv[1], sys.argv[2:])
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


def validated(root: str) -> dict[int, set[str]]:
    """Validations logged in any training log of the run (all its attempts): iteration -> the metric lines logged."""
    found: dict[int, set[str]] = {}
    for log in glob.glob(osp.join(experiment(root), 'train_campaign_*.log')):
        with open(log, encoding='utf-8') as f:
            for m in re.finditer(r'Validation val \(iter (\d+)\)\n((?:\t.*\n)*)', f.read()):
                found.setdefault(int(m.group(1)), set()).add(m.group(2))
    return found


def start(root: str, opt_path: str, log_path: str, resume: bool, env: dict) -> subprocess.Popen:
    """A training process of the campaign's run under `root`, its console output to log_path."""
    cmd = [sys.executable, '-c', HOOK, root, '-opt', opt_path] + (['--auto_resume'] if resume else [])
    with open(log_path, 'w', encoding='utf-8') as log:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def read(log_path: str) -> str:
    with open(log_path, encoding='utf-8', errors='replace') as f:
        return f.read()


def wait_for_loop(proc: subprocess.Popen, log_path: str, timeout: float) -> int | None:
    """Wait until the process logs 'Start training from ... iter N' and return N (None if it ended or timed out)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and proc.poll() is None:
        found = re.search(r'Start training from epoch \d+, iter (\d+)', read(log_path))
        if found:
            return int(found.group(1))
        time.sleep(0.01)
    return None


def landed(console: str, total: int) -> tuple[int, str]:
    """Where an attempt stopped, from its console: (iteration, what it was doing).

    The iteration is the last one whose optimizer step was done (the resumed one before any step); what it was doing
    is `start-up`, `training` (the next step), `saving FILE`, `validating` (that iteration) or `finished`.
    """
    at, doing = 0, 'start-up'
    resumed = re.search(r'Resuming training from epoch \d+, iter (\d+)', console)
    if resumed:
        at = int(resumed.group(1))
    for line in console.splitlines():
        if m := re.search(r'\[campaign\] iter (\d+)', line):
            at, doing = int(m.group(1)), 'training'
        elif m := re.search(r'\[campaign\] write (\S+)', line):
            doing = f'saving {m.group(1)}'
        elif re.search(r'\[campaign\] validate \d+', line):
            doing = 'validating'
        elif re.search(r'Validation val \(iter \d+\)', line):
            doing = 'training' if at < total else 'saving net_g_latest.pth'
        elif 'Start training from' in line and doing == 'start-up':
            doing = 'training'
        elif 'End of training' in line:
            doing = 'finished'
    return at, doing


def plan(mode: str, target: float, state: int, total: int, rng: random.Random) -> str:
    """FAULT_AT of a mid-write/before-rename kill: a file of the first save at or after `target` still to be done.

    Each save writes net_g_<iter>.pth then <iter>.state; the end of the run also writes net_g_latest.pth.
    """
    save = max(SAVE_FREQ * math.ceil(target / SAVE_FREQ), state + SAVE_FREQ)
    if save > total:  # the last state is written: only the final weights are left
        return 'net_g_latest.pth'
    return rng.choice([f'net_g_{save}.pth', f'{save}.state'] + (['net_g_latest.pth'] if save == total else []))


def campaign(arch: str, args: argparse.Namespace, work: str, rng: random.Random) -> dict:
    """Run A, then run B with args.kills kills spread over the run; return the figures of this backbone."""
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
    # Seconds per iteration of run A's training loop, its saves and validations included.
    loop = re.search(r'End of training: \d+ iterations in ([\d.]+)s', read(osp.join(a, 'console.log')))
    iter_seconds = float(loop.group(1)) / args.iters

    # The kills' target iterations, spread uniformly over the whole run (sorted: the run moves forward).
    targets = sorted(rng.uniform(1, args.iters) for _ in range(args.kills))
    attempts, corrupt = [], set()
    for k in range(args.kills + 1):  # the last attempt is not interrupted: it finishes the run
        final = k == args.kills
        mode = 'final' if final else rng.choice(['timer', 'timer', 'mid-write', 'before-rename'])
        target = None if final else targets[k]
        before = latest_state(b)
        attempt_env, delay = dict(env), None
        if mode in ('mid-write', 'before-rename'):
            attempt_env.update(FAULT_MODE=mode, FAULT_AT=plan(mode, target, before, args.iters, rng))
        log_path = osp.join(b, f'console_{k}.log')
        proc = start(b, opt_b, log_path, True, attempt_env)
        if mode == 'timer':
            # From the start of the training loop (after start-up and any resume validation), run A's pace to the
            # target: the kill lands near it, in whatever the run is doing then.
            first = wait_for_loop(proc, log_path, 20 * run_seconds + 120)
            if first is not None:
                delay = max(0.0, (target - first) * iter_seconds)
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
        hung = False
        try:
            proc.wait(timeout=20 * run_seconds + 120)
        except subprocess.TimeoutExpired:  # a hang, not a kill of the campaign's: counted as a failed attempt
            hung = True
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        console = read(log_path)
        bad = unreadable_files(b)
        corrupt.update(bad)
        resumed = re.search(r'Resuming training from epoch \d+, iter (\d+)', console)
        at, doing = landed(console, args.iters)
        attempts.append({'mode': mode, 'target_iter': None if final else round(target, 2), 'delay_s': delay,
                         'fault_at': attempt_env.get('FAULT_AT'), 'returncode': proc.returncode,
                         'state_before': before, 'state_after': latest_state(b), 'landed_iter': at,
                         'landed_doing': doing, 'hung': hung,
                         'resumed_from': int(resumed.group(1)) if resumed else None, 'unreadable': bad,
                         'error': (re.findall(r'^(?:error: |\w+Error: ).*$', console, re.M) or [None])[-1]})
        if proc.returncode == 0 and not final:
            attempts[-1]['mode'] = 'final'  # finished before the kill came: nothing left to interrupt
            break
    final_rc = attempts[-1]['returncode']

    # A resume (an attempt that found a state) worked when it did not fail with an error and, if it got as far as
    # logging where it resumed, resumed from the latest state.
    resumes = [t for t in attempts if t['state_before']]
    failed = [t for t in resumes if t['returncode'] not in (0, -signal.SIGKILL) or t['hung']
              or t['resumed_from'] not in (None, t['state_before'])]
    killed = [t for t in attempts if t['returncode'] == -signal.SIGKILL and not t['hung']]
    figures = {'arch': arch, 'kills': len(killed),
               'modes': {m: sum(t['mode'] == m for t in killed)
                         for m in ('timer', 'mid-write', 'before-rename')},
               'resumes': len(resumes), 'resumes_failed': len(failed),
               'corrupt_files': sorted(corrupt), 'final_returncode': final_rc, 'attempts': attempts,
               'run_a_seconds': round(run_seconds, 1), 'run_a_iter_seconds': round(iter_seconds, 4),
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
                       latest_identical=all(torch.equal(x, y) for x, y in zip(*(
                           torch.load(osp.join(experiment(r), 'models', 'net_g_latest.pth'),
                                      weights_only=True)['params'].values() for r in (a, b)))))
        val_a, val_b = validated(a), validated(b)
        figures.update(validations_a=sorted(val_a), validations_b=sorted(val_b),
                       # The PSNRs B logged (every time, if a validation was logged twice) are A's, to the digit.
                       validation_values_equal=all(val_b[i] == val_a[i] for i in val_b if i in val_a))
    return figures


def spread(f: dict) -> str:
    """The iterations where the kills landed, in order; `s` while saving, `v` while validating, `u` in start-up."""
    marks = {'saving': 's', 'validating': 'v', 'start-up': 'u'}
    return ' '.join(f"{t['landed_iter']}{marks.get(t['landed_doing'].split()[0], '')}" for t in f['attempts']
                    if t['returncode'] == -signal.SIGKILL and not t['hung'])


def row(f: dict) -> str:
    """One Markdown row of the results table."""
    modes = ' / '.join(str(f['modes'][m]) for m in ('timer', 'mid-write', 'before-rename'))
    if f['final_returncode'] != 0:
        return (f"| {f['arch']} | {f['kills']} ({modes}) | {spread(f)} | final run failed (rc {f['final_returncode']}) "
                "| | | | | |")
    missing = sorted(set(f['validations_a']) - set(f['validations_b']))
    return (f"| {f['arch']} | {f['kills']} ({modes}) | {spread(f)} | {f['resumes'] - f['resumes_failed']}/"
            f"{f['resumes']} | "
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
        atomic_write(osp.join(work, 'campaign.json'), json.dumps(results, indent=1))
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print(f'Kills, resumes and final comparison ({args.iters} iterations, states and validation every {SAVE_FREQ}, '
          f'--seed {args.seed}):\n')
    print('| Backbone | Kills (timer / mid-write / before-rename) | Kills landed at iteration | Resumes that worked '
          '| Unreadable .pth/.state | Final weights bit-identical to run A | RNG identical '
          '| Validations logged (B / A) | Partial *.tmp* left |')
    print('|---|---|---|---|---|---|---|---|---|')
    for figures in results:
        print(row(figures))
    print('\nKills landed at: the last iteration whose optimizer step was done; s: while saving, v: while validating, '
          'u: in start-up; otherwise training the next one.')
    for figures in results:
        same = figures.get('latest_identical'), figures.get('validation_values_equal')
        print(f"\n{figures['arch']} (run A: {figures['run_a_iter_seconds'] * 1000:.0f} ms per iteration; "
              f"net_g_latest.pth identical to A's: {same[0]}; validation PSNRs identical to A's: {same[1]}):")
        for k, t in enumerate(figures['attempts']):
            target = f"target {t['target_iter']:.1f}" if t['target_iter'] is not None else 'no kill'
            fault = f" {t['fault_at']}" if t['fault_at'] else ''
            print(f"  {k}: {t['mode']}{fault} ({target}): state {t['state_before']} -> {t['state_after']}, "
                  f"stopped at {t['landed_iter']} {t['landed_doing']} (rc {t['returncode']}"
                  f"{', hung' if t['hung'] else ''})")
    for figures in results:
        for t in figures['attempts']:
            if t['returncode'] not in (0, -signal.SIGKILL) or t['hung']:
                print(f"{figures['arch']}: an attempt failed (rc {t['returncode']}): {t['error']}")
    if args.out:
        print(f'\nEvery attempt: {osp.join(work, "campaign.json")}')


if __name__ == '__main__':
    main()
