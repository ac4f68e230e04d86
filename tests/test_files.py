"""Result files are written whole or not at all: a failing write (full disk, file size limit, torch.save's
RuntimeError) leaves the previous file and no temporary file, and says so in one line naming the file."""
import errno
import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_names

from basicsr_tur.data.data_util import write_png
from basicsr_tur.utils import files
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.files import atomic_write, remove_stale_temps, write_image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def save(obj: object, path: str) -> None:
    """A checkpoint written as TURModel writes its weights and training states."""
    atomic_write(path, lambda f: torch.save(obj, f), what='save')


def _image(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


# Every writer of result files, with two contents and a reader telling them apart.
WRITERS = {
    'checkpoint': (lambda p, v: save({'a': torch.full((4,), float(v))}, p),
                   lambda p: int(torch.load(p, weights_only=True)['a'][0]), 'm.pth'),
    'image': (lambda p, v: write_image(p, _image(v)), lambda p: int(cv2.imread(p)[0, 0, 0]), 'x.png'),
    'png': (lambda p, v: write_png(p, _image(v)), lambda p: int(cv2.imread(p)[0, 0, 0]), 'y.png'),
    'table': (lambda p, v: atomic_write(p, f'| {v} |\n'), lambda p: int(open(p).read().strip('|\n ')), 'metrics.md'),
}


@pytest.mark.parametrize('kind', list(WRITERS))
def test_failing_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch, kind):
    write, read, name = WRITERS[kind]
    path = str(tmp_path / name)
    write(path, 1)

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, 'fsync', full_disk)
    with pytest.raises(OSError) as err:
        write(path, 2)
    monkeypatch.undo()
    assert str(err.value).endswith(f'{path}: No space left on device (the previous file, if any, is intact)')
    assert read(path) == 1
    assert os.listdir(tmp_path) == [name]


def test_torch_save_runtime_error_on_a_full_disk_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    path = str(tmp_path / '30.state')
    save({'a': torch.ones(1)}, path)

    def truncated(obj, f):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 partial')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 22784 vs 22676')

    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(torch, 'save', truncated)
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: usage(256 * 1024, 256 * 1024, 0))
    with pytest.raises(OSError) as err:
        save({'a': torch.zeros(1)}, path)
    monkeypatch.undo()
    assert_names(err, path, os.strerror(errno.ENOSPC))
    assert torch.load(path)['a'].item() == 1.0
    assert os.listdir(tmp_path) == ['30.state']


def test_torch_save_oserror_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / 'm.pth')
    save({'a': torch.ones(1)}, path)

    def full_disk(obj, f):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError) as err:
        save({'a': torch.zeros(1)}, path)
    monkeypatch.undo()
    assert_names(err, path)
    assert torch.load(path)['a'].item() == 1.0
    assert os.listdir(tmp_path) == ['m.pth']


FSIZE_SCRIPT = r'''
import json, os, resource, signal, sys
import numpy as np, torch
from basicsr_tur.utils.files import atomic_write, write_image
folder = sys.argv[1]
def save(obj, path):
    atomic_write(path, lambda f: torch.save(obj, f), what='save')
save({'a': torch.ones(4)}, f'{folder}/m.pth')
write_image(f'{folder}/x.png', np.zeros((8, 8, 3), np.uint8))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
errors = []
for write in (lambda: save({'a': torch.ones(100000)}, f'{folder}/m.pth'),
              lambda: write_image(f'{folder}/x.png', np.random.default_rng(0).integers(0, 256, (200, 200, 3),
                                                                                     dtype=np.uint8))):
    try:
        write()
    except OSError as err:
        errors.append(str(err))
print(json.dumps(errors))
'''


@pytest.mark.skipif(not hasattr(__import__('signal'), 'SIGXFSZ'), reason='needs POSIX file size limits')
def test_file_size_limit_while_saving_is_one_line_and_keeps_the_previous_file(tmp_path):
    proc = subprocess.run([sys.executable, '-c', FSIZE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    errors = json.loads(proc.stdout.splitlines()[-1])
    reason = 'File too large (file size limit 20000 bytes) (the previous file, if any, is intact)'
    assert errors == [f'could not save {tmp_path}/m.pth: {reason}', f'could not write image {tmp_path}/x.png: {reason}']
    assert sorted(os.listdir(tmp_path)) == ['m.pth', 'x.png']
    assert torch.load(tmp_path / 'm.pth')['a'].shape == (4,)
    assert cv2.imread(str(tmp_path / 'x.png')).shape == (8, 8, 3)


def test_interrupted_write_leaves_no_temp(tmp_path):
    def interrupted(tmp):
        with open(tmp, 'wb') as out:
            out.write(b'half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(tmp_path / 'a.bin'), interrupted)
    assert os.listdir(tmp_path) == []


def test_image_is_written_in_the_format_of_its_extension(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_image(str(tmp_path / 'sub' / 'a.png'), img)
    write_image(str(tmp_path / 'sub' / 'a.bmp'), img)
    for name in ('a.png', 'a.bmp'):
        assert np.array_equal(cv2.imread(str(tmp_path / 'sub' / name)), img)


def test_unencodable_image_names_the_file(tmp_path):
    with pytest.raises(DataError) as err:
        write_image(str(tmp_path / 'a.nope'), _image(0))
    assert_names(err, tmp_path / 'a.nope')
    assert os.listdir(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    live = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (tmp_path / 'states').mkdir()
        stale = tmp_path / 'states' / f'30.state.tmp{_dead_pid()}'
        own = tmp_path / f'net_g_30.pth.tmp{os.getpid()}'  # this process has written nothing yet: a reused PID
        busy = tmp_path / f'net_g_40.pth.tmp{live.pid}'
        kept = tmp_path / 'notes.tmp'
        for path in (stale, own, busy, kept):
            path.write_bytes(b'x')
        assert remove_stale_temps(str(tmp_path)) == sorted([str(stale), str(own)])
        assert sorted(os.listdir(tmp_path)) == sorted([busy.name, kept.name, 'states'])
    finally:
        live.kill()
        live.wait()
