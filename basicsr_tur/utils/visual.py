"""Pictures a person looks at: TUR's σ maps colour-mapped with their scale, labelled tiles, side-by-side grids.

Images are 8-bit BGR (H, W, 3) numpy arrays, OpenCV's layout, as written by utils/files.write_image. σ maps are
float (H, W) arrays on the restored image's intensity scale ([0, 1]); they are colour-mapped with matplotlib's
viridis (perceptually uniform, readable in grey and by colour-blind readers).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

LABEL_H, GAP = 22, 4
_ROWS = 64  # rows of a σ map colour-mapped at a time
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


@functools.lru_cache(maxsize=1)
def _viridis_bgr() -> np.ndarray:
    """matplotlib's viridis lookup table as 8-bit BGR, (N + 1, 3): its N colours, then its 'bad'
    colour (NaN's)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import colormaps
    cmap = colormaps['viridis']
    # Integers index the table itself.
    rgb = np.concatenate([cmap(np.arange(cmap.N)), [cmap.get_bad()]])[:, :3]
    return np.ascontiguousarray((rgb * 255).round().astype(np.uint8)[:, ::-1])


def _viridis(values: np.ndarray) -> np.ndarray:
    """8-bit BGR colours of values in [0, 1] (any shape), by matplotlib's viridis.

    Each value picks an entry of the lookup table as matplotlib's Colormap does (value * N
    truncated, 1 -> the last entry, NaN -> the 'bad' colour), and the table is made 8-bit once: the
    same bytes as converting matplotlib's float RGBA image, without that (..., 4) float64 array
    (colour_sigma of a 12-megapixel σ map: 2.4 s that way, 0.2 s this way)."""
    table = _viridis_bgr()
    n = len(table) - 1
    index = np.clip(values, 0, 1)
    index *= n
    index[index == n] = n - 1
    bad = np.isnan(index)
    with np.errstate(invalid='ignore'):
        index = index.astype(np.intp)
    index[bad] = n
    return table[index]


def sigma_scale(sigmas: list[np.ndarray]) -> tuple[float, float]:
    """(minimum, maximum) over σ maps: one colour scale for maps that are to be compared by colour."""
    return min(float(m.min()) for m in sigmas), max(float(m.max()) for m in sigmas)


def display_range(sigma: np.ndarray, percent: float = 1.0, border: int = 8) -> tuple[float, float]:
    """(lo, hi) = the `percent` and 100 - `percent` percentiles of a σ map without its outer `border` pixels: the
    colour scale of a single map, so that a few extreme pixels do not flatten the rest into one colour. The border
    is left out because the head's σ is largest where the network's zero padding is, a ring that is more than 1 %
    of a small image's pixels; its pixels are drawn clipped to the scale."""
    h, w = sigma.shape[:2]
    border = min(border, (h - 1) // 4, (w - 1) // 4)
    lo, hi = np.percentile(sigma[border:h - border, border:w - border], [percent, 100 - percent])
    return float(lo), float(max(hi, lo + 1e-12))


def colour_sigma(sigma: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """An (H, W) σ map as an 8-bit BGR picture, lo -> dark violet, hi -> yellow (viridis)."""
    out = np.empty((*sigma.shape, 3), np.uint8)
    scale = max(hi - lo, 1e-12)
    for top in range(0, sigma.shape[0], _ROWS):  # in bands: no image-sized float64 arrays
        out[top:top + _ROWS] = _viridis((sigma[top:top + _ROWS].astype(np.float64) - lo) / scale)
    return out


def sigma_tiles(sigmas: list[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """(8-bit BGR colour maps, 'lo-hi' label) of (H, W) σ maps on one scale: their common minimum and maximum."""
    lo, hi = sigma_scale(sigmas)
    return [colour_sigma(m, lo, hi) for m in sigmas], f'{lo:.3f}-{hi:.3f}'


def with_colour_bar(picture: np.ndarray, lo: float, hi: float, width: int = 16, clipped: bool = False) -> np.ndarray:
    """picture (8-bit BGR) with a vertical viridis colour bar on its right, labelled with lo (bottom) and hi (top);
    clipped: values beyond them were clipped to the bar's ends (labels '<=lo', '>=hi')."""
    h = picture.shape[0]
    bar = _viridis(np.linspace(1, 0, h)[:, None].repeat(width, 1))
    labels = np.full((h, 72, 3), 255, np.uint8)
    marks = ('>=', '<=') if clipped else ('', '')
    for text, y in ((f'{marks[0]}{hi:.4g}', 14), (f'{marks[1]}{lo:.4g}', h - 5)):
        cv2.putText(labels, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, BLACK, 1, cv2.LINE_AA)
    gap = np.full((h, GAP, 3), 255, np.uint8)
    return np.concatenate([picture, gap, bar, labels], axis=1)


# round(v / 257) of every 16-bit value v: never a tie (2v = 257 (2k + 1) has no integer solution),
# so it is floor((2v + 257) / 514), in integers.
_EIGHT_BITS = ((np.arange(65536, dtype=np.uint32) * 2 + 257) // 514).astype(np.uint8)


def eight_bits(img: np.ndarray) -> np.ndarray:
    """A 16-bit image as 8 bits, each value v -> round(v / 257) (65535 -> 255), by a table: no
    float copy."""
    return _EIGHT_BITS[img]


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any image this project reads (8/16-bit, gray, BGR, BGRA) as 8-bit BGR for a picture (alpha dropped)."""
    if img.dtype == np.uint16:
        img = eight_bits(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[..., :3])


def labelled(img: np.ndarray, text: str) -> np.ndarray:
    """img (8-bit BGR) with a white strip above it holding `text`."""
    strip = np.full((LABEL_H, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (3, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BLACK, 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def hstack(tiles: list[np.ndarray]) -> np.ndarray:
    """8-bit BGR tiles side by side, GAP white pixels apart, bottom-padded with white to the tallest."""
    height = max(t.shape[0] for t in tiles)
    out = []
    for i, tile in enumerate(tiles):
        if i:
            out.append(np.full((height, GAP, 3), 255, np.uint8))
        out.append(np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=1)


def fit_height(img: np.ndarray, height: int) -> np.ndarray:
    """img scaled (area interpolation) so that it is `height` pixels tall, unless it is already no taller."""
    if img.shape[0] <= height:
        return img
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
