"""Exact, crash-safe resume: a run killed with SIGKILL and resumed ends with bit-identical weights."""
import logging
import os
import re
import signal
import subprocess
import sys
import time
from os import path as osp

import pytest
import torch
from conftest import assert_names, make_options

from basicsr_tur.train import find_resume_state, resume_position
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.checkpoint import capture_rng_state, restore_rng_state
from basicsr_tur.utils.errors import CheckpointError


def train_cmd(root, opt_path, kill_while_saving=None):
    """A process training the tiny run under `root` (60 iterations, states every 5, epochs of 3 batches).

    With `kill_while_saving=N`, the process SIGKILLs itself halfway through writing the bytes of training state N.
    """
    hook = ''
    if kill_while_saving is not None:
        hook = ('import io, os, signal, torch; real_save = torch.save\n'
                'def save(obj, f, *args, **kwargs):\n'
                f'    if str(f).split(os.sep)[-1].startswith("{kill_while_saving}.state.tmp"):\n'
                '        buf = io.BytesIO(); real_save(obj, buf, *args, **kwargs); data = buf.getvalue()\n'
                '        with open(f, "wb") as out:\n'
                '            out.write(data[:len(data) // 2]); out.flush(); os.fsync(out.fileno())\n'
                '            os.kill(os.getpid(), signal.SIGKILL)\n'
                '    return real_save(obj, f, *args, **kwargs)\n'
                'torch.save = save\n')
    code = hook + 'import sys; from basicsr_tur.train import train_pipeline; train_pipeline(sys.argv[1], sys.argv[2:])'
    return [sys.executable, '-c', code, str(root), '-opt', opt_path, '--force_yml', 'train:total_iter=60',
            'logger:save_checkpoint_freq=5', 'val:val_freq=100', 'datasets:train:dataset_enlarge_ratio=2']


def test_killed_run_resumes_to_bit_identical_weights(tmp_path, clean_root, paired_root):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    opt_a = make_options(a, clean_root, paired_root)
    opt_b = make_options(b, clean_root, paired_root)
    subprocess.run(train_cmd(a, opt_a), cwd=a, env=env, check=True, capture_output=True)

    # The same run, first killed while it writes training state 15 (mid-epoch: 3 tasks x 3 images x 2 / batch 6 =
    # 3 batches per epoch): only a partial temporary file is left beside the intact states 5 and 10.
    killed = subprocess.run(train_cmd(b, opt_b, kill_while_saving=15), cwd=b, env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    states = b / 'experiments' / 'tiny' / 'training_states'
    assert sorted(p.name for p in states.glob('*.state')) == ['10.state', '5.state']
    partial = list(states.glob('15.state.tmp*'))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size
    torch.load(states / '10.state', weights_only=True)  # the previous state is whole
    # Resumed from state 10, then killed again, from outside, once state 30 exists.
    proc = subprocess.Popen(train_cmd(b, opt_b) + ['--auto_resume'], cwd=b, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (states / '30.state').exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (states / '30.state').exists()
    assert not (states / '60.state').exists()  # killed mid-run
    subprocess.run(train_cmd(b, opt_b) + ['--auto_resume'], cwd=b, env=env, check=True, capture_output=True)

    final_a = torch.load(a / 'experiments' / 'tiny' / 'models' / 'net_g_60.pth')
    final_b = torch.load(b / 'experiments' / 'tiny' / 'models' / 'net_g_60.pth')
    for key in final_a['params']:
        assert torch.equal(final_a['params'][key], final_b['params'][key]), key
    state_a = torch.load(a / 'experiments' / 'tiny' / 'training_states' / '60.state', weights_only=True)
    state_b = torch.load(b / 'experiments' / 'tiny' / 'training_states' / '60.state', weights_only=True)
    assert state_a['samples_in_epoch'] == state_b['samples_in_epoch']
    assert torch.equal(state_a['rng']['torch'], state_b['rng']['torch'])


def test_auto_resume_ignores_partial_files(tmp_path):
    states = tmp_path / 'experiments' / 'x' / 'training_states'
    states.mkdir(parents=True)
    (states / '5.state').write_bytes(b'x')
    (states / '10.state.tmp42').write_bytes(b'x')
    opt = {'auto_resume': True, 'path': {'training_states': str(states), 'resume_state': None}}
    assert find_resume_state(opt) == str(states / '5.state')


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    import random

    import numpy as np
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    torch.save(state, tmp_path / 'rng.pt')
    restore_rng_state(torch.load(tmp_path / 'rng.pt', weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


UFORMER = {'type': 'Uformer', 'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
           'modulator': True, 'uncertainty_head': True}  # DropPath 0.1: training draws from the global torch RNG


def validating_cmd(root, opt_path, kill_validating=None):
    """A process training a tiny Uformer for 20 iterations, saving and validating every 5.

    With `kill_validating=N`, the process SIGKILLs itself as the validation at iteration N starts.
    """
    hook = ''
    if kill_validating is not None:
        hook = ('import os, signal; from basicsr_tur.models.tur_model import TURModel\n'
                'real_validation = TURModel.nondist_validation\n'
                'def validation(self, loader, current_iter, *args, **kwargs):\n'
                f'    if current_iter == {kill_validating}:\n'
                '        os.kill(os.getpid(), signal.SIGKILL)\n'
                '    return real_validation(self, loader, current_iter, *args, **kwargs)\n'
                'TURModel.nondist_validation = validation\n')
    code = hook + 'import sys; from basicsr_tur.train import train_pipeline; train_pipeline(sys.argv[1], sys.argv[2:])'
    return [sys.executable, '-c', code, str(root), '-opt', opt_path, '--force_yml', 'train:total_iter=20',
            'logger:save_checkpoint_freq=5', 'val:val_freq=5', 'datasets:train:gt_size=16',
            'datasets:train:dataset_enlarge_ratio=2']


def validated_iters(log_text):
    """Iterations of the `Validation <set> (iter N)` lines of a training log."""
    return [int(m) for m in re.findall(r'Validation tiny_val \(iter (\d+)\)', log_text)]


def test_resume_at_a_validation_iteration_is_exact_and_runs_the_missed_validation(tmp_path, clean_root, paired_root):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    opt_a = make_options(a, clean_root, paired_root, network_g=UFORMER)
    opt_b = make_options(b, clean_root, paired_root, network_g=UFORMER)
    subprocess.run(validating_cmd(a, opt_a), cwd=a, env=env, check=True, capture_output=True)

    # Killed as the validation at 10 starts: state 10 is saved, its validation never logged.
    killed = subprocess.run(validating_cmd(b, opt_b, kill_validating=10), cwd=b, env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run(validating_cmd(b, opt_b) + ['--auto_resume'], cwd=b, env=env, capture_output=True,
                             text=True, check=True)
    logs = sorted((b / 'experiments' / 'tiny').glob('train_tiny_*.log'))
    assert len(logs) == 2
    assert validated_iters(logs[0].read_text()) == [5]
    assert validated_iters(logs[1].read_text()) == [10, 15, 20], resumed.stderr[-2000:]

    final_a = torch.load(a / 'experiments' / 'tiny' / 'models' / 'net_g_20.pth')
    final_b = torch.load(b / 'experiments' / 'tiny' / 'models' / 'net_g_20.pth')
    differ = [k for k in final_a['params'] if not torch.equal(final_a['params'][k], final_b['params'][k])]
    assert differ == []
    state_a = torch.load(a / 'experiments' / 'tiny' / 'training_states' / '20.state', weights_only=True)
    state_b = torch.load(b / 'experiments' / 'tiny' / 'training_states' / '20.state', weights_only=True)
    assert torch.equal(state_a['rng']['torch'], state_b['rng']['torch'])
    assert state_a['rng']['numpy'][1].equal(state_b['rng']['numpy'][1])
    assert state_a['rng']['python'] == state_b['rng']['python']


@pytest.fixture
def ten(tmp_path, clean_root, paired_root):
    """A finished 10-iteration run 'tiny' (state and weights at 10, mid-epoch): (root, options path)."""
    opt_path = make_options(tmp_path, clean_root, paired_root)
    run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'train:total_iter=10'])
    return str(tmp_path), opt_path


def files_under(folder):
    """Every file path under folder (to show that a refused resume wrote nothing)."""
    return sorted(osp.join(d, f) for d, _, files in os.walk(folder) for f in files)


@pytest.mark.parametrize('change, key, old, new', [
    ('train:optim_g={type: SGD, lr: 0.1, momentum: 0.9}', 'optim_g.type', 'Adam', 'SGD'),
    ('network_g:num_feat=16', 'network_g.num_feat', '8', '16'),
    ('tasks=[sr, noise]', 'tasks', "['sr', 'noise', 'dark']", "['sr', 'noise']"),
], ids=['optimizer', 'network', 'tasks'])
def test_resume_refuses_a_changed_optimizer_network_or_task_list_in_one_line(ten, change, key, old, new):
    root, opt_path = ten
    before = files_under(root)
    with pytest.raises(CheckpointError) as err:
        run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=20', change])
    state = osp.join(root, 'experiments', 'tiny', 'training_states', '10.state')
    assert_names(err, state, f'{key} {old}', new, 'path:pretrain_network_g=')
    assert files_under(root) == before  # refused before anything was written


def test_resume_applies_a_changed_lr_and_logs_it(ten, log_lines):
    root, opt_path = ten
    run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=12', 'train:optim_g:lr=1e-5'])
    state = torch.load(osp.join(root, 'experiments', 'tiny', 'training_states', '12.state'), weights_only=True)
    group = state['optimizers'][0]['param_groups'][0]
    assert group['lr'] == pytest.approx(1e-5) and group['initial_lr'] == pytest.approx(1e-5)
    assert state['run']['optim_g']['lr'] == pytest.approx(1e-5)
    assert 'optim_g.lr: 0.002 -> 1e-05 (applied)' in '\n'.join(log_lines)


def test_resume_with_another_batch_continues_after_the_samples_already_used(ten, log_lines):
    root, opt_path = ten
    states = osp.join(root, 'experiments', 'tiny', 'training_states')
    before = torch.load(osp.join(states, '10.state'), weights_only=True)
    assert before['samples_in_epoch'] == 24  # 3 images x 3 tasks x 4 = 36 a epoch; iteration 10 is its 4th batch
    run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=11',
                     'datasets:train:batch_size_per_gpu=4'])
    after = torch.load(osp.join(states, '11.state'), weights_only=True)
    assert (after['epoch'], after['samples_in_epoch']) == (before['epoch'], 28)
    assert 'batch_size_per_gpu: 6 -> 4 (applied)' in '\n'.join(log_lines)


def test_a_state_counting_batches_is_read_with_the_batch_of_the_options():
    # States written before the sample count recorded `batch_in_epoch` and no options.
    record = {'train_set': {'type': 'SyntheticTaskDataset', 'length': 36}}
    assert resume_position({'batch_in_epoch': 4, 'path': '10.state'}, record, 6, logging.getLogger('t')) == 24
    assert resume_position({'samples_in_epoch': 22, 'batch_in_epoch': 4, 'path': '10.state', 'run': record},
                           record, 6, logging.getLogger('t')) == 22


def test_a_state_of_another_experiment_is_resumed_with_its_own_weights(ten, log_lines):
    root, opt_path = ten
    state = osp.join(root, 'experiments', 'tiny', 'training_states', '10.state')
    run_train(root, ['-opt', opt_path, '--force_yml', 'name=fork', f'path:resume_state={state}',
                     'train:total_iter=12'])
    fork = osp.join(root, 'experiments', 'fork')
    assert torch.load(osp.join(fork, 'training_states', '12.state'), weights_only=True)['iter'] == 12
    assert 'forked into this experiment' in '\n'.join(log_lines)
    assert sorted(os.listdir(osp.join(root, 'experiments', 'tiny', 'training_states'))) == ['10.state',
                                                                                             '10.validated']


def test_missing_weights_of_a_state_are_named_with_where_they_were_looked_for(ten):
    root, opt_path = ten
    exp = osp.join(root, 'experiments', 'tiny')
    os.remove(osp.join(exp, 'models', 'net_g_10.pth'))
    with pytest.raises(FileNotFoundError) as err:
        run_train(root, ['-opt', opt_path, '--force_yml', 'name=fork',
                         f'path:resume_state={exp}/training_states/10.state', 'train:total_iter=12'])
    assert_names(err, f'{exp}/training_states/10.state', f'{exp}/models/net_g_10.pth', 'models/')


def test_resume_applies_a_changed_scheduler_from_the_saved_position(ten):
    # basicsr's load_state_dict would bring back the saved milestones ([1000]): the options' [11] must apply.
    root, opt_path = ten
    run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=12',
                     'train:scheduler:milestones=[11]'])
    state = torch.load(osp.join(root, 'experiments', 'tiny', 'training_states', '12.state'), weights_only=True)
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(1e-3)  # 2e-3 halved at 11
    assert state['schedulers'][0]['last_epoch'] == 11  # stepped from iteration 2 on (basicsr's count)


def test_resume_applies_a_changed_loss_and_logs_it(ten, log_lines):
    root, opt_path = ten
    run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=11',
                     'train:pixel_opt={type: L1Loss}'])
    assert 'pixel_opt.type: TURLoss -> L1Loss (applied)' in '\n'.join(log_lines)


def test_resume_from_a_state_past_total_iter_is_refused_in_one_line(ten):
    root, opt_path = ten
    state = osp.join(root, 'experiments', 'tiny', 'training_states', '10.state')
    before = files_under(root)
    with pytest.raises(CheckpointError) as err:
        run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=5'])
    assert_names(err, state, 'iteration 10', 'train.total_iter 5')
    assert files_under(root) == before


@pytest.mark.parametrize('content', [b'', b'not a state\n', 'a list'], ids=['empty', 'text', 'list'])
def test_unreadable_resume_state_is_one_line_naming_it(ten, content):
    root, opt_path = ten
    bad = osp.join(root, 'bad.state')
    if content == 'a list':
        torch.save([1, 2], bad)
    else:
        open(bad, 'wb').write(content)
    with pytest.raises(CheckpointError) as err:
        run_train(root, ['-opt', opt_path, '--force_yml', f'path:resume_state={bad}', 'train:total_iter=20'])
    assert_names(err, bad)
