"""test.py with `val.uncertainty: true`: σ of the TUR head against the per-pixel error, per task (mean σ, Spearman,
σ deciles), in metrics.md/json/csv and a calibration figure; the restored output unchanged; head-less checkpoints
refused."""
from __future__ import annotations

import json
import math
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import TASKS, assert_error_line, assert_names, make_options, make_test_options, write_rgb
from scipy.stats import spearmanr
from test_distributed import run_two_ranks

from basicsr_tur.archs.srresnet_arch import SRResNet
from basicsr_tur.test import run_test
from basicsr_tur.utils.calibration import calibration, sample_pixels, spearman
from basicsr_tur.utils.cli import run_cli
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options

NET = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}
UNCERTAINTY = ['--force_yml', 'val:uncertainty=true']


def _weights(tmp_path, head: bool = True) -> str:
    """A tiny SRResNet checkpoint, with the head's keys (as TURLoss training saves it) or without."""
    torch.manual_seed(0)
    path = str(tmp_path / ('tur.pth' if head else 'plain.pth'))
    net = build_network({**NET, 'uncertainty_head': head})
    if head:  # a σ that varies from pixel to pixel, as a trained head's does (the fresh head's is ~softplus(0))
        torch.nn.init.normal_(net.uncertainty_head[4].weight, std=0.3)
    torch.save({'params': net.state_dict()}, path)
    return path


def _run(tmp_path, opt_path: str, *force: str) -> dict:
    return run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:uncertainty=true', *force])


def test_val_uncertainty_writes_its_table_json_csv_and_calibration_figure(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    _run(tmp_path, opt_path)
    results_root = tmp_path / 'results' / 'tiny_test'
    figures = json.loads((results_root / 'metrics.json').read_text())['results']['tiny_test_set']['uncertainty']
    assert list(figures) == TASKS
    for values in figures.values():
        assert values['mean_sigma'] > 0 and math.isfinite(values['mean_sigma'])
        assert -1 <= values['spearman'] <= 1
        assert len(values['deciles']) == len(values['decile_error']) == 10
        assert values['deciles'] == sorted(values['deciles']) and min(values['deciles']) > 0
        assert all(0 <= e <= 1 for e in values['decile_error'])
        assert values['pixels'] == 3 * 40 * 40  # three 40x40 images per task, every pixel (fewer than 4096)
    table = (results_root / 'metrics.md').read_text()
    assert '| Task | mean σ | Spearman(σ, \\|err\\|) | images |' in table
    assert f"| noise | {figures['noise']['mean_sigma']:.4f} | {figures['noise']['spearman']:.4f} | 3 |" in table
    rows = [line.split(',') for line in (results_root / 'metrics.csv').read_text().splitlines()]
    uncertainty_rows = [r for r in rows if r[2] == 'uncertainty']
    assert {(r[3], r[4]) for r in uncertainty_rows} == {(t, m) for t in TASKS for m in ('mean_sigma', 'spearman')}
    assert all(r[6] == '3' and math.isfinite(float(r[5])) for r in uncertainty_rows)
    figure = cv2.imread(str(results_root / 'calibration_tiny_test_set.png'))
    assert figure is not None and figure.shape[0] > 100 and figure.shape[1] > 100


def test_without_val_uncertainty_there_are_no_uncertainty_figures(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    results = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false'])
    assert 'uncertainty' not in results['tiny_test_set']
    assert not (tmp_path / 'results' / 'tiny_test' / 'calibration_tiny_test_set.png').exists()


@pytest.mark.parametrize('tile', [None, {'size': 24, 'overlap': 8}])
def test_restored_output_is_the_same_with_val_uncertainty(tmp_path, paired_root, tile):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    outputs = []
    for uncertainty in (False, True):
        opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml',
                                                                    f'val:uncertainty={str(uncertainty).lower()}'])
        opt['val']['tile'] = tile
        model = build_model(opt)
        torch.manual_seed(1)
        model.feed_data({'lq': torch.rand(1, 3, 40, 40), 'task_id': [0], 'task': ['noise']})
        model.test()
        outputs.append(model.output)
        if uncertainty:
            assert model.sigma.shape == (1, 3, 40, 40) and model.sigma.min() > 0
    assert torch.equal(outputs[0], outputs[1])


def test_val_tile_batch_restores_what_one_tile_per_forward_does(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    outputs = []
    for batch in (1, 3):
        tile = f'val:tile={{size: 24, overlap: 8, batch: {batch}}}'
        opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml', tile])
        model = build_model(opt)
        torch.manual_seed(1)
        model.feed_data({'lq': torch.rand(1, 3, 40, 40), 'task_id': [0], 'task': ['noise']})
        model.test()
        outputs.append(model.output)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-6)


def test_psnr_is_the_same_with_val_uncertainty(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    plain = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false'])
    with_sigma = _run(tmp_path, opt_path, 'val:save_img=false', 'name=with_sigma')
    for key in ('model', 'input', 'counts'):
        assert with_sigma['tiny_test_set'][key] == plain['tiny_test_set'][key]


def test_val_uncertainty_with_val_tile_gives_the_whole_image_figures(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    whole = _run(tmp_path, opt_path, 'val:save_img=false')['tiny_test_set']['uncertainty']
    # 36-pixel tiles of the 40x40 images overlapping by 32 (>= 4 x the 8-pixel receptive-field radius of σ): exact.
    tiled = _run(tmp_path, opt_path, 'val:save_img=false', 'name=tiled',
                 'val:tile={size: 36, overlap: 32}')['tiny_test_set']['uncertainty']
    for task, values in whole.items():
        assert tiled[task]['mean_sigma'] == pytest.approx(values['mean_sigma'], abs=1e-6)
        assert tiled[task]['spearman'] == pytest.approx(values['spearman'], abs=1e-3)
        # σ agrees to float rounding: a pixel whose σ is that close to a decile's boundary may change decile
        assert tiled[task]['deciles'] == pytest.approx(values['deciles'], abs=1e-6)
        assert tiled[task]['decile_error'] == pytest.approx(values['decile_error'], abs=1e-4)


@pytest.fixture
def black_gt_root(tmp_path) -> str:
    """lq/<task>/<name>.png of random pixels against an all-black gt/<name>.png: |restored - gt| = restored."""
    root = tmp_path / 'black'
    rng = np.random.default_rng(3)
    for name in ('a', 'b', 'c'):
        write_rgb(str(root / 'gt' / f'{name}.png'), np.zeros((40, 40, 3), np.uint8))
        for task in TASKS:
            write_rgb(str(root / 'lq' / task / f'{name}.png'), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return str(root)


def _pixel_error(root: str, task: str) -> np.ndarray:
    """|lq - black GT| per pixel, averaged over the channels, of the task's images (N, H, W), computed as the
    pipeline does (RGB float32 tensors in [0, 1], mean over the channel dimension), so that ties stay ties."""
    files = [osp.join(root, 'lq', task, f'{name}.png') for name in ('a', 'b', 'c')]
    rgb = np.stack([cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB) for f in files]).astype(np.float32) / 255
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).mean(dim=1).numpy()


@pytest.mark.parametrize('sigma_of, expected_of', [
    (lambda x: x, lambda err: 1.0),  # σ is the error itself
    (lambda x: -x, lambda err: -1.0),  # σ orders the pixels the other way
    (lambda x: torch.roll(x, 1, dims=-1),  # σ is the left neighbour's error: scipy's value on the same arrays
     lambda err: spearmanr(np.roll(err, 1, axis=-1).ravel(), err.ravel())[0]),
], ids=['sigma_is_error', 'sigma_reversed', 'sigma_of_neighbour'])
def test_spearman_is_scipys_on_sigma_and_the_pixel_error(tmp_path, black_gt_root, monkeypatch, sigma_of, expected_of):
    figures = _figures_of_sigma(tmp_path, black_gt_root, monkeypatch, sigma_of)
    for task in TASKS:
        expected = expected_of(_pixel_error(black_gt_root, task))
        assert -0.9 < expected < 0.9 or abs(expected) == 1  # the neighbour's case is not a trivial one
        assert figures[task]['spearman'] == pytest.approx(expected, abs=1e-12)


def test_deciles_of_a_sigma_equal_to_the_error_have_that_error(tmp_path, black_gt_root, monkeypatch):
    figures = _figures_of_sigma(tmp_path, black_gt_root, monkeypatch, lambda x: x)
    for values in figures.values():
        assert values['decile_error'] == values['deciles']
        assert values['deciles'] == sorted(values['deciles'])


def _figures_of_sigma(tmp_path, root: str, monkeypatch, sigma_of) -> dict:
    """The uncertainty figures of a network that restores nothing (restored = lq; against a black GT, |error| per
    pixel is lq's channel mean) and whose σ is sigma_of(lq)."""
    monkeypatch.setattr(SRResNet, 'forward', lambda self, x, with_uncertainty=False:
                        (x, sigma_of(x)) if with_uncertainty else x)
    opt_path = make_test_options(tmp_path, root, _weights(tmp_path))
    return _run(tmp_path, opt_path, 'val:save_img=false')['tiny_test_set']['uncertainty']


def test_a_checkpoint_without_the_head_is_refused_in_one_line_before_restoring(tmp_path, paired_root, capsys):
    weights = _weights(tmp_path, head=False)
    opt_path = make_test_options(tmp_path, paired_root, weights)
    assert run_cli(lambda root: run_test(root, ['-opt', opt_path, *UNCERTAINTY]), str(tmp_path)) == 1
    # stderr may also hold log lines of the basicsr logger (its handler outlives the test that set it up)
    assert_error_line(capsys.readouterr().err, weights, 'uncertainty_head', 'val.uncertainty')
    assert not (tmp_path / 'results' / 'tiny_test' / 'visualization').exists()
    assert not (tmp_path / 'results' / 'tiny_test' / 'metrics.json').exists()


def test_the_head_less_checkpoint_still_tests_without_val_uncertainty(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path, head=False))
    results = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false'])
    assert results['tiny_test_set']['model']['tasks']


def test_val_uncertainty_must_be_true_or_false(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml', 'val:uncertainty=maybe'])
    assert_names(err, opt_path, "'val.uncertainty'", "'maybe'")


def test_val_uncertainty_in_training_needs_a_network_with_the_head(tmp_path, clean_root, paired_root):
    opt_path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    opt, _ = parse_options(str(tmp_path), is_train=True, argv=['-opt', opt_path, *UNCERTAINTY])
    with pytest.raises(UserError) as err:
        build_model(opt)
    assert_names(err, 'val.uncertainty', 'network_g.uncertainty_head: true')


def test_pixel_sample_is_seeded_by_image_and_bounded():
    sigma, error = torch.rand(1, 3, 100, 100), torch.rand(100, 100)
    first = sample_pixels(sigma, error, seed=0, index=5, count=500)
    assert first[0].shape == first[1].shape == (500,)
    again = sample_pixels(sigma, error, seed=0, index=5, count=500)
    other = sample_pixels(sigma, error, seed=0, index=6, count=500)
    assert np.array_equal(first[0], again[0]) and not np.array_equal(first[0], other[0])
    # σ and error stay paired: the sampled pixels are the same pixels of both maps
    paired = sample_pixels(sigma, sigma.mean(1)[0], seed=0, index=5, count=500)
    assert np.array_equal(paired[0], paired[1])
    assert sample_pixels(sigma, error, seed=0, index=5, count=20000)[0].shape == (10000,)


def test_calibration_deciles_are_equal_count_groups_by_sigma():
    sigma = np.arange(100, dtype=np.float32)[::-1].copy()
    error = sigma * 2
    deciles, decile_error = calibration(sigma, error)
    assert deciles == pytest.approx([4.5 + 10 * i for i in range(10)])
    assert decile_error == pytest.approx([9 + 20 * i for i in range(10)])


def test_spearman_of_a_constant_map_is_undefined():
    assert spearman(np.ones(50, np.float32), np.random.default_rng(0).random(50)) is None


def test_rows_gathered_over_one_rank_are_the_rows(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, *UNCERTAINTY])
    model = build_model(opt)
    rng = np.random.default_rng(0)
    rows = {0: ('noise', 0.5, rng.random(7, dtype=np.float32), rng.random(7, dtype=np.float32)),
            3: ('dark', 0.25, rng.random(4096, dtype=np.float32), rng.random(4096, dtype=np.float32))}
    gathered = model._gather_uncertainty_rows(rows, num_images=5)
    assert list(gathered) == [0, 3]
    for index, (task, mean_sigma, sigma_px, error_px) in rows.items():
        assert gathered[index][:2] == (task, mean_sigma)
        assert np.array_equal(gathered[index][2], sigma_px) and np.array_equal(gathered[index][3], error_px)


def test_two_ranks_give_the_figures_of_one_process(tmp_path, paired_root):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    one = _run(tmp_path, opt_path, 'val:save_img=false')['tiny_test_set']['uncertainty']
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    run_two_ranks(osp.join(root, 'test.py'), '-opt', opt_path, '--root', str(tmp_path), '--launcher', 'pytorch',
                  '--force_yml', 'val:uncertainty=true', 'val:save_img=false', 'name=two_ranks')
    metrics = json.loads((tmp_path / 'results' / 'two_ranks' / 'metrics.json').read_text())
    two = metrics['results']['tiny_test_set']['uncertainty']
    for task, values in one.items():  # each image scored on one rank, its sampled pixels the same
        assert two[task]['pixels'] == values['pixels']
        assert two[task]['mean_sigma'] == pytest.approx(values['mean_sigma'], abs=1e-6)
        assert two[task]['spearman'] == pytest.approx(values['spearman'], abs=1e-9)
        assert two[task]['decile_error'] == pytest.approx(values['decile_error'], abs=1e-9)
    assert (tmp_path / 'results' / 'two_ranks' / 'calibration_tiny_test_set.png').exists()
