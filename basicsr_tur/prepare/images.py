"""Image jobs of the test sets, and the worker pool that runs every image job of a setting.

Test images are cropped or resized as the authors do before scoring (crop16: AirNet/PromptIR's crop_img(base=16);
resize16: TransWeather's ValData) and BSD68 is noised once. A job is a top-level function of one argument, so that a
worker pool can pickle it; every synthesized image draws from its own generator (rng_for), so the files are the same
whatever the number of workers.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from basicsr_tur.data.data_util import write_png
from basicsr_tur.data.degradations import degrade
from basicsr_tur.prepare.plan import PrepareError

# AirNet/PromptIR's DenoiseTestDataset: np.clip(clean + randn * sigma, 0, 255).astype(np.uint8) on the cropped image.
TEST_NOISE = {'type': 'noise', 'quantize': 'truncate'}


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """Generator of one synthesized file: a function of the seed and its keys (dataset, task, name) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(zlib.crc32(k.encode()) for k in keys)]))


def read_rgb(path: str) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3). Raises PrepareError naming the file when it cannot be read."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise PrepareError(f'cannot read image {path} (missing, corrupt or not an image)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop16(img: np.ndarray) -> np.ndarray:
    """Centre crop to multiples of 16, as AirNet/PromptIR's crop_img(base=16)."""
    h, w = img.shape[:2]
    ch, cw = h % 16, w % 16
    return img[ch // 2:h - ch + ch // 2, cw // 2:w - cw + cw // 2]


def transweather_size(w: int, h: int) -> tuple[int, int]:
    """(width, height) TransWeather's ValData resizes a w x h test image to: long side <= 1024, sides x16 (ceil)."""
    if h > w and h > 1024:
        w, h = int(math.ceil(w * 1024 / h)), 1024
    elif h <= w and w > 1024:
        w, h = 1024, int(math.ceil(h * 1024 / w))
    return int(16 * math.ceil(w / 16.0)), int(16 * math.ceil(h / 16.0))


def resize16(img: np.ndarray) -> np.ndarray:
    """Resize as TransWeather's ValData (PIL ANTIALIAS, i.e. Lanczos); sizes already right are kept as they are."""
    h, w = img.shape[:2]
    size = transweather_size(w, h)
    return img if size == (w, h) else np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS))


def job_noisy(job: tuple) -> None:
    """Write one noisy test pair cropped to multiples of 16: (clean path, LQ path, GT path or '', sigma, keys)."""
    src, lq_dst, gt_dst, sigma, seed, keys = job
    img = crop16(read_rgb(src))
    if gt_dst:
        write_png(gt_dst, img)
    noisy, _ = degrade(img.astype(np.float32) / 255.0, dict(TEST_NOISE, sigma=sigma), rng_for(seed, *keys))
    write_png(lq_dst, noisy)


def job_transform(job: tuple) -> None:
    """Write a test pair cropped (crop16) or resized (resize16): (kind, LQ src, GT src, LQ dst, GT dst or '')."""
    kind, lq_src, gt_src, lq_dst, gt_dst = job
    fn = crop16 if kind == 'crop16' else resize16
    write_png(lq_dst, fn(read_rgb(lq_src)))
    if gt_dst:
        write_png(gt_dst, fn(read_rgb(gt_src)))


def run_jobs(fn: Callable[[tuple], object], jobs: list[tuple], workers: int, desc: str) -> list:
    """Run fn over jobs in order, in a pool of `workers` processes (in this process when workers <= 1)."""
    if not jobs:
        return []
    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit='image')]
    with Pool(workers) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit='image'))
