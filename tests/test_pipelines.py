"""End to end on tiny data: train.py lowers the loss and resumes, test.py writes the tables, failures are clean."""
import glob
import json
import os
import subprocess
import sys
from os import path as osp

import cv2
import pytest
import torch
from basicsr.models import build_model
from conftest import TASKS, assert_error_line, assert_names, make_options, make_test_options
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from basicsr_tur.models.tur_model import NonFiniteLossError
from basicsr_tur.test import run_test, setting_table
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.errors import DataError, UserError
from basicsr_tur.utils.option_file import OptionError, load_yaml
from basicsr_tur.utils.options import parse_options
from basicsr_tur.utils.tables import load_published

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_PUBLISHED = ('tiny:\n  rows:\n'
                  '    Paper: {tiny_test_set/sr: [30.0, 0.9], tiny_test_set/noise: [31.0, 0.9], '
                  'tiny_test_set/dark: [32.0, 0.9]}\n'
                  '    Paper + TUR: {tiny_test_set/sr: [30.5, 0.95], tiny_test_set/noise: [31.5, 0.95], '
                  'tiny_test_set/dark: [32.5, 0.95]}\n')


def scalars(root, name, tag):
    """Values of one tensorboard scalar of run `name`, in step order."""
    acc = EventAccumulator(osp.join(root, 'tb_logger', name))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


@pytest.fixture
def trained(tmp_path, clean_root, paired_root):
    """A finished 20-iteration TUR run: (root, options path)."""
    opt_path = make_options(tmp_path, clean_root, paired_root)
    run_train(str(tmp_path), ['-opt', opt_path])
    return str(tmp_path), opt_path


def test_training_lowers_the_loss_and_logs_each_task(trained):
    root, _ = trained
    losses = scalars(root, 'tiny', 'losses/l_pix')
    assert len(losses) == 4 and losses[-1] < losses[0]
    acc = EventAccumulator(osp.join(root, 'tb_logger', 'tiny'))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {f'train/sigma/{t}' for t in TASKS} <= tags and {f'train/l1/{t}' for t in TASKS} <= tags
    assert {f'metrics/tiny_val/{t}/psnr' for t in TASKS} | {'metrics/tiny_val/average/psnr'} <= tags


def test_training_writes_resumable_states_and_weights(trained):
    root, _ = trained
    exp = osp.join(root, 'experiments', 'tiny')
    assert sorted(os.listdir(osp.join(exp, 'training_states'))) == ['10.state', '20.state', '20.validated']
    assert {'net_g_10.pth', 'net_g_20.pth', 'net_g_latest.pth'} <= set(os.listdir(osp.join(exp, 'models')))
    state = torch.load(osp.join(exp, 'training_states', '20.state'), weights_only=True)
    assert state['iter'] == 20 and len(state['optimizers']) == 1


def test_auto_resume_continues_from_the_latest_state(trained):
    root, opt_path = trained
    run_train(root, ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=30'])
    exp = osp.join(root, 'experiments', 'tiny')
    assert '30.state' in os.listdir(osp.join(exp, 'training_states'))
    assert not [d for d in os.listdir(osp.join(root, 'experiments')) if 'archived' in d]
    steps = EventAccumulator(osp.join(root, 'tb_logger', 'tiny'))
    steps.Reload()
    assert [e.step for e in steps.Scalars('losses/l_pix')][-2:] == [25, 30]


def test_test_pipeline_writes_per_task_tables(trained, paired_root):
    root, _ = trained
    weights = osp.join(root, 'experiments', 'tiny', 'models', 'net_g_latest.pth')
    published = osp.join(root, 'published.yml')
    with open(published, 'w') as f:
        f.write(TINY_PUBLISHED)
    results = run_test(root, ['-opt', make_test_options(__import__('pathlib').Path(root), paired_root, weights),
                              '--force_yml', f'published:file={published}', 'published:setting=tiny',
                              'published:row=Paper + TUR'])
    out = osp.join(root, 'results', 'tiny_test')
    table = open(osp.join(out, 'metrics.md')).read()
    for task in TASKS:
        assert f'| {task} | 3 |' in table
    assert '**Average**' in table and 'Input (degraded)' in table
    assert '| Method | tiny_test_set/sr | tiny_test_set/noise | tiny_test_set/dark | Average |' in table
    assert '| Paper (published) | 30.00/0.9000 | 31.00/0.9000 | 32.00/0.9000 | 31.00/0.9000 |' in table
    sr = results['tiny_test_set']['model']['tasks']['sr']
    assert f"| Δ tiny_test − Paper + TUR (published) | {sr['psnr'] - 30.5:+.2f}/{sr['ssim'] - 0.95:+.4f} |" in table
    data = json.load(open(osp.join(out, 'metrics.json')))
    assert data['published_as'] == {'file': osp.abspath(published), 'setting': 'tiny', 'row': 'Paper + TUR'}
    # how it was measured: each metric's settings, the images scored, the weights
    assert data['protocol']['metrics']['psnr']['type'] == 'calculate_psnr'
    assert data['protocol']['metrics']['psnr']['input_order'] == 'HWC'  # the function's defaults recorded too
    assert data['protocol']['tile'] is None  # whole images
    assert data['protocol']['images'] == {'psnr': '8-bit', 'ssim': '8-bit'}
    assert 'psnr: calculate_psnr (crop_border 0, RGB, images: 8-bit)' in table
    assert set(data['protocol']['test_sets']) == {'tiny_test_set'} and data['protocol']['weights']['key']
    per_task = data['results']['tiny_test_set']['model']['tasks']
    assert list(per_task) == TASKS and set(per_task['sr']) == {'psnr', 'ssim'}
    assert results['tiny_test_set']['input']['tasks']['noise']['psnr'] > 0
    assert open(osp.join(out, 'metrics.csv')).readline().startswith('name,dataset,source,task')
    assert len(os.listdir(osp.join(out, 'visualization', 'tiny_test_set', 'sr'))) == 3
    figure = cv2.imread(osp.join(out, 'comparison_tiny_test_set.png'))
    assert figure is not None and figure.shape[0] > 3 * 160


def fake_results(psnr: dict[str, float]) -> dict:
    """test.py's results of one test set holding several tasks: {task: PSNR} for the model, SSIM 0.8, input 20 dB."""
    return {'tiny_test_set': {
        'counts': {t: 1 for t in psnr},
        'model': {'tasks': {t: {'psnr': p, 'ssim': 0.8} for t, p in psnr.items()}, 'average': {}},
        'input': {'tasks': {t: {'psnr': 20.0, 'ssim': 0.5} for t in psnr}, 'average': {}}}}


def test_difference_row_is_to_the_published_row_the_options_name(tmp_path):
    path = tmp_path / 'published.yml'
    path.write_text(TINY_PUBLISHED)
    published = {'file': str(path), 'setting': 'tiny', 'row': 'Paper + TUR'}
    table = setting_table('run', fake_results({'sr': 31.0, 'noise': 31.0, 'dark': 31.0}), published)
    assert ('| Δ run − Paper + TUR (published) | +0.50/-0.1500 | -0.50/-0.1500 | -1.50/-0.1500 | -0.50/-0.1500 |'
            in table)
    assert table.count('Δ') == 1


def test_difference_row_states_how_the_published_row_was_measured(tmp_path):
    path = tmp_path / 'published.yml'
    path.write_text(TINY_PUBLISHED + "  table: 'Table 9'\n  protocol: PSNR of float outputs\n")
    published = {'file': str(path), 'setting': 'tiny', 'row': 'Paper + TUR'}
    table = setting_table('run', fake_results({'sr': 31.0, 'noise': 31.0, 'dark': 31.0}), published)
    assert 'PSNR of float outputs' in table and 'Table 9' in table
    no_row = setting_table('run', fake_results({'sr': 31.0}), dict(published, row=None))
    assert 'PSNR of float outputs' not in no_row


def test_no_difference_row_without_a_published_row(tmp_path):
    path = tmp_path / 'published.yml'
    path.write_text(TINY_PUBLISHED)
    table = setting_table('run', fake_results({'sr': 31.0, 'noise': 31.0, 'dark': 31.0}),
                          {'file': str(path), 'setting': 'tiny'})
    assert '| Paper (published) |' in table and '| Paper + TUR (published) |' in table
    assert '| Δ' not in table and 'no Δ row' in table


def test_unknown_published_row_fails_before_the_run_starts(tmp_path, paired_root):
    published = tmp_path / 'published.yml'
    published.write_text(TINY_PUBLISHED)
    opt_path = make_test_options(tmp_path, paired_root, str(tmp_path / 'no_weights_needed.pth'))
    with pytest.raises(OptionError) as err:
        run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', f'published:file={published}',
                                 'published:setting=tiny', 'published:row=paper+tur'])
    assert_names(err, opt_path, "'published.row'", "'paper+tur'", "'tiny'", published, "'Paper + TUR'")
    assert not osp.exists(osp.join(tmp_path, 'results'))


SHIPPED_TEST_FILES = sorted(p for p in glob.glob(osp.join(REPO, 'options', 'test', '*', '*.yml'))
                            if '/demo/' not in p)


@pytest.mark.parametrize('path', SHIPPED_TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_shipped_test_options_compare_with_their_own_tur_row(path):
    published = load_yaml(path)['published']
    rows = load_published(osp.join(REPO, published['file']), published['setting'])
    arch = osp.basename(path)[:-len('.yml')]
    assert published['row'] in rows and published['row'].lower() == f'{arch.lower()} + tur'


@pytest.mark.parametrize('path', SHIPPED_TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_l1_command_in_the_header_compares_with_the_backbone_row(path, tmp_path):
    header = open(path, encoding='utf-8').read().split('\n\n')[0]
    command = header.split('For the L1 run: --force_yml', 1)[1].split('\n# Protocol')[0]
    overrides = command.replace('#', ' ').split()
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path, '--force_yml', *overrides])
    arch = osp.basename(path)[:-len('.yml')]
    assert opt['name'].endswith('_L1') and '_L1' in opt['path']['pretrain_network_g']
    assert opt['published']['row'].lower() == arch.lower()
    assert opt['published']['row'] in load_published(opt['published']['file'], opt['published']['setting'])


def test_l1_baseline_is_one_yaml_change_away(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    run_train(str(tmp_path), ['-opt', opt_path])
    assert scalars(str(tmp_path), 'tiny', 'train/l1/sr')


def test_tur_loss_without_head_fails_before_training(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root)
    with pytest.raises(UserError) as err:
        run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'network_g:uncertainty_head=false'])
    assert_names(err, 'train.pixel_opt.type', 'network_g.uncertainty_head')
    assert not osp.exists(osp.join(tmp_path, 'experiments', 'tiny'))


def test_bad_data_fails_with_nothing_half_written(tmp_path, clean_root, paired_root):
    with open(osp.join(paired_root, 'meta.txt'), 'a') as f:
        f.write('sr/x.png x.png deblur\n')
    opt_path = make_options(tmp_path, clean_root, paired_root)
    with pytest.raises(DataError) as err:
        run_train(str(tmp_path), ['-opt', opt_path])
    assert_names(err, "'deblur'", *TASKS)
    assert not osp.exists(osp.join(tmp_path, 'experiments', 'tiny'))
    assert not osp.exists(osp.join(tmp_path, 'tb_logger', 'tiny'))


def test_non_finite_loss_skips_the_step_then_stops_the_run(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, max_nonfinite_steps=2)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', opt_path])
    model = build_model(opt)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    batch = {'lq': torch.full((2, 3, 8, 8), float('nan')), 'gt': torch.rand(2, 3, 8, 8),
             'task_id': torch.tensor([0, 2]), 'task': ['sr', 'dark']}
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    assert model.skipped_steps == 1
    model.optimize_parameters(2)
    # The step reads nothing from the device: the streak is checked when the logger reads the figures.
    with pytest.raises(NonFiniteLossError) as err:
        model.get_current_log()
    assert_names(err, 'dark, sr', 'train.max_nonfinite_steps')


def test_command_line_error_is_one_clear_line(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root)
    with open(opt_path, 'a') as f:
        f.write('manual_sed: 1\n')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'train.py'), '-opt', opt_path], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert_error_line(proc.stderr, opt_path, "'manual_sed'", "'manual_seed'")
    assert 'Traceback' not in proc.stderr


def test_adamw_and_any_torch_optimizer_are_built(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root, optim_g={'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.02})
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    assert isinstance(build_model(opt).optimizer_g, torch.optim.AdamW)


def test_gpu_run_without_cuda_is_refused_before_anything_is_written(tmp_path, clean_root, paired_root):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    path = make_options(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        run_train(str(tmp_path), ['-opt', path, '--force_yml', 'num_gpu=1'])
    assert_names(err, path, 'num_gpu: 1')
    assert not osp.exists(osp.join(tmp_path, 'experiments'))
