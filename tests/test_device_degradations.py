"""Tests for basicsr_tur.data.device_degradations: batched degradations against the per-sample path.

Equality is checked with the per-sample path's own random draws passed in (its numpy noise and rain
seeds); the device's own draws (torch.Generator) are checked statistically.
"""
import basicsr.utils.diffjpeg
import cv2
import numpy as np
import pytest
import skimage.data
import torch
from basicsr.utils.img_process_util import filter2D
from conftest import assert_names

from basicsr_tur.data import device_degradations
from basicsr_tur.data.degradations import (
    _KEYS,
    DEGRADATION_TYPES,
    QUANTIZE_MODES,
    apply_degradation,
    rain_kernel,
    sample_params,
)
from basicsr_tur.data.device_degradations import (
    NONE_ROW,
    PARAM_SLOTS,
    degrade_batch,
    pack_params,
    padded_rain_kernel,
    rain_kernel_side,
    rain_kernels_for,
    unpack_params,
)
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.sync_count import SyncCounter

SIZE = 32  # crop side: larger than half the biggest default kernels (blur 21, rain 41)
SEED = 100  # sample i draws from numpy.random.default_rng(SEED + i), as a worker would

# With quantize 'none' the batched path agrees with the per-sample one to float32 rounding.
NONE_ATOL = 1e-5
# With 'round' or 'truncate' a value may land one 8-bit level away where it lies within float error
# of a rounding boundary (.5 for round, an integer for truncate) and the batched kernels sum in
# another order. Measured on the CPU: 0 values for every type but rain; bound: 1 in 10^4 values.
LEVEL_FRACTION = 1e-4
# Rain's layer is integers in every mode: cv2 leaves a sample's brightest pixel at 254.99999..
# (254) for about a quarter of the samples where we give 255, and rarely one more pixel is within
# float32 error of an integer (test_rain_differs_from_cv2_at_most_at_the_brightest_pixel).
# Measured: 2 pixels in 1 of 400 samples of 64x64, at most 1 in the others.
RAIN_PIXELS = 2


@pytest.fixture(scope='module')
def photo() -> np.ndarray:
    """scikit-image's astronaut as 128x128 RGB uint8."""
    return cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


def crops(photo: np.ndarray, n: int) -> list[np.ndarray]:
    """n different SIZE x SIZE crops of photo, float32 in [0, 1] with 8-bit values."""
    corners = np.random.default_rng(n).integers(0, photo.shape[0] - SIZE, (n, 2))
    return [photo[y:y + SIZE, x:x + SIZE].astype(np.float32) / 255 for y, x in corners]


def depth_crop() -> np.ndarray:
    """A smooth SIZE x SIZE float32 depth crop (larger = farther) whose maximum is not 1."""
    yy, xx = np.mgrid[0:64, 0:64]
    full = 2 + np.sin(xx / 7.0) + yy / 16.0
    return full[9:9 + SIZE, 5:5 + SIZE].astype(np.float32)


def per_sample(imgs: list[np.ndarray], params: list[dict | None], depths=None):
    """Per-sample outputs (N, H, W, 3), and the noise (N, 3, H, W) and rain seeds (N, H, W) drawn.

    add_noise draws rng.standard_normal(img.shape, dtype=float32) (HxWx3, transposed here to CHW);
    add_rain draws rng.uniform(0, 256, (h, w)) first. A None param keeps the image (NONE_ROW).
    """
    n = len(imgs)
    outs = []
    noise = np.zeros((n, 3, SIZE, SIZE), np.float32)
    seeds = np.zeros((n, SIZE, SIZE))
    for i, (img, p) in enumerate(zip(imgs, params)):
        if p is None:
            outs.append(img)
            continue
        draws = np.random.default_rng(SEED + i)
        if p['type'] == 'noise':
            noise[i] = draws.standard_normal(img.shape, dtype=np.float32).transpose(2, 0, 1)
        elif p['type'] == 'rain':
            seeds[i] = draws.uniform(0, 256, (SIZE, SIZE))
        depth = None if depths is None else depths[i]
        outs.append(apply_degradation(img, p, np.random.default_rng(SEED + i), depth))
    return np.stack(outs), noise, seeds


def pack(params: list[dict | None]) -> torch.Tensor:
    """The packed rows (N, PARAM_SLOTS) of params, NONE_ROW for None."""
    return torch.from_numpy(np.stack([NONE_ROW if p is None else pack_params(p) for p in params]))


def batch(imgs: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 images -> (N, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy())


def batched(imgs, params, noise=None, seeds=None, depth=None) -> np.ndarray:
    """degrade_batch of the images by params with the given fields: (N, H, W, 3)."""
    packed = pack(params)
    has_rain = any(p is not None and p['type'] == 'rain' for p in params)
    kernels = torch.from_numpy(rain_kernels_for(packed)) if has_rain else None
    out = degrade_batch(batch(imgs), packed, rain_kernels=kernels, depth=depth,
                        noise=None if noise is None else torch.from_numpy(noise),
                        rain_seeds=None if seeds is None else torch.from_numpy(seeds))
    return out.numpy().transpose(0, 2, 3, 1)


def assert_matches(out: np.ndarray, ref: np.ndarray, params: list[dict | None]) -> None:
    """out equals ref within the bounds above, row by row as params say (N, H, W, 3)."""
    diff = np.abs(out.astype(np.float64) - ref)
    level = np.abs(diff - 1 / 255) < 1e-6
    assert np.all((diff <= NONE_ATOL) | level), f'max difference {diff.max():.3g}'
    for i, p in enumerate(params):
        if p is None:
            assert np.array_equal(out[i], ref[i])
        elif p['type'] == 'rain':
            assert level[i].any(axis=2).sum() <= RAIN_PIXELS
        elif p['quantize'] == 'none':
            assert not level[i].any(), f'row {i} ({p}) is one level off'
    rows = [i for i, p in enumerate(params) if p is not None and p['type'] != 'rain']
    assert level[rows].sum() <= LEVEL_FRACTION * level[rows].size


@pytest.mark.parametrize('quantize', QUANTIZE_MODES)
@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_batch_of_different_params_matches_the_per_sample_path(photo, deg_type, quantize):
    spec = {'type': deg_type, 'quantize': quantize}
    if deg_type == 'sr':
        spec['scale'] = [2, 4]  # the default is one fixed scale
    rng = np.random.default_rng(7)
    params = [sample_params(spec, rng) for _ in range(5)]
    assert len({tuple(pack_params(p)) for p in params}) >= (2 if deg_type == 'sr' else 5)
    imgs = crops(photo, len(params))
    ref, noise, seeds = per_sample(imgs, params)
    assert_matches(batched(imgs, params, noise, seeds), ref, params)


def test_mixed_batch_matches_the_per_sample_path(photo):
    rng = np.random.default_rng(3)
    params = [sample_params({'type': t, 'quantize': str(rng.choice(QUANTIZE_MODES))}, rng)
              for t in (*DEGRADATION_TYPES, *DEGRADATION_TYPES)]
    params += [None, sample_params({'type': 'noise', 'quantize': 'truncate'}, rng), None]
    order = rng.permutation(len(params))
    params = [params[i] for i in order]
    imgs = crops(photo, len(params))
    # the haze rows: real depth for one, the ramp fallback (a row of NaN) for the other
    depths = [None] * len(params)
    depth = np.full((len(params), SIZE, SIZE), np.nan, np.float32)
    first_haze = next(i for i, p in enumerate(params) if p is not None and p['type'] == 'haze')
    depths[first_haze] = depth[first_haze] = depth_crop()
    ref, noise, seeds = per_sample(imgs, params, depths)
    assert_matches(batched(imgs, params, noise, seeds, torch.from_numpy(depth)), ref, params)


def test_rain_differs_from_cv2_at_most_at_the_brightest_pixel():
    # On black crops the output is the layer. cv2's float64 DFT correlation and min-max scaling
    # leave a sample's brightest pixel at 254.99999.. (254 once truncated) for about a quarter of
    # the samples, where (x - min) / (max - min) gives exactly 255 here. Measured on 48 samples of
    # 32x32: 14 such pixels, no other difference (400 of 64x64: 97, and 3 others, one level each).
    n = 48
    rng = np.random.default_rng(1)
    params = [sample_params({'type': 'rain', 'quantize': 'none'}, rng) for _ in range(n)]
    imgs = [np.zeros((SIZE, SIZE, 3), np.float32)] * n
    ref, _, seeds = per_sample(imgs, params)
    out = batched(imgs, params, seeds=seeds)
    ref, out = ref[..., 0] * 255, out[..., 0] * 255
    differs = np.rint(out) != np.rint(ref)
    brightest = (out == 255) & (np.rint(ref) == 254)
    assert np.all(np.abs(out - ref)[differs] < 1 + 1e-3)
    assert differs.sum((1, 2)).max() <= 1
    assert (differs & ~brightest).sum() <= 1


def test_haze_reads_depth_rows_and_takes_the_ramp_for_nan_rows(photo):
    params = [{'type': 'haze', 'A': 0.9, 'beta': 1.7, 'quantize': 'none'}] * 3
    imgs = crops(photo, 1) * 3
    depth = np.stack([depth_crop(), np.full((SIZE, SIZE), np.nan, np.float32), 5 * depth_crop()])
    ref, _, _ = per_sample(imgs, params, [depth[0], None, depth[2]])
    out = batched(imgs, params, depth=torch.from_numpy(depth))
    np.testing.assert_allclose(out, ref, rtol=0, atol=NONE_ATOL)
    assert not np.allclose(out[0], out[1])  # depth is read, not the ramp
    np.testing.assert_allclose(out[0], out[2], rtol=0, atol=NONE_ATOL)  # divided by its maximum


def test_without_depth_every_haze_row_takes_the_ramp(photo):
    params = [{'type': 'haze', 'A': 0.85, 'beta': 2.2, 'quantize': 'round'}] * 2
    imgs = crops(photo, 2)
    ref, _, _ = per_sample(imgs, params)
    assert np.array_equal(batched(imgs, params), ref)


def test_rows_of_type_minus_one_are_returned_unchanged(photo):
    params = [None, {'type': 'dark', 'gamma': 2.0}, None]
    gt = batch(crops(photo, 3))
    out = degrade_batch(gt, pack(params), noise=torch.full((3, 3, SIZE, SIZE), np.nan))
    assert torch.equal(out[0], gt[0]) and torch.equal(out[2], gt[2])
    assert not torch.equal(out[1], gt[1])


def test_input_batch_is_not_modified(photo):
    gt = batch(crops(photo, 2))
    original = gt.clone()
    out = degrade_batch(gt, pack([{'type': 'dark', 'gamma': 2.0}, {'type': 'sr', 'scale': 2}]))
    assert torch.equal(gt, original)
    assert out.data_ptr() != gt.data_ptr()


@pytest.mark.parametrize('quantize', QUANTIZE_MODES)
@pytest.mark.parametrize('deg_type', DEGRADATION_TYPES)
def test_pack_then_unpack_gives_the_params_back(deg_type, quantize):
    params = sample_params({'type': deg_type, 'quantize': quantize}, np.random.default_rng(1))
    row = pack_params(params)
    assert row.shape == (PARAM_SLOTS,) and row.dtype == np.float64
    assert unpack_params(row) == params
    assert unpack_params(torch.from_numpy(row)) == params
    assert all(type(unpack_params(row)[k]) is type(params[k]) for k in params)


def test_param_slots_hold_the_type_with_most_keys():
    assert PARAM_SLOTS == 2 + max(len(keys) for keys in _KEYS.values())


def test_none_row_is_type_minus_one_read_only_and_unpacks_to_an_error():
    assert NONE_ROW[0] == -1 and not NONE_ROW[1:].any()
    assert not NONE_ROW.flags.writeable
    with pytest.raises(UserError) as err:
        unpack_params(NONE_ROW)
    assert_names(err, 'type -1')


@pytest.mark.parametrize(('length', 'side'), [(1, 1), (20, 21), (21, 21), (40, 41)])
def test_rain_kernel_side_is_the_smallest_odd_side_holding_the_kernel(length, side):
    assert rain_kernel_side(length) == side


@pytest.mark.parametrize(('length', 'side'), [(20, 21), (20, 41), (21, 21), (33, 41), (8, 9)])
def test_padded_rain_kernel_correlates_as_cv2_filter2d(length, side):
    params = {'amount': 80, 'width': 5, 'length': length, 'angle': 17.5}
    img = np.random.default_rng(length).uniform(0, 255, (48, 48))
    ref = cv2.filter2D(img, -1, rain_kernel(length, 5, 17.5))  # anchor (L // 2, L // 2), reflect101
    padded = padded_rain_kernel(params, side)
    assert padded.shape == (side, side)
    np.testing.assert_allclose(cv2.filter2D(img, -1, padded), ref, rtol=0, atol=1e-9 * ref.max())
    centred = filter2D(torch.from_numpy(img)[None, None], torch.from_numpy(padded)[None])
    np.testing.assert_allclose(centred[0, 0].numpy(), ref, rtol=0, atol=1e-9 * ref.max())


@pytest.mark.parametrize('side', [19, 22])
def test_padded_rain_kernel_refuses_a_side_too_small_or_even(side):
    with pytest.raises(UserError) as err:
        padded_rain_kernel({'amount': 80, 'width': 5, 'length': 20, 'angle': 0}, side)
    assert_names(err, f'side={side}', 'length 20')


def test_drawn_noise_has_std_sigma_and_mean_zero():
    sigmas = [15.0, 25.0, 35.0]
    grey = torch.full((len(sigmas), 3, SIZE, SIZE), 0.5)  # 3.6 sigma from 0 and 1: no clipping
    params = [{'type': 'noise', 'sigma': s, 'quantize': 'none'} for s in sigmas]
    out = degrade_batch(grey, pack(params), generator=torch.Generator().manual_seed(0))
    z = (out - 0.5).flatten(1).double() / torch.tensor(sigmas, dtype=torch.float64)[:, None] * 255
    # std per row of 3072 values: standard error 1.3 %, so 5 % is ~4 standard errors
    np.testing.assert_allclose(z.std(dim=1).numpy(), 1.0, rtol=0.05)
    assert abs(float(z.mean())) < 4 / z.numel() ** 0.5  # 4 standard errors of the pooled mean


def test_same_generator_seed_gives_identical_output(photo):
    params = [{'type': 'noise', 'sigma': 30.0}, {'type': 'rain', 'amount': 99, 'width': 5,
                                                 'length': 25, 'angle': 10.0},
              {'type': 'noise', 'sigma': 20.0, 'quantize': 'truncate'}]
    gt, packed = batch(crops(photo, 3)), pack(params)
    kernels = torch.from_numpy(rain_kernels_for(packed))

    def run(seed: int) -> torch.Tensor:
        return degrade_batch(gt, packed, rain_kernels=kernels,
                             generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_drawn_rain_seeds_have_the_expected_density():
    # amount 2560 keeps 10 % of the pixels as seeds (uniform(0, 256) >= 256 - 25.6): enough seeds in
    # a tiny crop for a tight check, where MiOIR's 50-99 would give 1 to 4. A delta streak kernel
    # keeps each seed one bright pixel: it gets 8x its seed (>= 8 * 230.4 after the 3x3 pre-blur),
    # others at most 4 * 0.1 * 256, so after min-max scaling seeds are above 128 and the rest below.
    n = 8
    packed = pack([{'type': 'rain', 'amount': 2560, 'width': 1, 'length': 1, 'angle': 0.0}] * n)
    out = degrade_batch(torch.zeros(n, 3, SIZE, SIZE), packed, rain_kernels=torch.ones(n, 1, 1),
                        generator=torch.Generator().manual_seed(0))
    density = float((out[:, 0] * 255 >= 128).double().mean())
    # binomial standard error sqrt(0.1 * 0.9 / 8192) = 0.0033; the bound is 4.5 of them
    assert density == pytest.approx(0.1, abs=0.015)


def mixed_batch(photo) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A batch of every type, both noise forms and a NONE_ROW, with its keyword arguments."""
    rng = np.random.default_rng(11)
    params = [sample_params({'type': t}, rng) for t in DEGRADATION_TYPES]
    params += [sample_params({'type': 'noise', 'quantize': 'truncate'}, rng), None]
    packed = pack(params)
    depth = torch.rand(len(params), SIZE, SIZE) + 0.1
    depth[0] = float('nan')
    kwargs = {'rain_kernels': torch.from_numpy(rain_kernels_for(packed, 41)), 'depth': depth,
              'generator': torch.Generator().manual_seed(0)}
    return batch(crops(photo, len(params))), packed, kwargs


def test_degrade_batch_makes_no_host_device_sync(photo):
    gt, packed, kwargs = mixed_batch(photo)
    with SyncCounter(exclude=[packed]) as syncs:
        degrade_batch(gt, packed, **kwargs)
    assert syncs.total == 0, syncs.counts


def test_the_one_host_read_the_counter_sees_is_of_packed_on_the_cpu(photo):
    # Without the exclusion the counter reports exactly the read of packed: it sees this path.
    gt, packed, kwargs = mixed_batch(photo)
    with SyncCounter() as syncs:
        degrade_batch(gt, packed, **kwargs)
    assert dict(syncs.counts) == {'Tensor.numpy': 1}


def test_a_device_diffjpeg_has_quantisation_tables_of_its_own(monkeypatch):
    # basicsr's tables are module-level Parameters that every DiffJPEG shares, and Module.to() moves
    # a Parameter in place where the devices' tensor types are compatible (CPU and CUDA): moving a
    # shared table would break degradations.add_jpeg's CPU instance. (On the CPU-only test machine
    # .double() shows the same in-place move; the 'meta' device makes new Parameters instead.)
    monkeypatch.setattr(device_degradations, '_JPEG_MODULES', {})
    jpeg = device_degradations._jpeg_module(torch.device('cpu'))
    for ours, shared in ((jpeg.compress.y_quantize.y_table, basicsr.utils.diffjpeg.y_table),
                         (jpeg.decompress.y_dequantize.y_table, basicsr.utils.diffjpeg.y_table),
                         (jpeg.compress.c_quantize.c_table, basicsr.utils.diffjpeg.c_table),
                         (jpeg.decompress.c_dequantize.c_table, basicsr.utils.diffjpeg.c_table)):
        assert ours is not shared and ours.data_ptr() != shared.data_ptr()
        assert torch.equal(ours, shared) and not ours.requires_grad
    jpeg.double()  # moves its Parameters in place, as .to('cuda') does
    assert basicsr.utils.diffjpeg.y_table.dtype == torch.float32
    assert basicsr.utils.diffjpeg.c_table.dtype == torch.float32


def test_tf32_is_off_inside_the_synthesis_and_restored_after():
    # degrade_batch runs its CUDA work inside _exact_float32; no GPU here, so the switch is tested.
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [flag.allow_tf32 for flag in flags]
    try:
        for flag in flags:
            flag.allow_tf32 = True
        with pytest.raises(KeyError), device_degradations._exact_float32():
            assert not any(flag.allow_tf32 for flag in flags)
            raise KeyError('an error inside still restores the flags')
        assert all(flag.allow_tf32 for flag in flags)
    finally:
        for flag, value in zip(flags, before):
            flag.allow_tf32 = value


BLUR = {'type': 'blur', 'kernel_size': 7, 'sigma': 1.5}
RAIN = {'type': 'rain', 'amount': 80, 'width': 3, 'length': 30, 'angle': 0.0}


def bad_row(slot: int, value: float, params: dict = BLUR) -> torch.Tensor:
    """Two packed rows, the second with one slot set to value."""
    rows = pack([params, params])
    rows[1, slot] = value
    return rows


@pytest.mark.parametrize(('make', 'error', 'culprit'), [  # culprit: the argument, row and value the line names
    (lambda gt: {'packed': pack([BLUR, BLUR]).to('meta')}, UserError, ('packed', 'meta')),
    (lambda gt: {'packed': pack([BLUR, BLUR])[:, :5]}, UserError, ('packed', '(2, 5)')),
    (lambda gt: {'packed': pack([BLUR, BLUR]).tolist()}, TypeError, ('packed', 'list')),
    (lambda gt: {'gt': gt[:, :1]}, UserError, ('gt', '(2, 1, 32, 32)')),
    (lambda gt: {'gt': gt.double()}, UserError, ('gt', 'float64')),
    (lambda gt: {'packed': bad_row(0, 9)}, UserError, ('packed row 1', 'type', '9')),
    (lambda gt: {'packed': bad_row(1, 3)}, UserError, ('packed row 1', 'quantize', '3')),
    (lambda gt: {'packed': bad_row(2, 8)}, UserError, ('packed row 1', 'kernel_size=8')),
    (lambda gt: {'packed': bad_row(3, -1)}, UserError, ('packed row 1', 'sigma=-1')),
    (lambda gt: {'packed': bad_row(2, 65)}, UserError, ('packed row 1', 'kernel_size 65')),
    (lambda gt: {'packed': pack([{'type': 'sr', 'scale': 64}] * 2)}, UserError, ('packed row 0', 'scale 64')),
    (lambda gt: {'packed': pack([BLUR, RAIN])}, UserError, ('packed row 1', 'rain_kernels')),
    (lambda gt: {'packed': pack([BLUR, RAIN]), 'rain_kernels': torch.zeros(2, 21, 21)}, UserError,
     ('packed row 1', 'length 30', 'rain_kernels')),
    (lambda gt: {'packed': pack([BLUR, RAIN]), 'rain_kernels': torch.zeros(2, 30, 30)}, UserError,
     ('rain_kernels', '30')),
    (lambda gt: {'noise': torch.zeros(2, 3, 32, 16)}, UserError, ('noise', '(2, 3, 32, 16)')),
    (lambda gt: {'rain_seeds': torch.zeros(1, 32, 32)}, UserError, ('rain_seeds', '(1, 32, 32)')),
    (lambda gt: {'depth': torch.zeros(2, 32, 32, dtype=torch.long)}, UserError, ('depth', 'int64')),
    (lambda gt: {'depth': torch.zeros(2, 32, 32, device='meta')}, UserError, ('depth', 'meta')),
])
def test_invalid_inputs_raise_naming_the_culprit(photo, make, error, culprit):
    gt = batch(crops(photo, 2))
    kwargs = {'gt': gt, 'packed': pack([BLUR, BLUR]), **make(gt)}
    with pytest.raises(error) as err:
        degrade_batch(kwargs.pop('gt'), kwargs.pop('packed'), **kwargs)
    assert_names(err, 'degrade_batch', *culprit)
