"""Tests for the MiOIR degradation synthesis in basicsr_tur.data.degradations."""
import cv2
import numpy as np
import pytest
import skimage.data
import torch
from conftest import assert_names

from basicsr_tur.data.degradations import (
    DEFAULT_SPECS,
    DEGRADATION_TYPES,
    add_blur,
    add_dark,
    add_haze,
    add_jpeg,
    add_noise,
    add_rain,
    add_sr,
    apply_degradation,
    degrade,
    gaussian_kernel,
    rain_kernel,
    read_depth,
    sample_params,
    validate_spec,
)
from basicsr_tur.utils.errors import UserError

# The mildest end of every MiOIR range, so "visibly changes" holds for the whole range, not a lucky draw.
# Dark uses gamma 1.2 because gamma 1, the bottom of its range, is the identity by definition.
MILDEST = {
    'sr': {'type': 'sr', 'scale': 4},
    'blur': {'type': 'blur', 'kernel_size': 7, 'sigma': 1.0},
    'noise': {'type': 'noise', 'sigma': 15},
    'jpeg': {'type': 'jpeg', 'quality': 70},
    'rain': {'type': 'rain', 'amount': 50, 'width': 3, 'length': 20, 'angle': 0},
    'haze': {'type': 'haze', 'A': 0.8, 'beta': 0.5},
    'dark': {'type': 'dark', 'gamma': 1.2},
}
# sr has a fixed scale by default and no randomness, so two seeds give the same image.
RANDOM_TYPES = tuple(t for t in DEGRADATION_TYPES if t != 'sr')


@pytest.fixture(scope='module')
def img() -> np.ndarray:
    """A 64x64 RGB float32 crop of scikit-image's astronaut, in [0, 1]."""
    return cv2.resize(skimage.data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def test_types_are_the_seven_mioir_tasks():
    assert DEGRADATION_TYPES == ('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark')
    assert set(DEFAULT_SPECS) == set(DEGRADATION_TYPES)


@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_same_seed_gives_identical_output(img, deg_type):
    out_a, params_a = degrade(img, {'type': deg_type}, np.random.default_rng(123))
    out_b, params_b = degrade(img, {'type': deg_type}, np.random.default_rng(123))
    assert params_a == params_b
    assert np.array_equal(out_a, out_b)


@pytest.mark.parametrize('deg_type', RANDOM_TYPES)
def test_different_seeds_give_different_outputs(img, deg_type):
    out_a, _ = degrade(img, {'type': deg_type}, np.random.default_rng(0))
    out_b, _ = degrade(img, {'type': deg_type}, np.random.default_rng(1))
    assert not np.array_equal(out_a, out_b)


@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_output_is_float32_same_shape_in_unit_range(img, deg_type):
    out, _ = degrade(img, {'type': deg_type}, np.random.default_rng(0))
    assert out.dtype == np.float32
    assert out.shape == img.shape
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_input_is_not_modified(img, deg_type):
    original = img.copy()
    out, _ = degrade(img, {'type': deg_type}, np.random.default_rng(0))
    assert np.array_equal(img, original)
    assert not np.shares_memory(out, img)


@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_mildest_params_visibly_change_the_image(img, deg_type):
    out = apply_degradation(img, MILDEST[deg_type], np.random.default_rng(0))
    # 0.01 is 2.5 grey levels of 255: far above what 8-bit rounding or float error could cause (<= 0.5 level),
    # and still below the weakest change measured at the mildest end of a range (about 0.03, jpeg at quality 70).
    assert np.abs(out - img).mean() > 0.01


def test_sr_keeps_a_size_not_divisible_by_the_scale(img):
    odd = np.ascontiguousarray(img[:61, :47])
    out = apply_degradation(odd, {'type': 'sr', 'scale': 4}, np.random.default_rng(0))
    assert out.shape == (61, 47, 3)


def test_noise_sigma_25_has_std_25_over_255():
    grey = np.full((64, 64, 3), 0.5, np.float32)  # 0.5 +- 3 sigma stays inside [0, 1], so clipping adds no bias
    out = add_noise(grey, {'sigma': 25}, np.random.default_rng(0))
    assert np.std(out - grey) == pytest.approx(25 / 255, rel=0.03)


def test_fixed_scalar_spec_gives_that_exact_param():
    rng = np.random.default_rng(0)
    assert sample_params({'type': 'noise', 'sigma': 25}, rng)['sigma'] == 25
    assert sample_params({'type': 'jpeg', 'quality': 10}, rng)['quality'] == 10


def test_list_spec_draws_within_lo_hi():
    rng = np.random.default_rng(0)
    sigmas = [sample_params({'type': 'noise', 'sigma': [15, 50]}, rng)['sigma'] for _ in range(200)]
    assert min(sigmas) >= 15 and max(sigmas) <= 50
    assert len(set(sigmas)) > 100  # continuous, not a handful of values


@pytest.mark.parametrize(('deg_type', 'key'), [('jpeg', 'quality'), ('rain', 'amount'), ('rain', 'length'),
                                               ('rain', 'width'), ('blur', 'kernel_size'), ('sr', 'scale')])
def test_integer_keys_draw_python_integers(deg_type, key):
    spec = {'type': deg_type, 'scale': [2, 4]} if deg_type == 'sr' else {'type': deg_type}
    value = sample_params(spec, np.random.default_rng(0))[key]
    assert type(value) is int


def test_integer_ranges_include_both_ends():
    rng = np.random.default_rng(0)
    qualities = {sample_params({'type': 'jpeg', 'quality': [30, 33]}, rng)['quality'] for _ in range(200)}
    assert qualities == {30, 31, 32, 33}


def test_blur_kernel_size_is_always_odd():
    rng = np.random.default_rng(0)
    sizes = {sample_params({'type': 'blur'}, rng)['kernel_size'] for _ in range(400)}
    assert sizes == {7, 9, 11, 13, 15, 17, 19, 21}


def test_spec_key_order_does_not_change_the_draws():
    keys = ['amount', 'width', 'length', 'angle']
    forward = sample_params({'type': 'rain', **{k: DEFAULT_SPECS['rain'][k] for k in keys}}, np.random.default_rng(5))
    backward = sample_params({'type': 'rain', **{k: DEFAULT_SPECS['rain'][k] for k in keys[::-1]}},
                             np.random.default_rng(5))
    assert forward == backward


def test_validate_spec_fills_omitted_keys_with_mioir_defaults():
    spec = validate_spec({'type': 'blur', 'sigma': 2})
    assert spec == {'type': 'blur', 'kernel_size': [7, 21], 'sigma': 2.0, 'quantize': 'round'}


def test_haze_far_pixels_are_closer_to_a_than_near_ones():
    flat = np.full((16, 32, 3), 0.2, np.float32)
    depth = np.ones((16, 32))
    depth[:, 16:] = 10.0  # right half ten times farther
    out = add_haze(flat, {'A': 0.9, 'beta': 1.5}, np.random.default_rng(0), depth=depth)
    near_gap = np.abs(out[:, :16] - 0.9).mean()
    far_gap = np.abs(out[:, 16:] - 0.9).mean()
    assert far_gap < near_gap


def test_haze_without_depth_is_heavier_at_the_top():
    flat = np.full((32, 32, 3), 0.2, np.float32)
    out = add_haze(flat, {'A': 0.9, 'beta': 1.5}, np.random.default_rng(0))
    assert out[0].mean() > out[-1].mean()


def test_haze_depth_shape_mismatch_raises_naming_both_shapes(img):
    with pytest.raises(UserError) as err:
        add_haze(img, {'A': 0.9, 'beta': 1.0}, np.random.default_rng(0), depth=np.ones((32, 64)))
    assert_names(err, '(32, 64)', '(64, 64, 3)')


def test_read_depth_resizes_a_quarter_size_mat_map_bilinearly_when_asked(tmp_path):
    from scipy.io import savemat
    quarter = np.random.default_rng(0).uniform(0.1, 1, (4, 6))
    savemat(tmp_path / 'predict_depth.mat', {'data_obj': quarter})
    depth = read_depth(str(tmp_path / 'predict_depth.mat'), (16, 24), resize=True)
    assert depth.dtype == np.float32
    assert np.array_equal(depth, cv2.resize(quarter.astype(np.float32), (24, 16), interpolation=cv2.INTER_LINEAR))


def test_read_depth_refuses_another_size_unless_asked_to_resize(tmp_path):
    np.save(tmp_path / 'a.npy', np.ones((4, 6), np.float32))
    with pytest.raises(UserError) as err:
        read_depth(str(tmp_path / 'a.npy'), (16, 24), image='a.png')
    assert_names(err, f'{tmp_path}/a.npy', '4x6', 'a.png', '16x24')
    assert read_depth(str(tmp_path / 'a.npy'), (4, 6)).shape == (4, 6)


@pytest.mark.parametrize('content, reason', [
    ('empty', '.npy'), ('3d', '(4, 4, 3)'), ('mat_without_data_obj', "'data_obj'")])
def test_read_depth_names_an_unusable_file(tmp_path, content, reason):
    path = tmp_path / ('d.mat' if content.startswith('mat') else 'd.npy')
    if content == 'empty':
        path.write_bytes(b'')
    elif content == '3d':
        np.save(path, np.ones((4, 4, 3), np.float32))
    else:
        from scipy.io import savemat
        savemat(path, {'depth': np.ones((4, 4))})
    with pytest.raises(UserError) as err:
        read_depth(str(path), (4, 4), resize=True)
    assert_names(err, path, reason)


def _streak_orientation(layer: np.ndarray) -> float:
    """Dominant line orientation of a 2-D image in degrees in [0, 180), x right and y down (90 = vertical)."""
    gy, gx = np.gradient(layer.astype(np.float64))
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    gradient_angle = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))
    return float((gradient_angle + 90) % 180)  # streaks run across their gradient


@pytest.mark.parametrize(('angle', 'expected'), [(-45, 135.0), (0, 90.0), (45, 45.0)])
def test_rain_angle_sets_streak_direction(angle, expected):
    black = np.zeros((96, 96, 3), np.float32)
    params = {'amount': 100, 'width': 3, 'length': 30, 'angle': angle}
    out = add_rain(black, params, np.random.default_rng(0))
    # angle > 0 leans the streak's top to the left ('\'), i.e. 45 degrees below the x axis with y pointing down.
    assert _streak_orientation(out[..., 0]) == pytest.approx(expected, abs=10)


def test_rain_streaks_only_brighten(img):
    out = add_rain(img, MILDEST['rain'], np.random.default_rng(0))
    assert np.all(out >= img)
    assert (out - img).max() > 0.5


def test_dark_output_is_darker(img):
    out = add_dark(img, {'gamma': 1.5}, np.random.default_rng(0))
    assert np.all(out <= img) and out.mean() < img.mean()


def test_unknown_type_raises_listing_known_types():
    with pytest.raises(UserError) as err:
        validate_spec({'type': 'derain'}, where='opts.yml')
    assert_names(err, 'opts.yml', "'derain'", "'rain'", ', '.join(DEGRADATION_TYPES))


def test_unknown_key_raises_with_closest_suggestion():
    with pytest.raises(UserError) as err:
        validate_spec({'type': 'noise', 'sigm': 25})
    assert_names(err, "'sigm'", "'sigma'", "'noise'")


def test_lo_above_hi_raises_naming_the_key():
    with pytest.raises(UserError) as err:
        validate_spec({'type': 'noise', 'sigma': [50, 15]})
    assert_names(err, 'sigma=[50, 15]')


@pytest.mark.parametrize('quality', [0, 101])
def test_jpeg_quality_outside_1_100_raises(quality):
    with pytest.raises(UserError) as err:
        validate_spec({'type': 'jpeg', 'quality': quality})
    assert_names(err, f'quality={quality} ', '[1, 100]')


@pytest.mark.parametrize(('spec', 'culprit'), [
    ({'type': 'blur', 'kernel_size': 8}, 'kernel_size=8'),
    ({'type': 'noise', 'sigma': -5}, 'sigma=-5'),
    ({'type': 'noise', 'sigma': 'high'}, "sigma='high'"),
    ({'type': 'dark', 'gamma': [1, 2, 3]}, 'gamma=[1, 2, 3]'),
])
def test_senseless_values_raise_naming_the_value(spec, culprit):
    with pytest.raises(UserError) as err:
        validate_spec(spec)
    assert_names(err, culprit)


def test_image_on_0_255_scale_is_rejected(img):
    with pytest.raises(UserError) as err:
        apply_degradation(img * 255, {'type': 'dark', 'gamma': 2.0}, np.random.default_rng(0))
    assert_names(err, 'dark', '[0, 1]')


def test_unknown_quantize_mode_raises_listing_the_modes():
    with pytest.raises(UserError) as err:
        validate_spec({'type': 'noise', 'sigma': 25, 'quantize': 'floor'})
    assert_names(err, "quantize='floor'", 'round', 'truncate', 'none')


@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_default_output_is_8_bit_as_mioir_writes_it(img, deg_type):
    out, params = degrade(img, {'type': deg_type}, np.random.default_rng(0))
    assert params['quantize'] == 'round'
    assert np.array_equal(out * 255, np.rint(out * 255))


def test_quantize_none_keeps_float_values(img):
    out = add_dark(img, {'gamma': 2.2, 'quantize': 'none'}, np.random.default_rng(0))
    np.testing.assert_allclose(out, img.astype(np.float64) ** 2.2, rtol=1e-5, atol=1e-7)


# ---- The authors' formulas, written out here, against ours on a small image ------------------------------------------
# MiOIR (Xiangtaokong/MiOIR data_script/add_MiO_train_degradation.py): every degradation works on the 8-bit image
# (cv2.imread, img2tensor(...) / 255 for the tensor ones) and ends with torch.clamp((x * 255).round(), 0, 255) / 255.
# AirNet/PromptIR/TUR (Degradation._add_gaussian_noise): np.clip(clean + randn * sigma, 0, 255).astype(np.uint8).

@pytest.fixture(scope='module')
def img8() -> np.ndarray:
    """A 37x45 RGB uint8 crop of scikit-image's coffee (sides not multiples of 4 or 16)."""
    return cv2.resize(skimage.data.coffee(), (45, 37), interpolation=cv2.INTER_AREA)


def mioir_round(t: torch.Tensor) -> np.ndarray:
    """MiOIR's last step, torch.clamp((x * 255).round(), 0, 255) / 255, on a (1, 3, H, W) tensor -> (H, W, 3)."""
    return (torch.clamp((t * 255.0).round(), 0, 255) / 255.0)[0].numpy().transpose(1, 2, 0)


def mioir_tensor(img8: np.ndarray) -> torch.Tensor:
    """MiOIR's img2tensor(img)[None] / 255 of an RGB uint8 image."""
    return torch.from_numpy(img8.transpose(2, 0, 1).astype(np.float32))[None] / 255.0


def test_sr_matches_mioir_resize_tensor(img8):
    t = mioir_tensor(img8)
    small = torch.nn.functional.interpolate(t, scale_factor=0.25, mode='bicubic')
    ref = mioir_round(torch.nn.functional.interpolate(small, size=img8.shape[:2], mode='bicubic'))
    out = add_sr(img8.astype(np.float32) / 255, {'scale': 4}, np.random.default_rng(0))
    assert np.array_equal(out, ref)


def test_blur_kernel_matches_mioir_bivariate_gaussian():
    for size, sigma in ((7, 1.0), (13, 2.37), (21, 3.0)):
        ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)  # MiOIR's mesh_grid
        xx, yy = np.meshgrid(ax, ax)
        grid = np.stack([xx, yy], axis=-1)
        inverse = np.linalg.inv(np.array([[sigma ** 2, 0], [0, sigma ** 2]]))
        ref = np.exp(-0.5 * np.sum(np.dot(grid, inverse) * grid, 2))
        np.testing.assert_allclose(gaussian_kernel(size, sigma), ref / ref.sum(), rtol=1e-12)


def test_blur_matches_mioir_filter2d(img8):
    kernel = torch.from_numpy(gaussian_kernel(9, 1.7).astype(np.float32)).view(1, 1, 9, 9)
    padded = torch.nn.functional.pad(mioir_tensor(img8), (4, 4, 4, 4), mode='reflect')  # basicsr filter2D
    ref = mioir_round(torch.nn.functional.conv2d(padded.view(3, 1, *padded.shape[2:]), kernel).view(1, 3, 37, 45))
    out = add_blur(img8.astype(np.float32) / 255, {'kernel_size': 9, 'sigma': 1.7}, np.random.default_rng(0))
    assert np.array_equal(out, ref)


def test_noise_matches_mioir_random_add_gaussian_noise_pt(img8):
    randn = np.random.default_rng(4).standard_normal(img8.shape, dtype=np.float32)  # the draw add_noise makes
    sigma = torch.tensor([31.0]).view(1, 1, 1, 1)
    noise = torch.from_numpy(randn.transpose(2, 0, 1).copy())[None] * sigma / 255.0
    ref = mioir_round(torch.clamp(mioir_tensor(img8) + noise, 0, 1))
    out = add_noise(img8.astype(np.float32) / 255, {'sigma': 31}, np.random.default_rng(4))
    assert np.array_equal(out, ref)


def test_truncated_noise_matches_airnet_degradation(img8):
    randn = np.random.default_rng(5).standard_normal(img8.shape, dtype=np.float32).astype(np.float64)
    ref = np.clip(img8 + randn * 25, 0, 255).astype(np.uint8)
    out = add_noise(img8.astype(np.float32) / 255, {'sigma': 25, 'quantize': 'truncate'}, np.random.default_rng(5))
    assert np.array_equal(np.rint(out * 255).astype(np.uint8), ref)


@pytest.mark.parametrize('quality', [30, 47, 70])
def test_jpeg_matches_mioir_diffjpeg(img8, quality):
    from basicsr.utils.diffjpeg import DiffJPEG
    with torch.no_grad():
        ref = mioir_round(DiffJPEG(differentiable=False)(torch.clamp(mioir_tensor(img8), 0, 1), quality=quality))
    out = add_jpeg(img8.astype(np.float32) / 255, {'quality': quality}, np.random.default_rng(0))
    assert np.array_equal(out, ref)


def mioir_rain_kernel(length: int, angle: float, w: int) -> np.ndarray:
    """MiOIR's rain_blur kernel: the rotated, shrunk length x length diagonal, Gaussian-thickened."""
    trans = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
    k = cv2.warpAffine(np.diag(np.ones(length)), trans, (length, length))
    return cv2.GaussianBlur(k, (w, w), 0)


@pytest.mark.parametrize(('length', 'angle', 'width'), [(20, -45, 3), (31, 12, 7), (40, 44, 11)])
def test_rain_kernel_matches_mioir_rotated_diagonal(length, angle, width):
    assert np.array_equal(rain_kernel(length, width, angle), mioir_rain_kernel(length, angle, width))


@pytest.mark.parametrize('length', [20, 30, 40])
def test_rain_kernel_streak_length_is_mioir_shrunk_diagonal(length):
    def extent(kernel: np.ndarray, axis: int) -> int:
        covered = np.nonzero(kernel.sum(axis) > 1e-6)[0]
        return int(covered[-1] - covered[0] + 1)
    # angle 45: the diagonal unrotated, shrunk by 1 - length/100; angle 0: vertical, sqrt(2) longer, cut at the box.
    assert extent(rain_kernel(length, 1, 45), 0) == pytest.approx(length * (1 - length / 100), abs=1.5)
    assert extent(rain_kernel(length, 1, 0), 1) == pytest.approx(min(length, length * 2 ** 0.5 * (1 - length / 100)),
                                                                 abs=1.5)
    assert extent(rain_kernel(length, 1, 0), 0) <= 3  # one column wide before thickening


def test_rain_matches_mioir_add_rain(img8):
    params = {'amount': 90, 'width': 5, 'length': 24, 'angle': -17}
    noise = np.random.default_rng(6).uniform(0, 256, img8.shape[:2])  # the draw add_rain makes
    noise[np.where(noise < (256 - params['amount'] * 0.01))] = 0  # MiOIR get_noise
    noise = cv2.filter2D(noise, -1, np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]]))
    blurred = cv2.filter2D(noise, -1, mioir_rain_kernel(params['length'], params['angle'], params['width']))
    cv2.normalize(blurred, blurred, 0, 255, cv2.NORM_MINMAX)  # MiOIR rain_blur
    rain = np.repeat(np.array(blurred, dtype=np.uint8)[..., None], 3, 2)
    ref = np.clip(img8.astype('float32') + rain, 0, 255)
    ref = mioir_round(torch.from_numpy(ref.transpose(2, 0, 1).copy())[None] / 255.0)
    out = add_rain(img8.astype(np.float32) / 255, params, np.random.default_rng(6))
    assert np.array_equal(out, ref)


def test_haze_matches_mioir_add_haze(img8):
    depth = np.random.default_rng(7).uniform(0.1, 1.0, img8.shape[:2])
    a, b = 0.87, 1.93
    t = np.exp(-b * (depth / depth.max()))[..., None]
    ref = (img8 * t + a * 255 * (1 - t)).astype(np.float32)  # MiOIR add_haze, then img2tensor's float32
    ref = mioir_round(torch.from_numpy(ref.transpose(2, 0, 1).copy())[None] / 255.0)
    out = add_haze(img8.astype(np.float32) / 255, {'A': a, 'beta': b}, np.random.default_rng(0), depth=depth)
    assert np.array_equal(out, ref)


def test_dark_matches_mioir_add_dark(img8):
    ref = mioir_round(torch.from_numpy(np.power(mioir_tensor(img8).numpy(), 2.37)))
    out = add_dark(img8.astype(np.float32) / 255, {'gamma': 2.37}, np.random.default_rng(0))
    assert np.array_equal(out, ref)


@pytest.mark.parametrize('given', [15, ['gaussian'], 'noise'])
def test_a_degradation_that_is_not_a_mapping_is_a_data_error_naming_its_key(given):
    from basicsr_tur.data.synthetic_task_dataset import degradation_specs
    from basicsr_tur.utils.errors import DataError
    with pytest.raises(DataError) as err:
        degradation_specs(['noise'], {'noise': given}, 'opt.yml: datasets.train')
    assert 'degradations.noise' in str(err.value) and 'opt.yml' in str(err.value)
