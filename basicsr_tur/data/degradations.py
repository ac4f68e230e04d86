"""Degradation synthesis for the seven MiOIR all-in-one tasks.

Every degradation is a pure function of ``(img, params, rng)``: ``img`` is an HxWx3 RGB float32 array in
[0, 1], ``params`` a concrete parameter dict and ``rng`` a ``numpy.random.Generator``, the only source of
randomness, so a seed reproduces an output bit for bit. Each function returns a new HxWx3 float32 array
clipped to [0, 1] and leaves its input untouched. The same code synthesises training pairs on the fly and
writes the fixed test sets.

A *spec* (from an options YAML) is ``{'type': ..., key: value, ...}`` where a value is either ``[lo, hi]``,
drawn uniformly (integer keys inclusively, odd keys among the odd integers), or a scalar, held fixed:
``{'type': 'noise', 'sigma': 25}`` is the fixed-sigma denoising of the AirNet/PromptIR 3-task setting.
``validate_spec`` fills the keys a spec omits from ``DEFAULT_SPECS``, the MiOIR ranges (Kong et al., "Towards
Effective Multiple-in-One Image Restoration", repo Xiangtaokong/MiOIR, ``data_script/add_MiO_*_degradation.py``):

======  ==============  ============  ==========================================================================
type    key             default       meaning
======  ==============  ============  ==========================================================================
sr      scale (int)     4             bicubic down by 1/scale, bicubic back up to the input size (cv2 INTER_CUBIC)
blur    kernel_size     [7, 21] odd   side of the isotropic Gaussian kernel
blur    sigma           [1, 3]        its standard deviation, pixels
noise   sigma           [15, 50]      std of additive i.i.d. Gaussian noise per channel, on the 0-255 scale
jpeg    quality (int)   [30, 70]      OpenCV (libjpeg) quality of one encode/decode round trip
rain    amount (int)    [50, 100]     streak density: each pixel seeds a streak with probability amount / 25600
rain    width           [3, 11] odd   size of the Gaussian that thickens the streak kernel
rain    length (int)    [20, 40]      side of the square streak kernel (streak ~ length*sqrt(2)*(1 - length/100))
rain    angle           [-45, 45]     streak direction, degrees: 0 vertical, > 0 top leaning left (counter-clockwise)
haze    A               [0.8, 1]      atmospheric light; I = J*t + A*(1 - t), t = exp(-beta * depth)
haze    beta            [0.5, 2.5]    scattering coefficient, depth normalised to [0, 1] by its maximum
dark    gamma           [1, 3]        out = img ** gamma (MiOIR scales nothing else)
======  ==============  ============  ==========================================================================

Rain follows MiOIR's recipe: a sparse seed map (pixel kept when ``uniform(0, 256) >= 256 - amount/100``, i.e. with
probability amount/25600, about 8 to 16 streaks in a 64x64 image at the defaults), filtered with a rotated line
kernel thickened by a Gaussian, min-max normalised to [0, 1] over the image and added to every channel.

Haze depth: MiOIR reads, for every image, a depth map precomputed by a monocular depth network (``depth/*.mat``,
predicted at 1/4 resolution and resized x4) and divides it by its maximum. That needs network weights, so
``depth=None`` here falls back to a deterministic vertical ramp, 1 (far) on the top row to 0 (near) on the
bottom row, the usual outdoor layout of sky above ground. Pass a real depth (larger = farther) when you have
one; it is divided by its maximum as in MiOIR.

Differences from the MiOIR scripts (the ranges above are this project's spec): MiOIR rounds noise sigma and jpeg
quality to integers and blur sigma, gamma, A and beta to two decimals, and draws rain ``amount`` in 50..99 and
``angle`` as an integer in -45..44; here they are continuous or inclusive. MiOIR compresses with basicsr's
DiffJPEG (a PyTorch JPEG) where this module uses libjpeg through OpenCV, crops rain and haze images to multiples
of 4 where this module keeps the size, and quantises every output to 8 bits where this module returns float32.
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

__all__ = [
    'DEFAULT_SPECS', 'DEGRADATION_TYPES', 'add_blur', 'add_dark', 'add_haze', 'add_jpeg', 'add_noise', 'add_rain',
    'add_sr', 'apply_degradation', 'degrade', 'sample_params', 'validate_spec'
]

DEGRADATION_TYPES: tuple[str, ...] = ('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark')

DEFAULT_SPECS: dict[str, dict] = {
    'sr': {'type': 'sr', 'scale': 4},
    'blur': {'type': 'blur', 'kernel_size': [7, 21], 'sigma': [1.0, 3.0]},
    'noise': {'type': 'noise', 'sigma': [15.0, 50.0]},
    'jpeg': {'type': 'jpeg', 'quality': [30, 70]},
    'rain': {'type': 'rain', 'amount': [50, 100], 'width': [3, 11], 'length': [20, 40], 'angle': [-45.0, 45.0]},
    'haze': {'type': 'haze', 'A': [0.8, 1.0], 'beta': [0.5, 2.5]},
    'dark': {'type': 'dark', 'gamma': [1.0, 3.0]},
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
        raise ValueError(f'{where}: {key}={value!r} is not valid; expected {key_rule.expected()}')
    if key_rule.kind == 'float':
        number: int | float = float(value)
    else:
        if not float(value).is_integer():
            raise ValueError(f'{where}: {key}={value!r} is not an integer; expected {key_rule.expected()}')
        number = int(value)
        if key_rule.kind == 'odd' and number % 2 == 0:
            raise ValueError(f'{where}: {key}={value!r} is even; expected {key_rule.expected()}')
    if not key_rule.admits(number):
        raise ValueError(f'{where}: {key}={value!r} is out of range; expected {key_rule.expected()}')
    return number


def _check_value(value: object, key_rule: _Key, where: str, key: str) -> int | float | list:
    """Check a scalar or a [lo, hi] range and return it normalised (Python numbers, ranges as lists)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f'{where}: {key}={list(value)!r} has {len(value)} items; expected a scalar or '
                             f'[lo, hi] with lo and hi {key_rule.expected()}')
        lo, hi = (_number(v, key_rule, where, f'{key}[{i}]') for i, v in enumerate(value))
        if lo > hi:
            raise ValueError(f'{where}: {key}={list(value)!r} has lo > hi; expected [lo, hi] with lo <= hi')
        return [lo, hi]
    return _number(value, key_rule, where, key)


def _check_type(spec: object, where: str) -> str:
    """Return spec['type'] after checking that spec is a dict naming a known degradation."""
    if not isinstance(spec, dict):
        raise TypeError(f'{where}: expected a dict with a "type" key, got {type(spec).__name__} {spec!r}')
    if 'type' not in spec:
        raise ValueError(f'{where}: missing key "type"; expected one of {", ".join(DEGRADATION_TYPES)}')
    deg_type = spec['type']
    if not isinstance(deg_type, str) or deg_type not in _KEYS:
        close = difflib.get_close_matches(str(deg_type), DEGRADATION_TYPES, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(f'{where}: unknown degradation type {deg_type!r}{hint}; '
                         f'expected one of {", ".join(DEGRADATION_TYPES)}')
    return deg_type


def _check_keys(spec: dict, deg_type: str, where: str) -> None:
    """Reject keys the degradation type does not know, suggesting the closest allowed one."""
    allowed = _KEYS[deg_type]
    for key in spec:
        if key != 'type' and key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise ValueError(f'{where}: unknown key {key!r} for type {deg_type!r}{hint}; '
                             f'allowed keys: {", ".join(allowed)}')


def validate_spec(spec: dict, where: str = 'degradation spec') -> dict:
    """Check a spec's type, keys and values and return a new spec merged over DEFAULT_SPECS[type]."""
    deg_type = _check_type(spec, where)
    _check_keys(spec, deg_type, where)
    merged = copy.deepcopy(DEFAULT_SPECS[deg_type])
    for key, key_rule in _KEYS[deg_type].items():
        if key in spec:
            merged[key] = _check_value(spec[key], key_rule, where, key)
    return merged


def sample_params(spec: dict, rng: np.random.Generator) -> dict:
    """Draw one concrete parameter set from a spec: {'type': 'noise', 'sigma': [15, 50]} -> {..., 'sigma': 31.2}."""
    full = validate_spec(spec)
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
    return params


def _concrete(params: dict, deg_type: str) -> dict:
    """Check that params hold one valid scalar per key of deg_type and return them as Python numbers."""
    where = f'{deg_type} params'
    if not isinstance(params, dict):
        raise TypeError(f'{where}: expected a dict, got {type(params).__name__} {params!r}')
    if params.get('type', deg_type) != deg_type:
        raise ValueError(f'{where}: type={params["type"]!r} given to add_{deg_type}; expected {deg_type!r}')
    _check_keys(params, deg_type, where)
    values = {}
    for key, key_rule in _KEYS[deg_type].items():
        if key not in params:
            raise ValueError(f'{where}: missing key {key!r}; expected concrete values for '
                             f'{", ".join(_KEYS[deg_type])} (draw them with sample_params)')
        if isinstance(params[key], (list, tuple)):
            raise TypeError(f'{where}: {key}={params[key]!r} is a range; expected one concrete value '
                             '(draw it with sample_params)')
        values[key] = _number(params[key], key_rule, where, key)
    return values


def _check_image(img: np.ndarray, where: str) -> np.ndarray:
    """Return img as float32 after checking it is an HxWx3 float array in [0, 1]."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, 'shape', None)
        raise ValueError(f'{where}: image of shape {shape} is not valid; expected an HxWx3 RGB array')
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f'{where}: image dtype {img.dtype} is not valid; expected float32 in [0, 1]')
    # A 0-255 float image (cv2.imread followed by astype) would otherwise be silently clipped to white.
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f'{where}: image values span [{lo:.4g}, {hi:.4g}]; expected values in [0, 1]')
    return img.astype(np.float32, copy=False)


def _finish(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] as float32 (always a new array)."""
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def add_sr(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Bicubic x1/scale down then back up to the input size: (H, W, 3) -> (H, W, 3); rng unused."""
    scale = _concrete(params, 'sr')['scale']
    img = _check_image(img, 'sr')
    h, w = img.shape[:2]
    # Floor, as F.interpolate(scale_factor=1/scale) does in MiOIR; the upsample restores sizes not divisible by it.
    small = cv2.resize(img, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_CUBIC)
    return _finish(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))


def _gaussian_kernel(kernel_size: int, sigma: float) -> np.ndarray:
    """Normalised isotropic 2-D Gaussian: (kernel_size, kernel_size) float32 summing to 1."""
    ax = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    kernel = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def add_blur(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Isotropic Gaussian blur: (H, W, 3) -> (H, W, 3); rng unused."""
    p = _concrete(params, 'blur')
    img = _check_image(img, 'blur')
    kernel = _gaussian_kernel(p['kernel_size'], p['sigma'])
    # REFLECT_101 is torch's 'reflect' padding, which basicsr's filter2D (used by MiOIR) applies.
    return _finish(cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101))


def add_noise(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Additive i.i.d. Gaussian noise of std sigma/255 per channel, clipped: (H, W, 3) -> (H, W, 3)."""
    sigma = _concrete(params, 'noise')['sigma']
    img = _check_image(img, 'noise')
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return _finish(img + noise)


def add_jpeg(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """One 8-bit JPEG encode/decode round trip at the given quality: (H, W, 3) -> (H, W, 3); rng unused."""
    quality = _concrete(params, 'jpeg')['quality']
    img = _check_image(img, 'jpeg')
    bgr = np.ascontiguousarray(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)[..., ::-1])
    ok, buffer = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f'jpeg: cv2.imencode failed for an image of shape {img.shape} at quality {quality}')
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    return _finish(decoded[..., ::-1].astype(np.float32) / 255.0)


def _streak_kernel(length: int, width: int, angle: float) -> np.ndarray:
    """Kernel of one rain streak: a rotated line thickened by a Gaussian, (K, K) float64 with K >= length."""
    # MiOIR shrinks the length x length diagonal by (1 - length/100) and clips it to the length x length box.
    theta = math.radians(angle)
    direction = np.array([math.sin(theta), math.cos(theta)])  # (x, y) with y pointing down: > 0 leans '\'
    half = min(length * math.sqrt(2) * (1 - length / 100) / 2, length / 2 / max(abs(direction[0]), abs(direction[1])))
    # An odd canvas centres the line on a pixel; the margin keeps the thickening from folding back at the edges.
    size = length + (length + 1) % 2 + 2 * (width // 2)
    centre = (size - 1) / 2
    # Splat densely sampled points of the segment bilinearly, so the line is anti-aliased at any angle.
    t = np.linspace(-half, half, max(2, math.ceil(8 * half) + 1))
    x, y = centre + t * direction[0], centre + t * direction[1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((size, size), np.float64)
    step = 2 * half / (len(t) - 1)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
        np.add.at(kernel, (ys, xs), weight * step)
    return cv2.GaussianBlur(kernel, (width, width), 0)


def add_rain(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Add bright rain streaks (same on all channels), MiOIR style: (H, W, 3) -> (H, W, 3)."""
    p = _concrete(params, 'rain')
    img = _check_image(img, 'rain')
    h, w = img.shape[:2]
    seeds = (rng.random((h, w)) < p['amount'] / _RAIN_SEED_DENOMINATOR).astype(np.float64)
    # MiOIR's 3x3 pre-blur of the seeds (centre 8, 4-neighbours 0.1) changes a seed's footprint by about 1%,
    # below what min-max normalisation and 8-bit output preserve, so it is left out.
    streaks = cv2.filter2D(seeds, -1, _streak_kernel(p['length'], p['width'], p['angle']),
                           borderType=cv2.BORDER_REFLECT_101)
    lo, hi = float(streaks.min()), float(streaks.max())
    # The brightest overlap of streaks becomes 1, as MiOIR's NORM_MINMAX to 0..255 does.
    rain = (streaks - lo) / (hi - lo) if hi > lo else np.zeros_like(streaks)
    return _finish(img + rain.astype(np.float32)[..., None])


def _normalised_depth(depth: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Check an (H, W) depth (larger = farther) and divide it by its maximum, as MiOIR does: -> (H, W) in [0, 1]."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != tuple(shape[:2]):
        raise ValueError(f'haze: depth shape {depth.shape} does not match image shape {tuple(shape)}; '
                         f'expected {tuple(shape[:2])}')
    if not np.all(np.isfinite(depth)) or float(depth.min()) < 0 or float(depth.max()) <= 0:
        raise ValueError(f'haze: depth spans [{float(depth.min()):.4g}, {float(depth.max()):.4g}]; expected finite '
                         'values >= 0 with a positive maximum (larger = farther)')
    return depth / depth.max()


def _fallback_depth(h: int, w: int) -> np.ndarray:
    """Vertical ramp used when no depth is given: (H, W), 1 on the top row (far) to 0 on the bottom row (near)."""
    column = np.linspace(1.0, 0.0, h) if h > 1 else np.ones(1)
    return np.repeat(column[:, None], w, axis=1)


def add_haze(img: np.ndarray, params: dict, rng: np.random.Generator, depth: np.ndarray | None = None) -> np.ndarray:
    """Atmospheric scattering I = J*t + A*(1 - t), t = exp(-beta*depth/max(depth)): (H, W, 3), depth (H, W).

    Without depth, a vertical ramp from 1 at the top to 0 at the bottom stands in for the network-predicted depth
    MiOIR loads from disk. rng is unused.
    """
    p = _concrete(params, 'haze')
    img = _check_image(img, 'haze')
    h, w = img.shape[:2]
    d = _fallback_depth(h, w) if depth is None else _normalised_depth(depth, img.shape)
    t = np.exp(-p['beta'] * d).astype(np.float32)[..., None]
    return _finish(img * t + np.float32(p['A']) * (1 - t))


def add_dark(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Low light by gamma, out = img ** gamma with no other scaling (as MiOIR): (H, W, 3) -> (H, W, 3); rng unused."""
    gamma = _concrete(params, 'dark')['gamma']
    img = _check_image(img, 'dark')
    return _finish(np.power(img, np.float32(gamma)))


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
