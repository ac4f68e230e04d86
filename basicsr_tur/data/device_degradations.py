"""The seven degradations of degradations.py for a whole batch of crops, on any torch device.

degradations.py synthesises one HxWx3 numpy image at a time on the CPU, in the dataset workers. This
module applies the same formulas to a (B, 3, H, W) float32 batch where it already lives, so that the
training model can synthesise its inputs in feed_data on the GPU: the workers only decode, crop and
draw the parameters (degradations.sample_params), one row of floats per sample (`pack_params`);
`degrade_batch` does the rest, batched.

Formulas, each as the per-sample path states and pins it against the authors' code
(tests/test_degradations.py). MiOIR is Kong et al., repo Xiangtaokong/MiOIR,
data_script/add_MiO_*_degradation.py.

- sr: bicubic ``F.interpolate`` by 1/scale and back to (H, W) (MiOIR's resize_tensor), one call per
  distinct scale.
- blur: degradations.gaussian_kernel (MiOIR's isotropic bivariate_Gaussian) per sample, built on the
  device, applied by basicsr's ``filter2D`` (reflect padding; its grouped convolution takes one
  kernel per sample), one call per distinct kernel size.
- noise: basicsr's ``random_add_gaussian_noise_pt`` form ``gt + randn * sigma / 255`` in float32
  (MiOIR); with quantize 'truncate' the form of AirNet/PromptIR's utils
  (``Degradation._add_gaussian_noise``), ``floor(clip(levels + randn * sigma, 0, 255)) / 255`` in
  float64 on the 8-bit levels of the input.
- jpeg: basicsr's ``DiffJPEG(differentiable=False)`` compression and decompression stages with one
  quality factor per sample (`_jpeg` says why its ``forward`` is not called).
- rain: MiOIR's get_noise + rain_blur. Seeds ``uniform(0, 256)`` per pixel, zero below
  ``256 - amount / 100``; the 3x3 pre-blur and the streak kernel as correlations with cv2's default
  border (BORDER_REFLECT_101, which is torch's 'reflect' padding); per-sample min-max normalisation
  to 0..255 as cv2.NORM_MINMAX (a constant layer becomes 0); truncation to integers; the layer / 255
  added to every channel.
- haze: MiOIR's add_haze on the 0-255 scale in float64, ``levels * t + A * 255 * (1 - t)`` with
  ``t = exp(-beta * depth / max(depth))``; degradations' vertical ramp where a sample has no depth
  map.
- dark: ``gt ** gamma`` (MiOIR's np.power), in float32.

Then every type but 'truncate' noise ends as degradations._finish does: 'round' is
``round(clamp(x) * 255) / 255`` (float32, half to even), 'truncate'
``floor(levels(clamp(x))) / 255``, 'none' the clamp alone.

Equality with the per-sample path. Given the same parameters and random fields, the outputs agree up
to float rounding: within 1e-5 with quantize 'none', and with 'round' or 'truncate' identical but
for a tiny fraction of values one 8-bit level apart, where a value lies within float error of a
rounding or truncation boundary and the batched kernels (grouped convolutions, batched DCT matmuls,
torch's pow against numpy's) sum or round in another order than the per-sample calls; on the CPU
that fraction measures 0 for every type but rain. Rain's layer is made of integers in every quantize
mode, so there a difference is always one level: at most the brightest pixel of a sample, which
cv2's float64 DFT correlation and min-max scaling leave at 254.99999... (truncated to 254) for about
a quarter of the samples, where (x - min) / (max - min) here gives exactly 255 (plus, rarely, one
other pixel within float32 error of an integer). tests/test_device_degradations.py measures and
bounds these.

Randomness. Noise and rain seeds are drawn on the device from a ``torch.Generator`` (torch.randn,
torch.rand), not from the workers' numpy generator, so a seed does not give the per-sample path's
images; it reproduces this path's images on the same device. The tests check equality by passing the
per-sample path's own draws in (``noise``, ``rain_seeds``) and check the device draws statistically.

On CUDA, TF32 is off inside degrade_batch (restored after), whatever the options' `tf32` says for
the rest of the step: its 10-bit mantissa would move many 8-bit roundings (`_exact_float32`).

No host-device synchronisation: the packed parameters stay on the host, which groups the rows by
type and by a small discrete key (quantize mode, sr scale, blur kernel size) and moves index and
parameter tensors to the device with ``non_blocking=True``; nothing is read back from the device. So
values on the device (gt in [0, 1], depth maps finite and >= 0, rain kernels matching their rows)
are not checked here; the workers check them (degradations.read_depth, padded_rain_kernel).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import filter2D
from torch import nn
from torch.nn import functional as F

from basicsr_tur.data import degradations as deg
from basicsr_tur.data.data_util import divide_exactly
from basicsr_tur.data.degradations import DEGRADATION_TYPES, QUANTIZE_MODES
from basicsr_tur.utils.errors import UserError

__all__ = [
    'NONE_ROW', 'PARAM_SLOTS', 'degrade_batch', 'pack_params', 'padded_rain_kernel',
    'rain_kernel_side', 'rain_kernels_for', 'unpack_params'
]

# [type index, quantize index, then up to 4 values in the order of degradations._KEYS[type]].
PARAM_SLOTS = 6

# The packed row of a sample not to degrade: type -1, the rest 0. Read-only, so that a caller
# filling a batch with it cannot change it for everyone.
NONE_ROW = np.zeros(PARAM_SLOTS)
NONE_ROW[0] = -1
NONE_ROW.setflags(write=False)

_SR, _BLUR, _NOISE, _JPEG, _RAIN, _HAZE, _DARK = range(len(DEGRADATION_TYPES))
_ROUND, _TRUNCATE, _NONE = range(len(QUANTIZE_MODES))

# cv2.normalize(NORM_MINMAX) treats a range at or below DBL_EPSILON as a constant image.
_DBL_EPSILON = float(np.finfo(np.float64).eps)


def pack_params(params: dict) -> np.ndarray:
    """One concrete param dict (from degradations.sample_params) -> its (PARAM_SLOTS,) float64 row.

    The row is [type index in DEGRADATION_TYPES, quantize index in QUANTIZE_MODES, the type's values
    in the order of degradations._KEYS[type], 0 in the slots left]; float64 holds every value
    exactly.
    Raises what degradations.apply_degradation raises for the same dict (an unknown type or key, a
    range where a value is expected, a value out of its range).
    """
    deg_type = deg._check_type(params, 'degradation params')
    values = deg._concrete(params, deg_type)
    row = np.zeros(PARAM_SLOTS)
    row[0] = DEGRADATION_TYPES.index(deg_type)
    row[1] = QUANTIZE_MODES.index(values['quantize'])
    for slot, key in enumerate(deg._KEYS[deg_type], start=2):
        row[slot] = values[key]
    return row


def unpack_params(row: np.ndarray | torch.Tensor) -> dict:
    """A packed row (PARAM_SLOTS,) -> the concrete param dict it packs, as sample_params returns it.

    Raises ValueError naming the value at fault for a row of another length, an unknown type or
    quantize index or an invalid value, and for NONE_ROW (type -1), which packs no degradation.
    """
    values = np.asarray(row, dtype=np.float64)
    if values.shape != (PARAM_SLOTS,):
        raise UserError(f'packed row of shape {values.shape} is not valid; '
                         f'expected ({PARAM_SLOTS},)')
    return _unpack(values, 'packed row')


def _unpack(values: np.ndarray, where: str) -> dict:
    """unpack_params of a (PARAM_SLOTS,) float64 row; errors start with `where` and the row."""
    where = f'{where} [{", ".join(deg._fmt(float(v)) for v in values)}]'
    type_index, quantize_index = float(values[0]), float(values[1])
    if type_index == -1:
        raise UserError(f'{where}: type -1 (NONE_ROW) holds no degradation')
    if type_index not in range(len(DEGRADATION_TYPES)):
        raise UserError(f'{where}: type index {deg._fmt(type_index)} is not valid; expected -1 or '
                         f'0..{len(DEGRADATION_TYPES) - 1} ({", ".join(DEGRADATION_TYPES)})')
    if quantize_index not in range(len(QUANTIZE_MODES)):
        raise UserError(f'{where}: quantize index {deg._fmt(quantize_index)} is not valid; '
                         f'expected 0..{len(QUANTIZE_MODES) - 1} ({", ".join(QUANTIZE_MODES)})')
    deg_type = DEGRADATION_TYPES[int(type_index)]
    raw: dict = {}
    for slot, (key, rule) in enumerate(deg._KEYS[deg_type].items(), start=2):
        value = float(values[slot])
        # integer keys as Python ints, so that a complaint names 8, not 8.0
        raw[key] = int(value) if rule.kind != 'float' and value.is_integer() else value
    raw['quantize'] = QUANTIZE_MODES[int(quantize_index)]
    try:
        return {'type': deg_type, **deg._concrete(raw, deg_type)}
    except ValueError as err:
        raise UserError(f'{where}: {err}') from None


def rain_kernel_side(length: int) -> int:
    """The odd side K of a square holding a length x length streak kernel centred as cv2 anchors it.

    cv2.filter2D anchors an L x L kernel at (L // 2, L // 2): its centre for odd L, the pixel right
    of and below the centre for even L. Put at the top left of a K x K square, K = L (odd L) or
    L + 1 (even L), that anchor is the square's centre. Raises ValueError unless length is an
    integer >= 1.
    """
    if isinstance(length, bool) or not float(length).is_integer() or length < 1:
        raise UserError(f'rain: length={length!r} is not valid; expected an integer >= 1')
    length = int(length)
    return length if length % 2 else length + 1


def padded_rain_kernel(params: dict, side: int) -> np.ndarray:
    """degradations.rain_kernel of the rain params in a (side, side) float64 square, so that a
    centred side x side correlation (side // 2 of padding on every border) equals cv2.filter2D's.

    The L x L kernel's anchor (L // 2, L // 2) lands on the square's centre, the rest is 0. Raises
    ValueError for invalid rain params, or for a side that is even or below
    rain_kernel_side(length).
    """
    p = deg._concrete(params, 'rain')
    length = p['length']
    need = rain_kernel_side(length)
    if isinstance(side, bool) or not float(side).is_integer() or side < need or side % 2 == 0:
        raise UserError(f'rain: side={side!r} is not valid for length {length}; expected an odd '
                         f'integer >= {need} (rain_kernel_side)')
    side = int(side)
    out = np.zeros((side, side))
    offset = side // 2 - length // 2
    out[offset:offset + length, offset:offset + length] = deg.rain_kernel(length, p['width'],
                                                                          p['angle'])
    return out


def rain_kernels_for(packed: np.ndarray | torch.Tensor, side: int | None = None) -> np.ndarray:
    """The rain_kernels argument of degrade_batch for packed rows (B, PARAM_SLOTS): (B, side, side)
    float32, zeros in the rows of other types.

    side defaults to the largest rain_kernel_side of the rain rows (1 without any). This builds
    the kernels with cv2 on the host, one rain row after the other, as the dataset's workers do for
    their own sample (padded_rain_kernel with one side for the whole setting, so that the kernels
    stack); for tests, benchmarks and test-set synthesis. Raises ValueError as unpack_params and
    padded_rain_kernel do.
    """
    rows = np.asarray(packed, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != PARAM_SLOTS:
        raise UserError(f'packed of shape {rows.shape} is not valid; expected (B, {PARAM_SLOTS})')
    rain_rows = np.flatnonzero(rows[:, 0] == _RAIN)
    params = [unpack_params(rows[i]) for i in rain_rows]
    if side is None:
        side = max((rain_kernel_side(p['length']) for p in params), default=1)
    kernels = np.zeros((rows.shape[0], side, side), dtype=np.float32)
    for i, p in zip(rain_rows, params):
        kernels[i] = padded_rain_kernel(p, side)
    return kernels


def _wide(device: torch.device) -> torch.dtype:
    """The dtype of the per-sample path's float64 steps: float64, or float32 on MPS (no float64)."""
    return torch.float32 if device.type == 'mps' else torch.float64


def _to_device(values: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A host array -> a tensor on device, copied without waiting for the device."""
    array = np.ascontiguousarray(values)
    return torch.from_numpy(array).to(device=device, dtype=dtype, non_blocking=True)


@contextlib.contextmanager
def _exact_float32() -> Iterator[None]:
    """No TF32 in cuBLAS matmuls and cuDNN convolutions inside the block; flags restored after.

    The options' `tf32: true` (utils/options.set_backend_flags) makes float32 convolutions and
    matmuls on a GPU run on TF32 tensor cores, whose 10-bit mantissa (relative error ~1e-3) is far
    coarser than the margin to a .5 boundary that most 8-bit roundings need; the synthesis keeps
    the per-sample path's float32 (blur and rain convolutions, DiffJPEG's DCT matmuls). The legacy
    flags, as set_backend_flags sets them.
    """
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = conv


def _levels(x: torch.Tensor) -> torch.Tensor:
    """degradations._levels batched: values in [0, 1] -> the 0-255 scale, within 1e-3 of a level
    made that level; any shape, float32 in, the wide dtype (float64) out."""
    scaled = x.to(_wide(x.device)) * 255.0
    level = torch.round(scaled)
    return torch.where((scaled - level).abs() < 1e-3, level, scaled)


def _finish(x: torch.Tensor, quantize: int) -> torch.Tensor:
    """degradations._finish batched: clamp to [0, 1], make 8-bit as `quantize` says.

    (N, 3, H, W) float32 -> (N, 3, H, W) float32.
    """
    x = x.clamp(0.0, 1.0)
    if quantize == _ROUND:
        return divide_exactly(torch.round(x * 255.0), 255.0)
    if quantize == _TRUNCATE:
        return divide_exactly(torch.floor(_levels(x)), 255.0).to(torch.float32)
    return x


def _sr(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Bicubic down by 1/scale and back up, rows of one scale: (N, 3, H, W) -> (N, 3, H, W)."""
    scale = int(rows[0, 2])
    small = F.interpolate(x, scale_factor=1 / scale, mode='bicubic')
    return F.interpolate(small, size=x.shape[-2:], mode='bicubic')


def _blur(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Per-sample Gaussian blur, rows of one kernel size: (N, 3, H, W) -> (N, 3, H, W).

    The kernels are gaussian_kernel's, built on the device in the wide dtype and cast to float32 as
    the per-sample path casts them; basicsr's filter2D runs them as one grouped convolution.
    """
    size = int(rows[0, 2])
    wide = _wide(x.device)
    sigma = _to_device(rows[:, 3], x.device, wide)[:, None, None]
    ax = torch.arange(size, dtype=wide, device=x.device) - (size - 1) / 2
    kernels = torch.exp(-0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) / sigma ** 2)
    kernels = kernels / kernels.sum(dim=(1, 2), keepdim=True)
    return filter2D(x, kernels.to(torch.float32))


def _noise(x: torch.Tensor, rows: np.ndarray, randn: torch.Tensor, quantize: int) -> torch.Tensor:
    """Gaussian noise from randn (N, 3, H, W) standard normals: (N, 3, H, W) -> (N, 3, H, W).

    With quantize 'truncate' the result is final (AirNet's uint8 truncation); else _finish follows.
    """
    if quantize == _TRUNCATE:
        sigma = _to_device(rows[:, 2], x.device, _wide(x.device))[:, None, None, None]
        noisy = (_levels(x) + randn.to(sigma.dtype) * sigma).clamp(0, 255)
        return divide_exactly(torch.floor(noisy), 255.0).to(torch.float32)
    # add_noise's order, all float32: img + (noise * float32(sigma)) / float32(255).
    sigma = _to_device(rows[:, 2], x.device, torch.float32)[:, None, None, None]
    return x + divide_exactly(randn * sigma, 255.0)


# One DiffJPEG per device, built on first use (_jpeg_module).
_JPEG_MODULES: dict[torch.device, DiffJPEG] = {}


def _jpeg_module(device: torch.device) -> DiffJPEG:
    """The cached DiffJPEG(differentiable=False) of a device, with quantisation tables of its own.

    basicsr's Y and C tables are module-level nn.Parameters shared by every DiffJPEG: moving one
    instance with .to() would move the shared tables and break degradations.add_jpeg's CPU instance.
    """
    if device not in _JPEG_MODULES:
        jpeg = DiffJPEG(differentiable=False)
        for stage in (jpeg.compress.y_quantize, jpeg.decompress.y_dequantize):
            stage.y_table = nn.Parameter(stage.y_table.detach().clone(), requires_grad=False)
        for stage in (jpeg.compress.c_quantize, jpeg.decompress.c_dequantize):
            stage.c_table = nn.Parameter(stage.c_table.detach().clone(), requires_grad=False)
        _JPEG_MODULES[device] = jpeg.to(device).requires_grad_(False).eval()
    return _JPEG_MODULES[device]


def _jpeg(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """DiffJPEG round trip with one quality per row: (N, 3, H, W) -> (N, 3, H, W).

    DiffJPEG.forward takes a tensor of qualities, but converts it in a Python loop over the samples
    with a tensor comparison each (a host sync per sample), overwriting the caller's tensor. So the
    factors are computed on the host as its quality_to_factor computes them for a Python number
    (float64, cast to float32 where the tables multiply them), and forward's steps follow: pad to
    multiples of 16 with zeros, compress, decompress, crop.
    """
    quality = rows[:, 2]
    factor = np.where(quality < 50, 5000.0 / quality, 200.0 - quality * 2) / 100.0
    factor = _to_device(factor, x.device, torch.float32)
    jpeg = _jpeg_module(x.device)
    h, w = x.shape[-2:]
    padded = F.pad(x.clamp(0, 1), (0, -w % 16, 0, -h % 16), mode='constant', value=0)
    y, cb, cr = jpeg.compress(padded, factor=factor)
    out = jpeg.decompress(y, cb, cr, padded.shape[-2], padded.shape[-1], factor=factor)
    return out[..., :h, :w]


def _rain(x: torch.Tensor, rows: np.ndarray, seeds: torch.Tensor,
          kernels: torch.Tensor) -> torch.Tensor:
    """Rain streaks from seeds (N, H, W) in [0, 256) and streak kernels (N, K, K): (N, 3, H, W) ->
    (N, 3, H, W).

    The threshold compares in the seeds' dtype (the per-sample path's seeds are float64). The
    correlations run in float32, the dtype a GPU convolves fast, where cv2 runs float64: measured,
    it changes no more than float64 correlations do (the module docstring's equality note).
    """
    threshold = _to_device(256 - rows[:, 2] * 0.01, x.device, seeds.dtype)[:, None, None]
    seeds = torch.where(seeds < threshold, torch.zeros_like(seeds), seeds)
    seed_blur = _to_device(deg._SEED_BLUR, x.device, torch.float32)[None]
    streaks = filter2D(seeds.to(torch.float32)[:, None], seed_blur)
    streaks = filter2D(streaks, kernels.to(torch.float32))
    low = streaks.amin(dim=(1, 2, 3), keepdim=True)
    spread = streaks.amax(dim=(1, 2, 3), keepdim=True) - low
    # (x - min) / spread puts the maximum at exactly 255; a constant layer becomes 0, as in cv2.
    flat = spread <= _DBL_EPSILON
    unit = (streaks - low) / torch.where(flat, torch.ones_like(spread), spread)
    unit = torch.where(flat, torch.zeros_like(unit), unit)
    layer = torch.trunc(unit * 255.0).clamp(0, 255)  # numpy's astype(np.uint8)
    return x + divide_exactly(layer, 255.0)


def _haze(x: torch.Tensor, rows: np.ndarray, depth: torch.Tensor | None) -> torch.Tensor:
    """Haze I = J*t + A*(1 - t) on the 0-255 scale: (N, 3, H, W), depth (N, H, W) or None -> same.

    A depth row whose first value is NaN, or depth None, takes degradations' vertical ramp instead.
    """
    h, w = x.shape[-2:]
    wide = _wide(x.device)
    ramp = _to_device(deg._fallback_depth(h, 1), x.device, wide)[None]  # (1, H, 1)
    if depth is None:
        d = ramp.expand(x.shape[0], h, w)
    else:
        d = depth.to(wide)
        normalised = d / d.amax(dim=(1, 2), keepdim=True)
        d = torch.where(torch.isnan(d[:, :1, :1]), ramp, normalised)
    beta = _to_device(rows[:, 3], x.device, wide)[:, None, None]
    t = torch.exp(-beta * d)[:, None]
    a255 = _to_device(rows[:, 2] * 255, x.device, wide)[:, None, None, None]
    hazy = _levels(x) * t + a255 * (1 - t)
    return divide_exactly(hazy.to(torch.float32), 255.0)


def _dark(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """x ** gamma per row in float32, as numpy's power of a float32 image: (N, 3, H, W) -> same."""
    gamma = _to_device(rows[:, 2], x.device, torch.float32)[:, None, None, None]
    return torch.pow(x, gamma)


def _admitted(rule: deg._Key, values: np.ndarray) -> np.ndarray:
    """degradations' check of one key, vectorised over rows: (N,) float64 -> (N,) bool."""
    ok = np.isfinite(values)
    if rule.kind != 'float':
        ok &= values == np.round(values)
    if rule.kind == 'odd':
        ok &= np.mod(values, 2) == 1
    if rule.low is not None:
        ok &= values > rule.low if rule.low_open else values >= rule.low
    if rule.high is not None:
        ok &= values <= rule.high
    return ok


def _raise_for_row(rows: np.ndarray, i: int, reason: str = '') -> None:
    """Raise a ValueError naming packed row i and what is wrong with it (by default _unpack's)."""
    where = f'degrade_batch: packed row {i}'
    params = _unpack(rows[i], where)
    raise UserError(f'{where} ({params}): {reason or "is not valid"}')


def _host_rows(packed: np.ndarray | torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """Check gt and packed; return packed as a (B, PARAM_SLOTS) float64 array, read on the host."""
    if not isinstance(gt, torch.Tensor):
        raise TypeError(f'degrade_batch: gt is a {type(gt).__name__}; expected a (B, 3, H, W) '
                        'float32 tensor')
    if gt.ndim != 4 or gt.shape[1] != 3 or gt.dtype != torch.float32:
        raise UserError(f'degrade_batch: gt of shape {tuple(gt.shape)} and dtype {gt.dtype} is '
                         'not valid; expected (B, 3, H, W) float32')
    if isinstance(packed, torch.Tensor):
        if packed.device.type != 'cpu':
            raise UserError(f'degrade_batch: packed is on {packed.device}; expected a CPU '
                             'tensor (the host groups the rows by it; reading a device would sync)')
        packed = packed.detach().numpy()
    elif not isinstance(packed, np.ndarray):
        raise TypeError(f'degrade_batch: packed is a {type(packed).__name__}; expected a CPU '
                        f'tensor (B, {PARAM_SLOTS})')
    if packed.shape != (gt.shape[0], PARAM_SLOTS):
        raise UserError(f'degrade_batch: packed of shape {tuple(packed.shape)} does not match gt '
                         f'of shape {tuple(gt.shape)}; expected ({gt.shape[0]}, {PARAM_SLOTS})')
    return packed.astype(np.float64, copy=False)


def _check_rows(rows: np.ndarray, h: int, w: int) -> None:
    """Check every packed row as unpack_params would (vectorised per type) and that it fits HxW."""
    types = rows[:, 0]
    bad = ~np.isin(types, np.arange(-1, len(DEGRADATION_TYPES)))
    if bad.any():
        _raise_for_row(rows, int(np.flatnonzero(bad)[0]))
    for type_index, deg_type in enumerate(DEGRADATION_TYPES):
        members = np.flatnonzero(types == type_index)
        if members.size == 0:
            continue
        ok = np.isin(rows[members, 1], np.arange(len(QUANTIZE_MODES)))
        for slot, rule in enumerate(deg._KEYS[deg_type].values(), start=2):
            ok &= _admitted(rule, rows[members, slot])
        if not ok.all():
            _raise_for_row(rows, int(members[~ok][0]))
    # F.interpolate's small side is floor(side * (1 / scale)) in float64.
    for scale in np.unique(rows[types == _SR, 2]):
        if math.floor(min(h, w) * (1 / scale)) < 1:
            i = int(np.flatnonzero((types == _SR) & (rows[:, 2] == scale))[0])
            _raise_for_row(rows, i, f'scale {int(scale)} leaves no pixel of {h}x{w} crops')
    # reflect padding needs pad < side
    too_large = (types == _BLUR) & (rows[:, 2] // 2 >= min(h, w))
    if too_large.any():
        i = int(np.flatnonzero(too_large)[0])
        _raise_for_row(rows, i, f'kernel_size {int(rows[i, 2])} is too large for {h}x{w} crops; '
                                f'expected sides > {int(rows[i, 2]) // 2}')
    if (types == _RAIN).any() and min(h, w) < 2:
        _raise_for_row(rows, int(np.flatnonzero(types == _RAIN)[0]),
                       f'rain needs crops of 2x2 or more, got {h}x{w}')


def _check_field(name: str, field: torch.Tensor | None, shape: tuple[int, ...],
                 device: torch.device) -> None:
    """Check an optional per-sample tensor argument: float, of that shape, on gt's device."""
    if field is None:
        return
    if not isinstance(field, torch.Tensor):
        raise TypeError(f'degrade_batch: {name} is a {type(field).__name__}; expected a tensor of '
                        f'shape {shape}')
    if tuple(field.shape) != shape or not field.is_floating_point():
        raise UserError(f'degrade_batch: {name} of shape {tuple(field.shape)} and dtype '
                         f'{field.dtype} is not valid; expected a float tensor of shape {shape}')
    if field.device != device:
        raise UserError(f"degrade_batch: {name} is on {field.device}; expected gt's device "
                         f'{device}')


def _check_rain_kernels(rows: np.ndarray, kernels: torch.Tensor | None, gt: torch.Tensor) -> None:
    """Check rain_kernels against the rain rows: given, (B, K, K), K odd, K // 2 < the crop side
    and K >= rain_kernel_side of every rain row."""
    rain_rows = np.flatnonzero(rows[:, 0] == _RAIN)
    if kernels is None:
        if rain_rows.size:
            raise UserError(f'degrade_batch: packed row {int(rain_rows[0])} is rain but '
                             'rain_kernels is None; expected (B, K, K) kernels '
                             '(padded_rain_kernel)')
        return
    b, _, h, w = gt.shape
    side = kernels.shape[-1] if isinstance(kernels, torch.Tensor) and kernels.ndim == 3 else 0
    _check_field('rain_kernels', kernels, (b, side, side), gt.device)
    if side % 2 == 0 or side // 2 >= min(h, w):
        raise UserError(f'degrade_batch: rain_kernels side {side} is not valid; expected an odd '
                         f'side with side // 2 < {min(h, w)}, the crop side (reflect padding)')
    lengths = rows[rain_rows, 4]
    short = lengths + (lengths % 2 == 0) > side  # rain_kernel_side, vectorised
    if short.any():
        i = int(rain_rows[short][0])
        _raise_for_row(rows, i, f'length {int(rows[i, 4])} needs rain_kernels of side >= '
                                f'{rain_kernel_side(int(rows[i, 4]))}, got {side}')


def _groups(rows: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The rows to degrade grouped by (type, quantize, sr scale or blur kernel size).

    Returns [(type index, quantize index, row indices)], one entry per group.
    """
    active = np.flatnonzero(rows[:, 0] >= 0)
    types = rows[active, 0]
    sub = np.where((types == _SR) | (types == _BLUR), rows[active, 2], 0)
    keys = np.stack([types, rows[active, 1], sub], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [(int(key[0]), int(key[1]), active[inverse == g]) for g, key in enumerate(unique)]


def degrade_batch(gt: torch.Tensor, packed: torch.Tensor, *,
                  rain_kernels: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                  rain_seeds: torch.Tensor | None = None) -> torch.Tensor:
    """Degrade each row of a batch by its packed params on gt's device: (B, 3, H, W) -> same.

    Args:
        gt: (B, 3, H, W) float32 in [0, 1] (not checked: that would read the device).
        packed: (B, PARAM_SLOTS) float64 tensor on the CPU, pack_params rows (NONE_ROW: keep the row
            as it is); the host groups the rows by it. A numpy array is accepted too.
        rain_kernels: (B, K, K) float on gt's device, K odd (padded_rain_kernel; the rows of other
            types are not read), or None when no row is rain.
        depth: (B, H, W) float on gt's device, larger = farther, read by haze rows and divided by
            each row's maximum; a row whose first value is NaN (a row of NaN) takes the
            vertical-ramp fallback, as every row does with depth None.
        generator: the torch.Generator of gt's device for the noise and rain-seed draws (None: the
            default one); torch's draws, not the per-sample path's numpy ones (module docstring).
        noise: (B, 3, H, W) standard normals to use instead of drawing them (noise rows read).
        rain_seeds: (B, H, W) uniform(0, 256) fields to use instead of drawing them (rain rows
            read).

    Returns:
        A new (B, 3, H, W) float32 tensor in [0, 1]: row b degraded by packed[b], rows of type -1
        copied unchanged.

    Raises:
        TypeError: gt, packed or a field is not a tensor.
        ValueError: naming the argument or the packed row at fault: a shape or dtype mismatch;
            packed not on the CPU; a field or generator on another device than gt; an invalid row
            (unknown type or quantize index, a value out of its range); params that do not fit the
            crop (blur kernel, sr scale); rain rows without rain_kernels or with kernels too small
            for them.
    """
    rows = _host_rows(packed, gt)
    b, _, h, w = gt.shape
    device = gt.device
    _check_rows(rows, h, w)
    _check_field('noise', noise, (b, 3, h, w), device)
    _check_field('rain_seeds', rain_seeds, (b, h, w), device)
    _check_field('depth', depth, (b, h, w), device)
    _check_rain_kernels(rows, rain_kernels, gt)
    if generator is not None and generator.device.type != device.type:
        raise UserError(f"degrade_batch: generator is on {generator.device}; expected gt's device "
                         f'{device}')

    exact = _exact_float32() if device.type == 'cuda' else contextlib.nullcontext()
    with torch.no_grad(), exact:
        out = gt.clone()
        for type_index, quantize, members in _groups(rows):
            index = _to_device(members, device, torch.long)
            x = gt.index_select(0, index)
            group = rows[members]
            n = members.size
            if type_index == _SR:
                y = _sr(x, group)
            elif type_index == _BLUR:
                y = _blur(x, group)
            elif type_index == _NOISE:
                if noise is None:
                    randn = torch.randn((n, 3, h, w), generator=generator, device=device)
                else:
                    randn = noise.index_select(0, index).to(torch.float32)
                y = _noise(x, group, randn, quantize)
            elif type_index == _JPEG:
                y = _jpeg(x, group)
            elif type_index == _RAIN:
                if rain_seeds is None:
                    seeds = torch.rand((n, h, w), generator=generator, device=device) * 256.0
                else:
                    seeds = rain_seeds.index_select(0, index)
                y = _rain(x, group, seeds, rain_kernels.index_select(0, index))
            elif type_index == _HAZE:
                y = _haze(x, group, None if depth is None else depth.index_select(0, index))
            else:
                y = _dark(x, group)
            if not (type_index == _NOISE and quantize == _TRUNCATE):
                y = _finish(y, quantize)
            out.index_copy_(0, index, y)
    return out
