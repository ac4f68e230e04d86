"""The float metrics (metrics/skimage_metric.py): AirNet/PromptIR's scoring, checked against the
formulas written out here, and their wiring into validation, the options checks and the results."""
import json
import math
from collections import defaultdict
from os import path as osp

import numpy as np
import pytest
import skimage.data
import torch
from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.models import build_model
from basicsr.utils import tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from conftest import assert_names, make_options, make_test_options, tiny_srresnet_weights
from numpy.lib.stride_tricks import sliding_window_view

from basicsr_tur.data.loaders import build_loader
from basicsr_tur.metrics import image_kind, metric_window, unit_image
from basicsr_tur.models import tur_model
from basicsr_tur.test import measurement_protocol, run_test
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options

FLOAT_METRICS = {'psnr': {'type': 'calculate_psnr_skimage', 'crop_border': 0},
                 'ssim': {'type': 'calculate_ssim_skimage', 'crop_border': 0}}
BASICSR_METRICS = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                   'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}
TOLERANCE = 1e-6


def psnr_formula(restored: np.ndarray, clean: np.ndarray) -> float:
    """10 log10(1 / MSE) of images in [0, 1], in float64."""
    mse = np.mean((restored.astype(np.float64) - clean.astype(np.float64)) ** 2)
    return float(10 * np.log10(1.0 / mse))


def ssim_formula(restored: np.ndarray, clean: np.ndarray) -> float:
    """Wang et al.'s SSIM of (H, W, C) images in [0, 1] with a 7x7 uniform window: the local means,
    sample (co)variances (N / (N - 1)), C1 = 0.01², C2 = 0.03², on every 7x7 window inside the
    image (the pixels 3 or more from the border, skimage's crop), averaged, then averaged over
    channels."""
    n = 49
    values = []
    for c in range(clean.shape[2]):
        x = clean[..., c].astype(np.float64)
        y = restored[..., c].astype(np.float64)

        def local_mean(a):
            return sliding_window_view(a, (7, 7)).mean(axis=(-2, -1))

        mx, my = local_mean(x), local_mean(y)
        vx = (local_mean(x * x) - mx * mx) * n / (n - 1)
        vy = (local_mean(y * y) - my * my) * n / (n - 1)
        cxy = (local_mean(x * y) - mx * my) * n / (n - 1)
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))


def image_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, restored, clean) float (H, W, 3) pairs in [0, 1]: random images and tiny crops of a
    real photograph (clean: its 8-bit values / 255 as float32, as ToTensor gives; restored: it plus
    Gaussian noise, clipped)."""
    rng = np.random.default_rng(0)
    pairs = [('random', rng.random((23, 31, 3)), rng.random((23, 31, 3)))]
    photo = skimage.data.astronaut()
    for top, left, size in ((0, 0, 16), (100, 200, 24), (300, 150, 40)):
        clean = (photo[top:top + size, left:left + size] / np.float32(255)).astype(np.float32)
        noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape).astype(np.float32), 0, 1)
        pairs.append((f'astronaut_{size}', noisy, clean))
    return pairs


PAIRS = image_pairs()


@pytest.mark.parametrize('name, restored, clean', PAIRS, ids=[p[0] for p in PAIRS])
def test_psnr_skimage_equals_the_mse_formula(name, restored, clean):
    value = METRIC_REGISTRY.get('calculate_psnr_skimage')(restored, clean, crop_border=0)
    assert isinstance(value, float)
    assert value == pytest.approx(psnr_formula(restored, clean), abs=TOLERANCE)


@pytest.mark.parametrize('name, restored, clean', PAIRS, ids=[p[0] for p in PAIRS])
def test_ssim_skimage_equals_the_formula_with_a_7x7_uniform_window(name, restored, clean):
    value = METRIC_REGISTRY.get('calculate_ssim_skimage')(restored, clean, crop_border=0)
    assert value == pytest.approx(ssim_formula(restored, clean), abs=TOLERANCE)


def test_crop_border_scores_the_inner_image():
    _, restored, clean = PAIRS[-1]
    for metric, formula in (('calculate_psnr_skimage', psnr_formula),
                            ('calculate_ssim_skimage', ssim_formula)):
        value = METRIC_REGISTRY.get(metric)(restored, clean, crop_border=4)
        inner = formula(restored[4:-4, 4:-4], clean[4:-4, 4:-4])
        assert value == pytest.approx(inner, abs=TOLERANCE)


def test_float_metrics_declare_float_images_and_their_window():
    assert image_kind('calculate_psnr_skimage') == image_kind('calculate_ssim_skimage') == 'float'
    assert image_kind('calculate_psnr') == image_kind('calculate_ssim') == '8-bit'
    assert (metric_window('calculate_ssim_skimage'), metric_window('calculate_ssim')) == (7, 11)
    assert metric_window('calculate_psnr_skimage') is metric_window('calculate_psnr') is None


@pytest.mark.parametrize('metric', ['calculate_psnr_skimage', 'calculate_ssim_skimage'])
@pytest.mark.parametrize('bad', ['above_one', 'below_zero', 'uint8'])
def test_images_that_are_not_floats_in_unit_range_are_refused(metric, bad):
    clean = np.full((8, 8, 3), 0.5)
    restored = {'above_one': clean + 0.6, 'below_zero': clean - 0.6,
                'uint8': np.full((8, 8, 3), 128, np.uint8)}[bad]
    # A caller's bug (the pipelines pass unit floats), hence a plain ValueError, naming the metric.
    with pytest.raises(ValueError) as err:
        METRIC_REGISTRY.get(metric)(restored, clean)
    assert not isinstance(err.value, UserError)
    assert_names(err, metric)


def test_ssim_skimage_refuses_an_image_its_window_does_not_fit():
    clean = np.full((10, 10, 3), 0.5)
    METRIC_REGISTRY.get('calculate_ssim_skimage')(clean, clean, crop_border=1)  # 8x8: fits
    with pytest.raises(UserError) as err:
        METRIC_REGISTRY.get('calculate_ssim_skimage')(clean, clean, crop_border=2)  # 6x6
    assert_names(err, 'calculate_ssim_skimage', '6x6', 'crop_border')


def test_unit_image_clips_to_unit_range_as_float64_hwc():
    tensor = torch.tensor([[[[-0.5, 0.25], [1.5, 1.0]], [[0.0, 2.0], [0.5, -1.0]],
                            [[0.1, 0.2], [0.3, 0.4]]]], dtype=torch.float32)
    image = unit_image(tensor)
    assert image.dtype == np.float64 and image.shape == (2, 2, 3)
    expected = np.clip(tensor[0].numpy(), 0, 1).transpose(1, 2, 0).astype(np.float64)
    assert np.array_equal(image, expected)


# Options: the float metrics pass the checks with crop_border, and refuse what they cannot honour.

def parse_test_options(tmp_path, paired_root, *overrides):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    return parse_options(str(tmp_path), False, ['-opt', path, '--force_yml', *overrides])


def test_options_with_the_float_metrics_pass_the_checks(tmp_path, paired_root):
    opt, _ = parse_test_options(tmp_path, paired_root,
                                'val:metrics:psnr={type: calculate_psnr_skimage, crop_border: 0}',
                                'val:metrics:ssim={type: calculate_ssim_skimage}')
    assert opt['val']['metrics']['psnr'] == {'type': 'calculate_psnr_skimage', 'crop_border': 0}


@pytest.mark.parametrize('key, value', [('test_y_channel', 'true'), ('input_order', 'CHW'),
                                        ('crop_boarder', '0')])
def test_float_metric_options_it_cannot_honour_are_refused_naming_the_key(key, value, tmp_path,
                                                                          paired_root):
    with pytest.raises(OptionError) as err:
        parse_test_options(tmp_path, paired_root, 'val:metrics:psnr={type: calculate_psnr_skimage, '
                           f'crop_border: 0, {key}: {value}}}')
    assert f'val.metrics.psnr.{key}' in str(err.value)


# Validation: the float metrics score the clipped float images, once per image; 8-bit unchanged.

def model_and_loader(tmp_path, clean_root, paired_root, metrics: dict):
    """A tiny TURModel (seeded weights) validating with `metrics`, and its val loader (3 tasks x 3
    40x40 images)."""
    path = make_options(tmp_path, clean_root, paired_root)
    overrides = ['val:pbar=false', 'val:metrics=' + json.dumps(metrics)]
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', *overrides])
    val_opt = opt['datasets']['val']
    torch.manual_seed(0)  # the same network whatever the metrics
    return build_model(opt), build_loader(build_dataset(val_opt), val_opt, opt)


def per_task_means(model, loader, score) -> dict:
    """{source: {task: {metric: mean}}} of score(source tensor, gt tensor) -> {metric: value}, over
    the loader's images in order, summed as validation sums them."""
    sums = {source: defaultdict(lambda: defaultdict(float)) for source in ('model', 'input')}
    counts = defaultdict(int)
    for data in loader:
        model.feed_data(data)
        model.test()
        task = data['task'][0]
        counts[task] += 1
        for source, tensor in (('model', model.output), ('input', model.lq)):
            for metric, value in score(tensor, model.gt).items():
                sums[source][task][metric] += value
    return {source: {t: {m: v / counts[t] for m, v in per_task.items()}
                     for t, per_task in by_task.items()}
            for source, by_task in sums.items()}


def formulas(tensor: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """The formulas of this file on the images as AirNet/PromptIR's test code makes them."""
    restored = np.clip(tensor[0].float().cpu().numpy(), 0, 1).transpose(1, 2, 0)
    clean = np.clip(gt[0].float().cpu().numpy(), 0, 1).transpose(1, 2, 0)
    return {'psnr': psnr_formula(restored, clean), 'ssim': ssim_formula(restored, clean)}


def largest_difference(results: dict, expected: dict) -> float:
    return max(abs(results[source]['tasks'][t][m] - expected[source][t][m])
               for source in expected for t in expected[source] for m in expected[source][t])


def test_validation_with_float_metrics_gives_the_formulas_figures(tmp_path, clean_root,
                                                                  paired_root):
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, FLOAT_METRICS)
    results = model.validation(loader, 1, None)
    expected = per_task_means(model, loader, formulas)
    assert set(results['model']['tasks']) == set(expected['model']) and results['capped'] == {}
    assert largest_difference(results, expected) < TOLERANCE


def test_validation_scores_an_output_outside_unit_range_as_its_clip(tmp_path, clean_root,
                                                                    paired_root, monkeypatch):
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, FLOAT_METRICS)
    test = model.test

    def overshooting():  # a restored image well outside [0, 1] on both sides
        test()
        model.output = model.output * 3 - 1

    monkeypatch.setattr(model, 'test', overshooting)
    results = model.validation(loader, 1, None)
    expected = per_task_means(model, loader, formulas)
    assert model.output.min() < 0 and model.output.max() > 1
    assert largest_difference(results, expected) < TOLERANCE


def test_validation_makes_float_images_only_for_float_metrics(tmp_path, clean_root, paired_root,
                                                              monkeypatch):
    made = []
    monkeypatch.setattr(tur_model, 'unit_image',
                        lambda tensor: made.append(tensor) or unit_image(tensor))
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, BASICSR_METRICS)
    model.validation(loader, 1, None)
    assert made == []
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, FLOAT_METRICS)
    model.validation(loader, 1, None)
    assert len(made) == len(loader) * 3  # output, GT and input once per image, for both metrics
    made.clear()
    model.validation(loader, 2, None)  # the input row is reused
    assert len(made) == len(loader) * 2


def basicsr_figures(tensor: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """basicsr's calculate_psnr/calculate_ssim on tensor2img's 8-bit images."""
    img, gt_img = tensor2img([tensor.detach().cpu()]), tensor2img([gt.detach().cpu()])
    return {'psnr': float(calculate_psnr(img, gt_img, 0)),
            'ssim': float(calculate_ssim(img, gt_img, 0))}


def test_8bit_metrics_score_as_basicsr_bit_for_bit_beside_float_ones(tmp_path, clean_root,
                                                                     paired_root):
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, BASICSR_METRICS)
    alone = model.validation(loader, 1, None)
    expected = per_task_means(model, loader, basicsr_figures)
    for source in ('model', 'input'):
        assert alone[source]['tasks'] == expected[source]  # exactly: the 8-bit path is basicsr's
    both = dict(BASICSR_METRICS, psnr_float=FLOAT_METRICS['psnr'], ssim_float=FLOAT_METRICS['ssim'])
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, both)
    mixed = model.validation(loader, 1, None)
    for source in ('model', 'input'):
        for task, values in alone[source]['tasks'].items():
            assert {m: mixed[source]['tasks'][task][m] for m in values} == values
        assert mixed[source]['tasks']['sr']['ssim_float'] != mixed[source]['tasks']['sr']['ssim']


def test_float_psnr_of_an_output_identical_to_its_gt_is_capped(tmp_path, clean_root, paired_root,
                                                               monkeypatch):
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, FLOAT_METRICS)

    def perfect():
        model.output = model.gt.clone()

    monkeypatch.setattr(model, 'test', perfect)
    results = model.validation(loader, 1, None)
    assert all(v['psnr'] == tur_model.PSNR_CAP and v['ssim'] == pytest.approx(1.0)
               for v in results['model']['tasks'].values())
    assert results['capped']['model'] == {t: {'psnr': 3} for t in results['model']['tasks']}


@pytest.mark.parametrize('metric, border, fits', [('calculate_ssim_skimage', 16, True),
                                                  ('calculate_ssim_skimage', 17, False),
                                                  ('calculate_ssim', 14, True),
                                                  ('calculate_ssim', 15, False)])
def test_ssim_window_check_follows_the_metric_window(metric, border, fits, tmp_path, clean_root,
                                                     paired_root):
    # The images are 40x40: skimage's 7x7 window fits up to crop_border 16, basicsr's 11x11 up
    # to 14.
    metrics = {'ssim': {'type': metric, 'crop_border': border}}
    model, loader = model_and_loader(tmp_path, clean_root, paired_root, metrics)
    if fits:
        assert math.isfinite(model.validation(loader, 1, None)['model']['average']['ssim'])
        return
    with pytest.raises(ValueError) as err:
        model.validation(loader, 1, None)
    message = str(err.value)
    assert "metric 'ssim'" in message and osp.join('lq', 'sr', 'astronaut.png') in message


# Results: the protocol says which images each metric scored.

def test_protocol_and_header_name_the_images_of_each_metric(tmp_path, paired_root):
    both = {'psnr': FLOAT_METRICS['psnr'], 'ssim': BASICSR_METRICS['ssim']}
    path = make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))
    run_test(str(tmp_path), ['-opt', path, '--force_yml', 'val:save_img=false',
                             'val:metrics=' + json.dumps(both)])
    out = osp.join(tmp_path, 'results', 'tiny_test')
    protocol = json.load(open(osp.join(out, 'metrics.json')))['protocol']
    assert protocol['images'] == {'psnr': 'float clipped to [0, 1]', 'ssim': '8-bit'}
    header = open(osp.join(out, 'metrics.md')).read().splitlines()[2]
    psnr_note = header[header.index('calculate_psnr_skimage'):header.index('calculate_ssim')]
    assert 'float' in psnr_note and '8-bit' not in psnr_note  # each metric's images named beside it
    assert '8-bit' in header[header.index('calculate_ssim'):]
    assert measurement_protocol({'val': {'metrics': BASICSR_METRICS}}, [])['images'] == {
        'psnr': '8-bit', 'ssim': '8-bit'}
