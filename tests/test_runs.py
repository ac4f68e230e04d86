"""One run per name, and nothing lost: a lock stops a second run with the same name before it touches anything (a
dead holder's lock is taken over), and a failed start puts back what it archived and removes only what it made."""
import glob
import json
import os
import socket
import subprocess
import sys
from os import path as osp

import pytest
from conftest import assert_names, make_options, make_test_options

from basicsr_tur.test import run_test
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils import runs
from basicsr_tur.utils.errors import RunError
from basicsr_tur.utils.runs import fresh_run_dirs, lock_path, run_lock

# A process holding a run's lock: runs.py loaded by its path (stdlib only), not through the package (torch: seconds).
HOLD = r'''
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location('runs', sys.argv[2])
runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runs)
with runs.run_lock(sys.argv[1]):
    print('locked', flush=True)
    time.sleep(120)
'''


@pytest.fixture
def holder():
    """Start a process holding the lock of a folder: holder(folder) -> its PID (killed after the test)."""
    procs = []

    def start(folder: str) -> int:
        proc = subprocess.Popen([sys.executable, '-c', HOLD, folder, runs.__file__], stdout=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == 'locked'
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def _tree(root) -> list[str]:
    """Every path under root (files and folders, hidden ones included), relative to it."""
    return sorted(osp.relpath(osp.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


def _earlier_run(root) -> None:
    """Folders of an earlier run named 'tiny': an experiment with a state and its tensorboard curves."""
    os.makedirs(osp.join(root, 'experiments', 'tiny', 'training_states'))
    open(osp.join(root, 'experiments', 'tiny', 'training_states', '20.state'), 'wb').close()
    os.makedirs(osp.join(root, 'tb_logger', 'tiny'))
    open(osp.join(root, 'tb_logger', 'tiny', 'events.out.tfevents.1.host'), 'wb').close()


def test_second_run_with_the_same_name_is_refused_before_touching_anything(tmp_path, clean_root, paired_root,
                                                                            holder):
    _earlier_run(tmp_path)
    pid = holder(str(tmp_path / 'experiments' / 'tiny'))
    opt_path = make_options(tmp_path, clean_root, paired_root)
    before = _tree(tmp_path)
    with pytest.raises(RunError) as err:
        run_train(str(tmp_path), ['-opt', opt_path])
    assert_names(err, f'{tmp_path}/experiments/tiny', f'PID {pid}', socket.gethostname())
    assert _tree(tmp_path) == before


def test_second_test_run_with_the_same_name_is_refused(tmp_path, paired_root, holder):
    os.makedirs(tmp_path / 'results' / 'tiny_test')
    pid = holder(str(tmp_path / 'results' / 'tiny_test'))
    opt_path = make_test_options(tmp_path, paired_root, str(tmp_path / 'unused.pth'))
    before = _tree(tmp_path)
    with pytest.raises(RunError) as err:
        run_test(str(tmp_path), ['-opt', opt_path])
    assert_names(err, tmp_path / 'results' / 'tiny_test', f'PID {pid} ')
    assert _tree(tmp_path) == before


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, clean_root, paired_root):
    lock = lock_path(str(tmp_path / 'experiments' / 'tiny'))
    os.makedirs(osp.dirname(lock))
    with open(lock, 'w') as f:
        json.dump({'pid': _dead_pid(), 'host': socket.gethostname(), 'started': '2025-01-01 00:00:00'}, f)
    opt_path = make_options(tmp_path, clean_root, paired_root)
    run_train(str(tmp_path), ['-opt', opt_path])
    assert osp.isfile(tmp_path / 'experiments' / 'tiny' / 'training_states' / '20.state')
    assert not osp.exists(lock)  # released at the end


def test_taking_over_a_stale_lock_is_reported(tmp_path):
    folder = str(tmp_path / 'experiments' / 'tiny')
    os.makedirs(osp.dirname(folder))
    pid = _dead_pid()
    with open(lock_path(folder), 'w') as f:
        json.dump({'pid': pid, 'host': socket.gethostname(), 'started': '2025-01-01 00:00:00'}, f)
    with run_lock(folder) as notes:
        with open(lock_path(folder)) as f:
            assert json.load(f)['pid'] == os.getpid()
    assert notes == [f'{folder}: took over the lock {lock_path(folder)} of PID {pid} (started 2025-01-01 00:00:00), '
                     'which is no longer running']


def test_lock_of_another_host_is_not_taken_over(tmp_path):
    folder = str(tmp_path / 'tiny')
    with open(lock_path(folder), 'w') as f:
        json.dump({'pid': _dead_pid(), 'host': 'elsewhere', 'started': '2025-01-01 00:00:00'}, f)
    with pytest.raises(RunError) as err:
        with run_lock(folder):
            pass
    assert_names(err, folder, 'elsewhere', lock_path(folder))


@pytest.mark.parametrize('ending', [None, ValueError, KeyboardInterrupt])
def test_lock_is_released_however_the_run_ends(tmp_path, ending):
    folder = str(tmp_path / 'runs' / 'tiny')
    with pytest.raises(ending) if ending else open(os.devnull) as _:
        with run_lock(folder):
            assert osp.isfile(lock_path(folder))
            if ending:
                raise ending()
    assert not osp.exists(tmp_path / 'runs')  # the folder the lock made is gone with it


def test_only_rank_0_locks(tmp_path):
    with run_lock(str(tmp_path / 'tiny'), enabled=False):
        assert os.listdir(tmp_path) == []


def test_failed_start_puts_back_what_it_archived_and_removes_what_it_made(tmp_path):
    _earlier_run(tmp_path)
    before = _tree(tmp_path)
    exp, tb = str(tmp_path / 'experiments' / 'tiny'), str(tmp_path / 'tb_logger' / 'tiny')
    with pytest.raises(ValueError):
        with fresh_run_dirs([exp, tb], [osp.join(exp, 'models'), str(tmp_path / 'new' / 'deep')]) as notes:
            assert os.listdir(exp) == ['models'] and not osp.exists(tb)
            assert len(notes) == 2 and notes[0].startswith(f'{exp} exists: renamed to {exp}_archived_')
            os.makedirs(tb)  # what a tensorboard writer makes during the start
            open(osp.join(tb, 'events.out.tfevents.2.host'), 'wb').close()
            raise ValueError('bad data')
    assert _tree(tmp_path) == before


def test_failed_training_start_keeps_the_earlier_run_resumable(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root)
    run_train(str(tmp_path), ['-opt', opt_path])
    events = glob.glob(str(tmp_path / 'tb_logger' / 'tiny' / 'events.out.tfevents.*'))
    with pytest.raises(FileNotFoundError) as err:
        run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'datasets:train:dataroot_gt=/nonexistent'])
    assert_names(err, "dataset 'tiny_train'", 'dataroot_gt', '/nonexistent')
    assert glob.glob(str(tmp_path / 'tb_logger' / 'tiny' / 'events.out.tfevents.*')) == events
    assert osp.isfile(tmp_path / 'experiments' / 'tiny' / 'training_states' / '20.state')
    assert os.listdir(tmp_path / 'experiments') == ['tiny'] and os.listdir(tmp_path / 'tb_logger') == ['tiny']
    model = run_train(str(tmp_path), ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=30'])
    assert model.opt['path']['pretrain_network_g'].endswith('net_g_20.pth')
    assert osp.isfile(tmp_path / 'experiments' / 'tiny' / 'training_states' / '30.state')


def test_failed_test_start_keeps_the_earlier_results(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, total_iter=2)
    run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:val_freq=1000'])
    weights = str(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    test_opt = make_test_options(tmp_path, paired_root, weights)
    run_test(str(tmp_path), ['-opt', test_opt])
    before = _tree(tmp_path / 'results')
    with pytest.raises(FileNotFoundError) as err:
        run_test(str(tmp_path), ['-opt', test_opt, '--force_yml', 'datasets:test:dataroot_gt=/nonexistent'])
    assert_names(err, '/nonexistent/astronaut.png')
    assert _tree(tmp_path / 'results') == before


def test_stale_temp_file_is_removed_when_a_run_resumes(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, total_iter=10)
    run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:val_freq=1000'])
    stale = tmp_path / 'experiments' / 'tiny' / 'training_states' / f'20.state.tmp{_dead_pid()}'
    stale.write_bytes(b'PK partial')
    run_train(str(tmp_path), ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=10',
                              'val:val_freq=1000'])
    assert not stale.exists()
