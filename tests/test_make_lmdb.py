"""make_lmdb.py never writes an LMDB that training would refuse: size mismatches, empty inputs and two files with one
key are refused in one line with nothing written, and the LMDB datasets refuse a meta file whose paths share a key."""
import importlib.util
import re
import subprocess
import sys
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from conftest import TASKS, assert_error_line, assert_names, write_rgb

from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.lmdb_util import LmdbWriter, build_clean_lmdb, lmdb_key

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_spec = importlib.util.spec_from_file_location('make_lmdb', osp.join(REPO, 'scripts', 'make_lmdb.py'))
make_lmdb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_lmdb)


def run(capsys, *argv: str) -> tuple[int, list[str]]:
    """make_lmdb.py's exit status and stderr lines, less its progress bars."""
    rc = make_lmdb.main(list(argv))
    return rc, [line for line in capsys.readouterr().err.strip().splitlines() if not re.search(r'\d+%\|', line)]


def paired_args(root: str, mode: str, out: str) -> list[str]:
    """make_lmdb.py arguments for the paired fixture, from its meta file or from its task folders."""
    source = ['--meta', osp.join(root, 'meta.txt')] if mode == 'meta' else ['--tasks', *TASKS]
    return ['--lq', osp.join(root, 'lq'), '--gt', osp.join(root, 'gt'), *source, '--out', out]


def assert_nothing_written(out: str) -> None:
    assert not osp.exists(out) and not osp.exists(out + '.partial')


MISMATCHES = {  # (H, W) of one LQ image among the fixture's 9 pairs, all 40x40
    'sr_input_not_upscaled': (20, 20),
    'one_row_short': (39, 40),
    'transposed': (40, 41),
}


@pytest.mark.parametrize('mode', ['meta', 'tasks'])
@pytest.mark.parametrize('kind', MISMATCHES)
def test_lq_gt_size_mismatch_in_one_pair_is_refused_with_nothing_written(kind, mode, paired_root, tmp_path, capsys):
    h, w = MISMATCHES[kind]
    lq = osp.join(paired_root, 'lq', 'noise', 'coffee.png')
    write_rgb(lq, np.zeros((h, w, 3), np.uint8))
    out = str(tmp_path / 'db')
    rc, err = run(capsys, *paired_args(paired_root, mode, out))
    assert rc == 1
    gt = osp.join(paired_root, 'gt', 'coffee.png')
    assert_error_line('\n'.join(err), lq, f'{h}x{w}', gt)
    assert_nothing_written(out)


def test_gray_lq_of_a_color_gt_of_the_same_size_is_accepted(paired_root, tmp_path, capsys):
    # The datasets read every image as RGB, so only height and width must agree.
    lq = osp.join(paired_root, 'lq', 'dark', 'chelsea.png')
    cv2.imwrite(lq, np.full((40, 40), 7, np.uint8))
    out = str(tmp_path / 'db')
    assert run(capsys, *paired_args(paired_root, 'meta', out))[0] == 0
    assert len(open(osp.join(out, 'lq.lmdb', 'meta_info.txt')).read().splitlines()) == 9


@pytest.mark.parametrize('content', ['empty', 'not_images', 'depth_maps_only'])
def test_clean_folder_without_images_is_refused(content, tmp_path, capsys):
    folder = tmp_path / 'gt'
    folder.mkdir()
    if content == 'not_images':
        (folder / 'notes.txt').write_text('x')
        (folder / 'sub').mkdir()
    elif content == 'depth_maps_only':
        np.save(folder / 'x.npy', np.zeros((4, 4)))
    out = str(tmp_path / 'db')
    rc, err = run(capsys, '--gt', str(folder), '--clean', '--out', out)
    assert rc == 1
    assert_error_line('\n'.join(err), folder)
    assert_nothing_written(out)


def test_missing_clean_folder_is_named(tmp_path, capsys):
    rc, err = run(capsys, '--gt', str(tmp_path / 'nope'), '--clean', '--out', str(tmp_path / 'db'))
    assert rc == 1
    assert_error_line('\n'.join(err), tmp_path / 'nope')


@pytest.mark.parametrize('text', ['', '\n\n  \n', '# source: MiOIR test set\n# nothing else\n',
                                  '   # indented comment\n\n'])
@pytest.mark.parametrize('with_tasks', [False, True])
def test_meta_file_listing_no_pairs_is_refused_as_such(text, with_tasks, paired_root, tmp_path, capsys):
    meta = tmp_path / 'empty.txt'
    meta.write_text(text)
    out = str(tmp_path / 'db')
    tasks = ['--tasks', *TASKS] if with_tasks else []
    rc, err = run(capsys, '--lq', osp.join(paired_root, 'lq'), '--gt', osp.join(paired_root, 'gt'),
                  '--meta', str(meta), *tasks, '--out', out)
    assert rc == 1
    assert_error_line('\n'.join(err), meta)
    assert_nothing_written(out)


def test_tasks_are_read_from_the_pairs_of_a_meta_file_with_comments(paired_root, tmp_path, capsys):
    meta = osp.join(paired_root, 'meta.txt')
    lines = open(meta).read().splitlines()
    # A trailing comment on the only lines of task 'noise' (the old reader skipped lines of more than 3 fields).
    text = '# source: a b\n' + '\n'.join(f'{line}  # checked' if ' noise' in line else line for line in lines) + '\n'
    open(meta, 'w').write(text)
    out = str(tmp_path / 'db')
    assert run(capsys, *paired_args(paired_root, 'meta', out))[0] == 0
    assert open(osp.join(out, 'meta.txt')).read().splitlines() == lines


def one_key_two_files(root: str, side: str) -> tuple[str, str, list[str]]:
    """Add x.png and x.jpg (one LMDB key) on one side of the paired fixture: (root of the side, the two relative
    paths, meta lines listing both)."""
    if side == 'lq':
        a, b = 'noise/x.png', 'noise/x.jpg'
        write_rgb(osp.join(root, 'gt', 'x.png'), np.full((40, 40, 3), 100, np.uint8))
        lines = [f'{a} x.png noise', f'{b} x.png noise']
    else:
        a, b = 'x.png', 'x.jpg'
        for name in ('x1.png', 'x2.png'):
            write_rgb(osp.join(root, 'lq', 'sr', name), np.full((40, 40, 3), 50, np.uint8))
        lines = [f'sr/x1.png {a} sr', f'sr/x2.png {b} sr']
    write_rgb(osp.join(root, side, a), np.full((40, 40, 3), 110, np.uint8))
    write_rgb(osp.join(root, side, b), np.full((40, 40, 3), 250, np.uint8))
    return osp.join(root, side), (a, b), lines


@pytest.mark.parametrize('side', ['lq', 'gt'])
def test_two_files_with_one_key_in_a_meta_file_are_refused_naming_both(side, paired_root, tmp_path, capsys):
    side_root, (a, b), lines = one_key_two_files(paired_root, side)
    with open(osp.join(paired_root, 'meta.txt'), 'a') as f:
        f.write('\n'.join(lines) + '\n')
    out = str(tmp_path / 'db')
    rc, err = run(capsys, *paired_args(paired_root, 'meta', out))
    assert rc == 1
    assert_error_line('\n'.join(err), side.upper(), side_root, a, b, f"'{lmdb_key(a)}'")
    assert_nothing_written(out)


def test_two_files_with_one_key_in_a_task_folder_are_refused(paired_root, tmp_path, capsys):
    write_rgb(osp.join(paired_root, 'lq', 'dark', 'coffee.bmp'), np.zeros((40, 40, 3), np.uint8))
    write_rgb(osp.join(paired_root, 'gt', 'coffee.bmp'), np.zeros((40, 40, 3), np.uint8))
    out = str(tmp_path / 'db')
    rc, err = run(capsys, *paired_args(paired_root, 'tasks', out))
    assert rc == 1
    assert_error_line('\n'.join(err), 'dark/coffee.bmp', 'dark/coffee.png', "'dark/coffee'")
    assert_nothing_written(out)


@pytest.mark.parametrize('names', [('x.png', 'x.jpg'), ('a/b.PNG', 'a/b.tif')])
def test_two_clean_images_with_one_key_are_refused(names, tmp_path, capsys):
    for name in names:
        write_rgb(str(tmp_path / 'gt' / name), np.zeros((8, 8, 3), np.uint8))
    out = str(tmp_path / 'db')
    with pytest.raises(DataError) as err:
        build_clean_lmdb(list(names), str(tmp_path / 'gt'), out)
    assert_names(err, *names, f"'{lmdb_key(names[0])}'")
    assert_nothing_written(out)


def test_an_image_lmdb_cannot_store_is_named_in_one_line_with_nothing_written(tmp_path):
    long_name = '/'.join(['d' * 200] * 3) + '.png'  # a 602-character key: LMDB takes at most 511 bytes
    for name in ('a.png', long_name):
        write_rgb(str(tmp_path / 'gt' / name), np.zeros((8, 8, 3), np.uint8))
    out = str(tmp_path / 'db')
    with pytest.raises(OSError) as err:
        build_clean_lmdb(['a.png', long_name], str(tmp_path / 'gt'), out)
    assert str(err.value).startswith(f"{out}.partial/gt.lmdb: cannot store {tmp_path / 'gt' / long_name} under key")
    assert '\n' not in str(err.value)
    assert_nothing_written(out)


def test_same_name_in_two_task_folders_gets_two_keys(paired_root, tmp_path, capsys):
    # The fixture itself: sr/coffee.png, noise/coffee.png and dark/coffee.png, each its own image in the LMDB.
    out = str(tmp_path / 'db')
    assert run(capsys, *paired_args(paired_root, 'tasks', out))[0] == 0
    ds = build_dataset({'name': 'p', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                        'dataroot_lq': osp.join(out, 'lq.lmdb'), 'dataroot_gt': osp.join(out, 'gt.lmdb'),
                        'meta_file': osp.join(out, 'meta.txt'), 'io_backend': {'type': 'lmdb'}})
    disk = build_dataset({'name': 'p', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                          'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt')})
    assert len(ds) == len(disk) == 9
    for i in range(len(ds)):
        assert torch.equal(ds[i]['lq'], disk[i]['lq'])


def handmade_lmdb(folder: str, keys: list[str]) -> str:
    """An LMDB holding one 8x8 image per key (as an older make_lmdb or another tool could have written it)."""
    src = osp.join(folder, 'src.png')
    write_rgb(src, np.zeros((8, 8, 3), np.uint8))
    path = osp.join(folder, 'db.lmdb')
    with LmdbWriter(path) as db:
        for key in keys:
            db.put(key, src)
    return path


@pytest.mark.parametrize('side', ['lq', 'gt'])
def test_paired_lmdb_dataset_refuses_a_meta_file_whose_paths_share_a_key(side, tmp_path):
    db = handmade_lmdb(str(tmp_path), ['noise/x', 'x'])
    meta = tmp_path / 'meta.txt'
    meta.write_text('noise/x.png x.png noise\nnoise/x.jpg x.png noise\n' if side == 'lq'
                    else 'noise/x.png x.png noise\nnoise/x.png x.jpg noise\n')
    a, b = ('noise/x.png', 'noise/x.jpg') if side == 'lq' else ('x.png', 'x.jpg')
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': ['noise'],
                       'dataroot_lq': db, 'dataroot_gt': db, 'meta_file': str(meta), 'io_backend': {'type': 'lmdb'}})
    assert_names(err, "'s'", side.upper(), meta, a, b)


def test_synthetic_lmdb_dataset_refuses_a_list_whose_paths_share_a_key(tmp_path):
    db = handmade_lmdb(str(tmp_path), ['x'])
    meta = tmp_path / 'meta.txt'
    meta.write_text('x.png\nx.jpg\n')
    with pytest.raises(DataError) as err:
        build_dataset({'name': 'c', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['noise'],
                       'dataroot_gt': db, 'meta_file': str(meta), 'io_backend': {'type': 'lmdb'}})
    assert_names(err, "'c'", meta, 'x.png', 'x.jpg')


def test_disk_dataset_serves_both_files_of_one_stem(paired_root):
    # On disk x.png and x.jpg are two images; only an LMDB conflates them.
    _, _, lines = one_key_two_files(paired_root, 'lq')
    meta = osp.join(paired_root, 'two.txt')
    open(meta, 'w').write('\n'.join(lines) + '\n')
    ds = build_dataset({'name': 's', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                        'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                        'meta_file': meta})
    assert not torch.equal(ds[0]['lq'], ds[1]['lq'])


# A child that limits its own address space (`ulimit -v`, as clusters do) to what it uses plus 4 GiB, then writes the
# paired fixture's LMDBs: basicsr's LmdbMaker alone reserves a 1 TB map per database, which such a process cannot map.
UNDER_LIMIT = """
import resource, sys
from basicsr_tur.utils.lmdb_util import build_paired_lmdb
root, out = sys.argv[1:]
used = next(int(line.split()[1]) * 1024 for line in open('/proc/self/status') if line.startswith('VmSize:'))
resource.setrlimit(resource.RLIMIT_AS, (used + 4 * 2 ** 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
pairs = [tuple(line.split()) for line in open(root + '/meta.txt')]
print(build_paired_lmdb(pairs, root + '/lq', root + '/gt', out))
"""


@pytest.mark.skipif(not osp.exists('/proc/self/status'), reason='reads the address space used from /proc (Linux)')
def test_lmdb_is_written_under_an_address_space_limit(tmp_path, paired_root):
    out = str(tmp_path / 'db')
    run = subprocess.run([sys.executable, '-c', UNDER_LIMIT, paired_root, out], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr.strip().splitlines()[-1:]
    assert len(open(osp.join(out, 'lq.lmdb', 'meta_info.txt')).read().splitlines()) == 9


def lmdb_set(out: str, phase: str = 'train', **extra) -> dict:
    return {'name': 'l', 'type': 'PairedTaskDataset', 'phase': phase, 'tasks': TASKS, 'io_backend': {'type': 'lmdb'},
            'dataroot_lq': osp.join(out, 'lq.lmdb'), 'dataroot_gt': osp.join(out, 'gt.lmdb'),
            'meta_file': osp.join(out, 'meta.txt'), 'gt_size': 16, 'use_hflip': True, 'use_rot': True, **extra}


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_raw_lmdb_values_give_the_samples_of_png_values(paired_root, tmp_path, capsys, phase):
    png, raw = str(tmp_path / 'png'), str(tmp_path / 'raw')
    assert run(capsys, *paired_args(paired_root, 'meta', png))[0] == 0
    assert run(capsys, *paired_args(paired_root, 'meta', raw), '--values', 'raw')[0] == 0
    from_png = build_dataset(lmdb_set(png, phase))
    from_raw = build_dataset(lmdb_set(raw, phase, check_images='headers'))  # headers of raw values read too
    for i in range(len(from_png)):
        a, b = from_png[i], from_raw[i]
        assert a['lq'].dtype == b['lq'].dtype == torch.uint8
        assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])


def test_a_truncated_raw_value_is_named_in_one_line(tmp_path):
    img = np.zeros((20, 20, 3), np.uint8)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, img)
    with LmdbWriter(str(tmp_path / 'gt.lmdb'), values='raw') as db:
        db.put('a', path)
    env = lmdb.open(str(tmp_path / 'gt.lmdb'), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b'a', txn.get(b'a')[:-10])
    env.close()
    (tmp_path / 'meta.txt').write_text('a.png\n')
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['dark'],
                        'io_backend': {'type': 'lmdb'}, 'dataroot_gt': str(tmp_path / 'gt.lmdb'),
                        'meta_file': str(tmp_path / 'meta.txt')})
    with pytest.raises(DataError) as err:
        ds[0]
    assert_names(err, "'a'")
