"""Degradation synthesis for the seven MiOIR all-in-one tasks, and the on-the-fly noise of AirNet/PromptIR/TUR.

Every degradation is a pure function of ``(img, params, rng)``: ``img`` is an HxWx3 RGB float32 array in
[0, 1] (or uint8, taken as its value / 255 without scanning it), ``params`` a concrete parameter dict and ``rng`` a
``numpy.random.Generator``, the only source of randomness, so a seed reproduces an output bit for bit. Each function
returns a new HxWx3 float32 array in [0, 1] and leaves its input untouched. The same code synthesises training pairs
on the fly and writes the fixed test sets; data/device_degradations.py applies the same formulas to a batch on the
training device.

A *spec* (from an options YAML) is ``{'type': ..., key: value, ...}`` where a value is either ``[lo, hi]``,
drawn uniformly (integer keys inclusively, odd keys among the odd integers), or a scalar, held fixed:
``{'type': 'noise', 'sigma': 25, 'quantize': 'truncate'}`` is the denoising of the AirNet/PromptIR/TUR settings.
``validate_spec`` fills the keys a spec omits from ``DEFAULT_SPECS``, the MiOIR ranges (Kong et al., "Towards
Effective Multiple-in-One Image Restoration", repo Xiangtaokong/MiOIR, ``data_script/add_MiO_*_degradation.py``):

======  ==============  ============  ==========================================================================
type    key             default       meaning
======  ==============  ============  ==========================================================================
sr      scale (int)     4             bicubic down by 1/scale, bicubic back up to the input size (torch
                                      F.interpolate, as MiOIR's resize_tensor)
blur    kernel_size     [7, 21] odd   side of the isotropic Gaussian kernel (MiOIR's bivariate_Gaussian)
blur    sigma           [1, 3]        its standard deviation, pixels
noise   sigma           [15, 50]      std of additive i.i.d. Gaussian noise per channel, on the 0-255 scale
jpeg    quality (int)   [30, 70]      quality of basicsr's DiffJPEG(differentiable=False), as MiOIR
rain    amount (int)    [50, 99]      streak density: each pixel seeds a streak with probability amount / 25600
rain    width           [3, 11] odd   size of the Gaussian that thickens the streak kernel
rain    length (int)    [20, 40]      side of the square streak kernel (streak ~ length*sqrt(2)*(1 - length/100))
rain    angle           [-45, 44]     streak direction, degrees: 0 vertical, > 0 top leaning left (counter-clockwise)
haze    A               [0.8, 1]      atmospheric light; I = J*t + A*(1 - t), t = exp(-beta * depth)
haze    beta            [0.5, 2.5]    scattering coefficient, depth normalised to [0, 1] by its maximum
dark    gamma           [1, 3]        out = img ** gamma (MiOIR scales nothing else)
(all)   quantize        'round'       how the output becomes 8-bit: 'round' (MiOIR: torch.round of x*255 after
                                      every degradation), 'truncate' (AirNet/PromptIR/TUR's training noise:
                                      np.clip(clean + randn*sigma, 0, 255).astype(np.uint8)), 'none' (float)
======  ==============  ============  ==========================================================================

Formulas (each is pinned against the authors' code, written out in tests/test_degradations.py):

- sr, blur, noise, jpeg, dark: MiOIR's tensor path (``img2tensor`` of the 8-bit image / 255, the degradation,
  ``clamp((x * 255).round(), 0, 255) / 255``): sr by ``F.interpolate(scale_factor=1/scale, mode='bicubic')`` then
  back to (H, W); blur by basicsr's ``filter2D`` (reflect padding) with MiOIR's mesh-grid Gaussian; noise as basicsr's
  ``random_add_gaussian_noise_pt`` (``img + randn * sigma / 255``, clamped, float32); JPEG by basicsr's ``DiffJPEG``
  (a PyTorch JPEG with torch.round; libjpeg differs by 0.2-0.4 dB of input PSNR at quality 30-70); dark by
  ``np.power``.
- noise with ``quantize: truncate``: AirNet/PromptIR/TUR's ``Degradation._add_gaussian_noise`` on the 8-bit patch in
  float64, ``np.clip(clean + randn * sigma, 0, 255).astype(np.uint8)`` (truncation, so the noisy image is on
  average half a level darker than with rounding).
- rain: MiOIR's ``get_noise`` + ``rain_blur``: ``uniform(0, 256)`` per pixel, values below ``256 - amount/100``
  zeroed, a 3x3 pre-blur (centre 8, 4-neighbours 0.1), then ``cv2.filter2D`` with the streak kernel
  ``GaussianBlur(warpAffine(eye(length), getRotationMatrix2D((length/2, length/2), angle - 45, 1 - length/100),
  (length, length)), (width, width), 0)``, ``NORM_MINMAX`` to 0..255, truncated to uint8 and added to every channel.
- haze: MiOIR's ``add_haze`` on the 0-255 scale in float64, ``img * T + A * 255 * (1 - T)``.

Haze depth: MiOIR reads, for every image, a depth map precomputed by a monocular depth network (``depth/*.mat``,
predicted at 1/4 resolution and resized x4) and divides it by its maximum. That needs network weights, so
``depth=None`` here falls back to a deterministic vertical ramp, 1 (far) on the top row to 0 (near) on the
bottom row, the usual outdoor layout of sky above ground. Pass a real depth (larger = farther) when you have
one; it is divided by its maximum as in MiOIR. ``read_depth`` reads one from a ``.npy`` or MiOIR's ``.mat`` file.

What still differs from the MiOIR scripts: MiOIR rounds noise sigma and jpeg quality to integers
(``round(uniform(lo, hi))``, whose end values are half as likely) and blur sigma, gamma, A and beta to two decimals;
here they are continuous or uniform integers. MiOIR crops rain and haze images (not their GT) to multiples of 4 where
this module keeps the size (the pixels it keeps are the same formula). Its randomness comes from Python's and
NumPy's global generators (and torch's for noise), ours from ``rng``, so the same seed does not give MiOIR's files.
MiOIR's prompt/classifier index order is blur, noise, jpeg, rain, haze, dark, sr; ``DEGRADATION_TYPES`` keeps
the order of its data folders and paper (s, b, n, j, r, h, d); task ids come from the options YAML anyway.
"""
from __future__ import annotations

import copy
import difflib
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import filter2D
from torch.nn import functional as F

from basicsr_tur.utils.errors import DataError, UserError

__all__ = [
    'DEFAULT_SPECS', 'DEGRADATION_TYPES', 'QUANTIZE_MODES', 'add_blur', 'add_dark', 'add_haze', 'add_jpeg',
    'add_noise', 'add_rain', 'add_sr', 'apply_degradation', 'check_depth', 'degrade', 'gaussian_kernel',
    'rain_kernel', 'read_depth', 'sample_params', 'validate_spec'
]

DEGRADATION_TYPES: tuple[str, ...] = ('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark')

# How an output becomes 8-bit (see the module docstring); 'round' is MiOIR's, the default.
QUANTIZE_MODES: tuple[str, ...] = ('round', 'truncate', 'none')

DEFAULT_SPECS: dict[str, dict] = {
    'sr': {'type': 'sr', 'scale': 4, 'quantize': 'round'},
    'blur': {'type': 'blur', 'kernel_size': [7, 21], 'sigma': [1.0, 3.0], 'quantize': 'round'},
    'noise': {'type': 'noise', 'sigma': [15.0, 50.0], 'quantize': 'round'},
    'jpeg': {'type': 'jpeg', 'quality': [30, 70], 'quantize': 'round'},
    # MiOIR: value = np.random.randint(50, 100), angle = np.random.randint(-45, 45) (upper ends excluded).
    'rain': {'type': 'rain', 'amount': [50, 99], 'width': [3, 11], 'length': [20, 40], 'angle': [-45.0, 44.0],
             'quantize': 'round'},
    'haze': {'type': 'haze', 'A': [0.8, 1.0], 'beta': [0.5, 2.5], 'quantize': 'round'},
    'dark': {'type': 'dark', 'gamma': [1.0, 3.0], 'quantize': 'round'},
}

# MiOIR keeps a seed where uniform(0, 256) >= 256 - amount / 100, so amount counts seeds per 25600 pixels.
_RAIN_SEED_DENOMINATOR = 25600


@dataclass(frozen=True)
class _Key:
    """How one spec key is typed and bounded: kind is 'float', 'int' or 'odd' (odd integer)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    why: str = ''

    def expected(self) -> str:
        """Describe the accepted values, e.g. 'an odd integer >= 1'."""
        noun = {'float': 'a number', 'int': 'an integer', 'odd': 'an odd integer'}[self.kind]
        if self.low is not None and self.high is not None:
            bounds = f' in {"(" if self.low_open else "["}{_fmt(self.low)}, {_fmt(self.high)}]'
        elif self.low is not None:
            bounds = f' {">" if self.low_open else ">="} {_fmt(self.low)}'
        else:
            bounds = ''
        return noun + bounds + (f' ({self.why})' if self.why else '')

    def admits(self, value: float) -> bool:
        """Whether a number already of the right kind lies within the bounds."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


# Keys per type, in the order sample_params draws them, so YAML key order never changes the numbers drawn.
_KEYS: dict[str, dict[str, _Key]] = {
    'sr': {'scale': _Key('int', 1)},
    'blur': {'kernel_size': _Key('odd', 1), 'sigma': _Key('float', 0, low_open=True)},
    'noise': {'sigma': _Key('float', 0, why='on the 0-255 scale')},
    'jpeg': {'quality': _Key('int', 1, 100)},
    'rain': {
        'amount': _Key('int', 0, _RAIN_SEED_DENOMINATOR, why='streak seeds per 25600 pixels'),
        'width': _Key('odd', 1, why='a Gaussian kernel size'),
        'length': _Key('int', 1, 99, why='the streak, length*sqrt(2)*(1 - length/100) long, vanishes at 100'),
        'angle': _Key('float', -90, 90, why='degrees from vertical'),
    },
    'haze': {'A': _Key('float', 0, 1, why='atmospheric light in image units'), 'beta': _Key('float', 0)},
    'dark': {'gamma': _Key('float', 1, why='gamma below 1 would brighten')},
}


def _fmt(value: float) -> str:
    """Print 1.0 as 1 and keep other numbers as they are."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _number(value: object, key_rule: _Key, where: str, key: str) -> int | float:
    """Check one scalar against its rule and return it as a Python int or float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise UserError(f'{where}: {key}={value!r} is not valid; expected {key_rule.expected()}')
    if key_rule.kind == 'float':
        number: int | float = float(value)
    else:
        if not float(value).is_integer():
            raise UserError(f'{where}: {key}={value!r} is not an integer; expected {key_rule.expected()}')
        number = int(value)
        if key_rule.kind == 'odd' and number % 2 == 0:
            raise UserError(f'{where}: {key}={value!r} is even; expected {key_rule.expected()}')
    if not key_rule.admits(number):
        raise UserError(f'{where}: {key}={value!r} is out of range; expected {key_rule.expected()}')
    return number


def _check_value(value: object, key_rule: _Key, where: str, key: str) -> int | float | list:
    """Check a scalar or a [lo, hi] range and return it normalised (Python numbers, ranges as lists)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise UserError(f'{where}: {key}={list(value)!r} has {len(value)} items; expected a scalar or '
                             f'[lo, hi] with lo and hi {key_rule.expected()}')
        lo, hi = (_number(v, key_rule, where, f'{key}[{i}]') for i, v in enumerate(value))
        if lo > hi:
            raise UserError(f'{where}: {key}={list(value)!r} has lo > hi; expected [lo, hi] with lo <= hi')
        return [lo, hi]
    return _number(value, key_rule, where, key)


def _check_type(spec: object, where: str) -> str:
    """Return spec['type'] after checking that spec is a dict naming a known degradation."""
    if not isinstance(spec, dict):
        raise UserError(f'{where}: expected a dict with a "type" key, got {type(spec).__name__} {spec!r}')
    if 'type' not in spec:
        raise UserError(f'{where}: missing key "type"; expected one of {", ".join(DEGRADATION_TYPES)}')
    deg_type = spec['type']
    if not isinstance(deg_type, str) or deg_type not in _KEYS:
        close = difflib.get_close_matches(str(deg_type), DEGRADATION_TYPES, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise UserError(f'{where}: unknown degradation type {deg_type!r}{hint}; '
                         f'expected one of {", ".join(DEGRADATION_TYPES)}')
    return deg_type


def _check_keys(spec: dict, deg_type: str, where: str) -> None:
    """Reject keys the degradation type does not know, suggesting the closest allowed one."""
    allowed = [*_KEYS[deg_type], 'quantize']
    for key in spec:
        if key != 'type' and key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise UserError(f'{where}: unknown key {key!r} for type {deg_type!r}{hint}; '
                             f'allowed keys: {", ".join(allowed)}')


def _check_quantize(value: object, where: str) -> str:
    """Check a `quantize` value: one of QUANTIZE_MODES."""
    if not isinstance(value, str) or value not in QUANTIZE_MODES:
        raise UserError(f'{where}: quantize={value!r} is not valid; expected one of {", ".join(QUANTIZE_MODES)}')
    return value


def validate_spec(spec: dict, where: str = 'degradation spec') -> dict:
    """Check a spec's type, keys and values and return a new spec merged over DEFAULT_SPECS[type]."""
    deg_type = _check_type(spec, where)
    _check_keys(spec, deg_type, where)
    merged = copy.deepcopy(DEFAULT_SPECS[deg_type])
    for key, key_rule in _KEYS[deg_type].items():
        if key in spec:
            merged[key] = _check_value(spec[key], key_rule, where, key)
    if 'quantize' in spec:
        merged['quantize'] = _check_quantize(spec['quantize'], where)
    return merged


def sample_params(spec: dict, rng: np.random.Generator, checked: bool = False) -> dict:
    """Draw one concrete parameter set from a spec: {'type': 'noise', 'sigma': [15, 50]} -> {..., 'sigma': 31.2}.

    checked: the spec is validate_spec's output already (a dataset validates its specs once, when built), so it is
    not checked again at every sample; the same numbers are drawn either way.
    """
    full = spec if checked else validate_spec(spec)
    params: dict = {'type': full['type']}
    for key, key_rule in _KEYS[full['type']].items():
        value = full[key]
        if not isinstance(value, list):
            params[key] = value
        elif key_rule.kind == 'float':
            params[key] = float(rng.uniform(value[0], value[1]))
        elif key_rule.kind == 'int':
            params[key] = int(rng.integers(value[0], value[1], endpoint=True))
        else:
            # validate_spec made both ends odd, so the odd values are lo, lo + 2, ..., hi.
            params[key] = int(value[0] + 2 * rng.integers(0, (value[1] - value[0]) // 2, endpoint=True))
    params['quantize'] = full['quantize']
    return params


def _concrete(params: dict, deg_type: str) -> dict:
    """Check that params hold one valid scalar per key of deg_type; return them as Python numbers, with `quantize`.

    `quantize` may be omitted (the type's default, DEFAULT_SPECS); every other key is required.
    """
    where = f'{deg_type} params'
    if not isinstance(params, dict):
        raise UserError(f'{where}: expected a dict, got {type(params).__name__} {params!r}')
    if params.get('type', deg_type) != deg_type:
        raise UserError(f'{where}: type={params["type"]!r} given to add_{deg_type}; expected {deg_type!r}')
    _check_keys(params, deg_type, where)
    values = {}
    for key, key_rule in _KEYS[deg_type].items():
        if key not in params:
            raise UserError(f'{where}: missing key {key!r}; expected concrete values for '
                             f'{", ".join(_KEYS[deg_type])} (draw them with sample_params)')
        if isinstance(params[key], (list, tuple)):
            raise UserError(f'{where}: {key}={params[key]!r} is a range; expected one concrete value '
                             '(draw it with sample_params)')
        values[key] = _number(params[key], key_rule, where, key)
    values['quantize'] = _check_quantize(params.get('quantize', DEFAULT_SPECS[deg_type]['quantize']), where)
    return values


def _check_image(img: np.ndarray, where: str) -> np.ndarray:
    """Return img as float32 in [0, 1] after checking it is an HxWx3 array: uint8 (divided by 255, as the datasets'
    to_unit: its type bounds it, so it is not scanned) or float in [0, 1] (scanned for its min and max)."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, 'shape', None)
        raise UserError(f'{where}: image of shape {shape} is not valid; expected an HxWx3 RGB array')
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255)
    if not np.issubdtype(img.dtype, np.floating):
        raise UserError(f'{where}: image dtype {img.dtype} is not valid; expected uint8, or float32 in [0, 1]')
    # A 0-255 float image (cv2.imread followed by astype) would otherwise be silently clipped to white.
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise UserError(f'{where}: image values span [{lo:.4g}, {hi:.4g}]; expected values in [0, 1]')
    return img.astype(np.float32, copy=False)


def _levels(img: np.ndarray) -> np.ndarray:
    """An image in [0, 1] on the 0-255 scale in float64, 8-bit values made exact: (H, W, 3) -> (H, W, 3).

    float32 cannot hold k/255 exactly; values within 1e-3 of a level are taken as that level, so an 8-bit image
    read as float32 gives back its integers (as the authors' uint8 arrays).
    """
    scaled = img.astype(np.float64) * 255.0
    level = np.rint(scaled)
    return np.where(np.abs(scaled - level) < 1e-3, level, scaled)


def _finish(img: np.ndarray, quantize: str) -> np.ndarray:
    """Clip to [0, 1] and make 8-bit as `quantize` says: (H, W, 3) float -> new (H, W, 3) float32.

    'round' is MiOIR's torch.clamp((x * 255).round(), 0, 255) / 255 (float32, half to even like torch.round);
    'truncate' is np.clip(x, 0, 255).astype(np.uint8) on the 0-255 scale; 'none' keeps the float values.
    """
    out = np.clip(img, 0.0, 1.0).astype(np.float32)
    if quantize == 'round':
        return np.rint(out * np.float32(255)) / np.float32(255)
    if quantize == 'truncate':
        return (np.floor(_levels(out)) / 255.0).astype(np.float32)
    return out


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) tensor, as basicsr's img2tensor(...).unsqueeze(0)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _to_array(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 array."""
    return tensor[0].numpy().transpose(1, 2, 0)


def add_sr(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Bicubic x1/scale down then back up to the input size, as MiOIR's resize_tensor: (H, W, 3) -> (H, W, 3).

    F.interpolate(scale_factor=1/scale) floors the small size and maps coordinates with the given factor; the
    second call restores (H, W). rng is unused.
    """
    p = _concrete(params, 'sr')
    img = _check_image(img, 'sr')
    h, w = img.shape[:2]
    with torch.no_grad():
        small = F.interpolate(_to_tensor(img), scale_factor=1 / p['scale'], mode='bicubic')
        out = F.interpolate(small, size=(h, w), mode='bicubic')
    return _finish(_to_array(out), p['quantize'])


def gaussian_kernel(kernel_size: int, sigma: float) -> np.ndarray:
    """Normalised isotropic 2-D Gaussian, MiOIR's bivariate_Gaussian(isotropic=True): (K, K) float64 summing to 1.

    Raises ValueError for an even kernel_size (the grid is centred on a pixel).
    """
    if kernel_size % 2 == 0:
        raise UserError(f'blur: kernel_size={kernel_size} is even; expected an odd integer')
    ax = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    kernel = np.exp(-0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) / sigma ** 2)
    return kernel / kernel.sum()


def add_blur(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Isotropic Gaussian blur by basicsr's filter2D (reflect padding), as MiOIR: (H, W, 3) -> (H, W, 3).

    Raises ValueError when a side of the image is not larger than half the kernel (reflect padding needs it).
    rng is unused.
    """
    p = _concrete(params, 'blur')
    img = _check_image(img, 'blur')
    if min(img.shape[:2]) <= p['kernel_size'] // 2:
        raise UserError(f'blur: image of {img.shape[0]}x{img.shape[1]} is too small for kernel_size '
                         f'{p["kernel_size"]}; expected sides > {p["kernel_size"] // 2}')
    kernel = torch.from_numpy(gaussian_kernel(p['kernel_size'], p['sigma']).astype(np.float32))[None]
    with torch.no_grad():
        out = filter2D(_to_tensor(img), kernel)
    return _finish(_to_array(out), p['quantize'])


def add_noise(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Additive i.i.d. Gaussian noise of std sigma (0-255 scale) per channel, clipped: (H, W, 3) -> (H, W, 3).

    quantize 'truncate' follows AirNet/PromptIR/TUR (float64 on the 8-bit patch, then uint8 truncation); the other
    modes follow MiOIR's basicsr random_add_gaussian_noise_pt (float32, img + randn * sigma / 255, clamped).
    """
    p = _concrete(params, 'noise')
    img = _check_image(img, 'noise')
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    if p['quantize'] == 'truncate':
        noisy = np.clip(_levels(img) + noise.astype(np.float64) * p['sigma'], 0, 255)
        return (np.floor(noisy) / 255.0).astype(np.float32)
    # torch's order of operations: (randn * sigma) / 255, all float32.
    return _finish(img + noise * np.float32(p['sigma']) / np.float32(255), p['quantize'])


_JPEG: list[DiffJPEG] = []  # one DiffJPEG per process, built on first use (its tables are constants)


def add_jpeg(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip by basicsr's DiffJPEG(differentiable=False), as MiOIR: (H, W, 3) -> (H, W, 3); rng unused.

    DiffJPEG pads to multiples of 16 with zeros, compresses with torch.round, and crops back.
    """
    p = _concrete(params, 'jpeg')
    img = _check_image(img, 'jpeg')
    if not _JPEG:
        _JPEG.append(DiffJPEG(differentiable=False))
    with torch.no_grad():
        out = _JPEG[0](torch.clamp(_to_tensor(img), 0, 1), quality=p['quality'])
    return _finish(_to_array(out), p['quantize'])


def rain_kernel(length: int, width: int, angle: float) -> np.ndarray:
    """MiOIR's streak kernel: the length x length diagonal rotated and shrunk, then thickened: (L, L) float64.

    The identity matrix (a '\\' line) is rotated by angle - 45 degrees about (length/2, length/2) and scaled by
    1 - length/100 (cv2.getRotationMatrix2D + warpAffine into the same L x L box), then Gaussian-blurred with a
    width x width window; angle 0 gives a vertical streak, angle > 0 leans its top to the left.
    """
    rotation = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
    line = cv2.warpAffine(np.eye(length), rotation, (length, length))
    return cv2.GaussianBlur(line, (width, width), 0)


# MiOIR's 3x3 pre-blur of the streak seeds (get_noise).
_SEED_BLUR = np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]])


def add_rain(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Add rain streaks (the same 8-bit layer on all channels), MiOIR's add_rain: (H, W, 3) -> (H, W, 3)."""
    p = _concrete(params, 'rain')
    img = _check_image(img, 'rain')
    h, w = img.shape[:2]
    seeds = rng.uniform(0, 256, (h, w))
    seeds[seeds < 256 - p['amount'] * 0.01] = 0
    seeds = cv2.filter2D(seeds, -1, _SEED_BLUR)
    streaks = cv2.filter2D(seeds, -1, rain_kernel(p['length'], p['width'], p['angle']))
    # The brightest overlap of streaks becomes 255 (NORM_MINMAX), then uint8 truncation, as MiOIR.
    streaks = cv2.normalize(streaks, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    layer = (streaks.astype(np.float32) / np.float32(255))[..., None]
    return _finish(img + layer, p['quantize'])


def read_depth(path: str, shape: tuple[int, int], resize: bool = False, image: str = '') -> np.ndarray:
    """The depth map (H, W) float32 of an image (larger = farther; haze divides it by its maximum) from `path`: a 2-D
    numeric `.npy`, or MiOIR's `.mat` (its 'data_obj', predicted at 1/4 of the image size).

    shape: the image's (H, W). A map of another size is resized to it when `resize` (bilinearly, as MiOIR's cv2.resize
    of its quarter-size prediction), else refused. The whole map is checked (not only the crop a sample uses). Raises
    ValueError naming `path` (and `image`, the image it belongs to, if given) for a file that cannot be read, is not
    a 2-D numeric array, has another size (resize=False), or holds non-finite or negative values.
    """
    mat = not path.endswith('.npy')
    try:
        if mat:
            from scipy.io import loadmat  # scipy only for MiOIR's .mat maps
            depth = loadmat(path)['data_obj']
        else:
            depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError) as err:
        what = "a .mat file holding 'data_obj'" if mat else 'a .npy array'
        raise UserError(f'depth map {path}: cannot read it as {what} ({err})') from None
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise UserError(f'depth map {path}: expected a 2-D numeric array, got {depth.dtype} of shape {depth.shape}')
    depth = depth.astype(np.float32)
    if depth.shape != tuple(shape):
        if not resize:
            its_image = f'its image {image}' if image else 'its image'
            raise UserError(f'depth map {path} is {depth.shape[0]}x{depth.shape[1]}, {its_image} is '
                             f'{shape[0]}x{shape[1]}')
        depth = cv2.resize(depth, (shape[1], shape[0]))  # bilinear, cv2's default
    finite = np.isfinite(depth)
    if not finite.all():
        raise DataError(f'depth map {path} has {int((~finite).sum())} non-finite values (NaN or Inf)')
    if depth.min() < 0:
        raise DataError(f'depth map {path} has negative values (min {float(depth.min()):.4g}); expected >= 0')
    return depth


def _normalised_depth(depth: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Check an (H, W) depth (larger = farther) and divide it by its maximum, as MiOIR does: -> (H, W) in [0, 1]."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != tuple(shape[:2]):
        raise UserError(f'haze: depth shape {depth.shape} does not match image shape {tuple(shape)}; '
                         f'expected {tuple(shape[:2])}')
    if not np.all(np.isfinite(depth)) or float(depth.min()) < 0 or float(depth.max()) <= 0:
        raise UserError(f'haze: depth spans [{float(depth.min()):.4g}, {float(depth.max()):.4g}]; expected finite '
                         'values >= 0 with a positive maximum (larger = farther)')
    return depth / depth.max()


def check_depth(depth: np.ndarray, shape: tuple[int, ...]) -> None:
    """Check the (H, W) depth crop of an image of `shape` as add_haze would (ValueError when its size differs or it
    is not finite, >= 0, with a positive maximum), for the workers of degrade_on: device, which ship it unscaled."""
    _normalised_depth(depth, shape)


def _fallback_depth(h: int, w: int) -> np.ndarray:
    """Vertical ramp used when no depth is given: (H, W), 1 on the top row (far) to 0 on the bottom row (near)."""
    column = np.linspace(1.0, 0.0, h) if h > 1 else np.ones(1)
    return np.repeat(column[:, None], w, axis=1)


def add_haze(img: np.ndarray, params: dict, rng: np.random.Generator, depth: np.ndarray | None = None) -> np.ndarray:
    """Atmospheric scattering I = J*t + A*(1 - t), t = exp(-beta*depth/max(depth)): (H, W, 3), depth (H, W).

    Computed as MiOIR's add_haze, on the 0-255 scale in float64. Without depth, a vertical ramp from 1 at the top
    to 0 at the bottom stands in for the network-predicted depth MiOIR loads from disk. rng is unused.
    """
    p = _concrete(params, 'haze')
    img = _check_image(img, 'haze')
    h, w = img.shape[:2]
    d = _fallback_depth(h, w) if depth is None else _normalised_depth(depth, img.shape)
    t = np.exp(-p['beta'] * d)[..., None]
    hazy = _levels(img) * t + p['A'] * 255 * (1 - t)
    # MiOIR's img2tensor: float64 -> float32, then / 255.
    return _finish(hazy.astype(np.float32) / np.float32(255), p['quantize'])


def add_dark(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Low light by gamma, out = img ** gamma with no other scaling (as MiOIR): (H, W, 3) -> (H, W, 3); rng unused."""
    p = _concrete(params, 'dark')
    img = _check_image(img, 'dark')
    return _finish(np.power(img, p['gamma']), p['quantize'])


_APPLY: dict[str, Callable[..., np.ndarray]] = {
    'sr': add_sr, 'blur': add_blur, 'noise': add_noise, 'jpeg': add_jpeg, 'rain': add_rain, 'haze': add_haze,
    'dark': add_dark,
}


def apply_degradation(img: np.ndarray, params: dict, rng: np.random.Generator,
                      depth: np.ndarray | None = None) -> np.ndarray:
    """Apply concrete params (from sample_params) to img: (H, W, 3) -> (H, W, 3); depth (H, W) is used by haze only."""
    deg_type = _check_type(params, 'degradation params')
    if deg_type == 'haze':
        return add_haze(img, params, rng, depth)
    return _APPLY[deg_type](img, params, rng)


def degrade(img: np.ndarray, spec: dict, rng: np.random.Generator,
            depth: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Sample params from spec, then apply them: (H, W, 3) -> ((H, W, 3) degraded image, concrete params)."""
    params = sample_params(spec, rng)
    return apply_degradation(img, params, rng, depth), params
