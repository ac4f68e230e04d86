"""Errors met while loading samples and scoring them reach the command line as one line naming the file; results
files stay valid JSON; no two inputs write one output image."""
import json
import os
import shutil
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import assert_error_line, assert_names, make_options, make_test_options
from torch.utils.data import DataLoader, Dataset

from basicsr_tur.models import tur_model
from basicsr_tur.models.tur_model import NonFiniteLossError
from basicsr_tur.test import run_test
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.cli import BUG_REPORT, error_message, run_cli
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.memory import out_of_memory_error
from basicsr_tur.utils.options import parse_options


class Failing(Dataset):
    """Raises `error` (chained to another one) for every index."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        try:
            raise OSError('the cause')
        except OSError as cause:
            raise self.error from cause


@pytest.mark.parametrize('error', [DataError("dataset 'd': cannot decode lq image /x/a b.png (empty file)"),
                                   FileNotFoundError("dataset 'd': 1 of 2 images not found: line 2: lq /x/c.png")],
                         ids=lambda e: type(e).__name__)
def test_error_raised_in_a_loader_worker_reaches_the_cli_as_its_original_line(error, capsys):
    def pipeline(_root: str) -> None:
        list(DataLoader(Failing(error), num_workers=1))

    assert run_cli(pipeline, '.') == 1
    err = capsys.readouterr().err
    assert_error_line(err, error.args[0])
    assert 'Traceback' not in err


@pytest.mark.parametrize('error', [KeyError('x'), RuntimeError('shape mismatch'), TypeError('bad call'),
                                   ValueError('from a library')], ids=lambda e: type(e).__name__)
def test_an_unexpected_exception_keeps_its_traceback_and_is_called_a_bug(error, capsys):
    def pipeline(_root: str) -> None:
        raise error

    assert run_cli(pipeline, '.') == 1
    err = capsys.readouterr().err
    assert 'Traceback (most recent call last)' in err and type(error).__name__ in err
    assert err.rstrip().splitlines()[-1] == f'error: {BUG_REPORT}'


def test_an_unexpected_exception_in_a_loader_worker_keeps_its_traceback(capsys):
    def pipeline(_root: str) -> None:
        list(DataLoader(Failing(KeyError("dataset 'd': key 'x'")), num_workers=1))

    assert run_cli(pipeline, '.') == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err and "key 'x'" in err and err.rstrip().endswith(BUG_REPORT)


def test_message_of_an_error_not_from_a_worker_is_kept_whole():
    assert error_message(RuntimeError('Caught nothing here\nsecond line')) == 'Caught nothing here\nsecond line'


def weights_file(tmp_path) -> str:
    """Weights of the test options' network (random, seeded: the test must not depend on the RNG state that the
    tests before it left), as a file."""
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2})
    path = str(tmp_path / 'net.pth')
    torch.save({'params': net.state_dict()}, path)
    return path


def test_too_small_image_read_by_a_loader_worker_is_one_error_line(tmp_path, clean_root, paired_root, capsys):
    cv2.imwrite(osp.join(clean_root, 'thumb.png'), np.zeros((20, 20, 3), np.uint8))
    opt_path = make_options(tmp_path, clean_root, paired_root, train_set={'num_worker_per_gpu': 1})
    code = run_cli(lambda root: run_train(root, ['-opt', opt_path, '--force_yml', 'train:total_iter=4']),
                   str(tmp_path))
    assert code == 1
    assert_error_line(capsys.readouterr().err, 'tiny_train', f'{clean_root}/thumb.png', '20x20', 'gt_size')


def test_validation_meta_file_typo_fails_before_training(tmp_path, clean_root, paired_root):
    meta = osp.join(paired_root, 'meta.txt')
    text = open(meta).read().replace('noise/chelsea.png', 'noise/chelsea.jpg')
    open(meta, 'w').write(text)
    opt_path = make_options(tmp_path, clean_root, paired_root)
    with pytest.raises(FileNotFoundError) as err:
        run_train(str(tmp_path), ['-opt', opt_path])
    assert_names(err, 'tiny_val', meta, 'line 8', f'{paired_root}/lq/noise/chelsea.jpg')
    assert not osp.exists(osp.join(tmp_path, 'experiments', 'tiny', 'models', 'net_g_10.pth'))


def test_zero_byte_test_image_is_one_error_line(tmp_path, paired_root, capsys):
    bad = osp.join(paired_root, 'lq', 'sr', 'astronaut.png')
    open(bad, 'w').close()
    opt_path = make_test_options(tmp_path, paired_root, weights_file(tmp_path))
    assert run_cli(lambda root: run_test(root, ['-opt', opt_path]), str(tmp_path)) == 1
    assert_error_line(capsys.readouterr().err, 'tiny_test_set', bad)


def strict_json(path: str) -> dict:
    """Parse a file as standard JSON (NaN and Infinity, which Python's json accepts, are refused)."""
    def refuse(name: str):
        raise AssertionError(f'{path}: {name} is not JSON')

    return json.loads(open(path, encoding='utf-8').read(), parse_constant=refuse)


def test_psnr_of_an_input_identical_to_its_gt_is_capped_reported_and_valid_json(tmp_path, paired_root):
    for name in ('astronaut', 'coffee'):  # two of the three sr inputs are their GT
        shutil.copy(osp.join(paired_root, 'gt', f'{name}.png'), osp.join(paired_root, 'lq', 'sr', f'{name}.png'))
    opt_path = make_test_options(tmp_path, paired_root, weights_file(tmp_path))
    results = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false'])
    out = osp.join(tmp_path, 'results', 'tiny_test')
    data = strict_json(osp.join(out, 'metrics.json'))
    sr_input = data['results']['tiny_test_set']['input']['tasks']['sr']
    chelsea = results['tiny_test_set']['input']['tasks']['sr']['psnr'] * 3 - 2 * tur_model.PSNR_CAP
    assert sr_input['psnr'] == pytest.approx((2 * tur_model.PSNR_CAP + chelsea) / 3) and chelsea < 60
    # (the random network may also return some inputs unchanged: only the input row's count is known here)
    assert data['results']['tiny_test_set']['capped']['input'] == {'sr': {'psnr': 2}}
    assert 'counted as 100 dB' in open(osp.join(out, 'metrics.md')).read()


def test_nan_metric_is_an_error_naming_the_image(tmp_path, paired_root, monkeypatch):
    monkeypatch.setattr(tur_model, 'calculate_metric', lambda data, opt: float('nan'))
    opt_path = make_test_options(tmp_path, paired_root, weights_file(tmp_path))
    with pytest.raises(DataError) as err:
        run_test(str(tmp_path), ['-opt', opt_path])
    assert_names(err, "'psnr'", 'calculate_psnr', f'{paired_root}/lq/sr/astronaut.png',
                 f'{paired_root}/gt/astronaut.png', 'nan')
    assert not osp.exists(osp.join(tmp_path, 'results', 'tiny_test', 'metrics.json'))


def test_non_finite_steps_name_the_files_of_the_batch(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, max_nonfinite_steps=1)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', opt_path])
    model = build_model(opt)
    model.feed_data({'lq': torch.full((2, 3, 8, 8), float('nan')), 'gt': torch.rand(2, 3, 8, 8),
                     'task_id': torch.tensor([0, 2]), 'task': ['sr', 'dark'],
                     'lq_path': ['/c/a.png#sr', '/lq/dark/b.png'], 'gt_path': ['/c/a.png', '/gt/b.png']})
    model.optimize_parameters(1)
    with pytest.raises(NonFiniteLossError) as err:
        model.get_current_log()  # the logger's read of the step's figures checks the non-finite streak
    assert_names(err, '/c/a.png#sr', '/lq/dark/b.png', '/gt/b.png', 'train.max_nonfinite_steps')


def test_inputs_sharing_a_stem_are_saved_to_distinct_files(tmp_path, paired_root):
    lq_sr = osp.join(paired_root, 'lq', 'sr')
    img = cv2.imread(osp.join(lq_sr, 'coffee.png'))
    cv2.imwrite(osp.join(lq_sr, 'coffee.bmp'), img)
    shutil.copy(osp.join(paired_root, 'gt', 'coffee.png'), osp.join(paired_root, 'gt', 'coffee.bmp'))
    opt_path = make_test_options(tmp_path, paired_root, weights_file(tmp_path))
    run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'tasks=[sr]'])
    saved = sorted(os.listdir(osp.join(tmp_path, 'results', 'tiny_test', 'visualization', 'tiny_test_set', 'sr')))
    assert saved == ['astronaut_tiny_test.png', 'chelsea_tiny_test.png', 'coffee_bmp_tiny_test.png',
                     'coffee_png_tiny_test.png']



@pytest.mark.parametrize('failure', [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                 'to allocate 576000000 bytes. Error code 12 (Cannot allocate memory)'),
    torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 6 GiB')],
    ids=['cpu', 'cuda'])
def test_out_of_memory_while_testing_names_the_image_its_size_and_the_memory_asked(tmp_path, paired_root, capsys,
                                                                                  monkeypatch, failure):
    def forward(self, x):
        raise failure

    monkeypatch.setattr(type(build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2})), 'forward', forward)
    opt_path = make_test_options(tmp_path, paired_root, weights_file(tmp_path))
    assert run_cli(lambda root: run_test(root, ['-opt', opt_path]), str(tmp_path)) == 1
    err = capsys.readouterr().err
    lines = err[err.index('error: '):].splitlines()
    asked = '576000000 bytes' if 'cpu' in str(failure).lower() else '2.00 GiB'
    assert len(lines) == 1 and lines[0].startswith("error: dataset 'tiny_test_set': out of memory restoring ")
    assert osp.join(paired_root, 'lq') in lines[0] and '(40x40) on cpu' in lines[0]
    assert f'(tried to allocate {asked})' in lines[0] and 'val.tile' in lines[0]


def test_other_runtime_errors_while_testing_are_not_called_out_of_memory():
    assert out_of_memory_error(RuntimeError('shape mismatch'), 'd', 'a.png', torch.zeros(1, 3, 4, 4)) \
        is None
