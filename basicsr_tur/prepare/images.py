"""Image jobs of the test sets, and the worker pool that runs every image job of a setting.

Test images are cropped or resized as the authors do before scoring (crop16: AirNet/PromptIR's crop_img(base=16);
resize16: TransWeather's ValData) and BSD68 is noised once. A job is a top-level function of one frozen dataclass
(NoisyJob, TransformJob) naming its fields, so that a worker pool can pickle both; every synthesized image draws from
its own generator (rng_for), so the files are the same whatever the number of workers.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from typing import TypeVar

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


@dataclass(frozen=True)
class NoisyJob:
    """One noisy test pair (BSD68): a clean image centre-cropped to multiples of 16, then noised once.

    src: the clean image; lq_dst: the noisy PNG to write; gt_dst: the cropped clean PNG to write, '' when the split
    already holds it (another sigma wrote it); sigma: noise level on the 0-255 scale; seed and keys (dataset, task,
    file name): what the noise generator is a function of (rng_for).
    """

    src: str
    lq_dst: str
    gt_dst: str
    sigma: float
    seed: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class TransformJob:
    """One test pair cropped or resized as the authors score it.

    kind: 'crop16' (AirNet/PromptIR) or 'resize16' (TransWeather); lq_src, gt_src: the downloaded pair; lq_dst,
    gt_dst: the PNGs to write, gt_dst '' when the split already holds that GT (several LQs share it).
    """

    kind: str
    lq_src: str
    gt_src: str
    lq_dst: str
    gt_dst: str


def job_noisy(job: NoisyJob) -> None:
    """Write one noisy test pair cropped to multiples of 16 (the GT too unless job.gt_dst is '')."""
    img = crop16(read_rgb(job.src))
    if job.gt_dst:
        write_png(job.gt_dst, img)
    noise = dict(TEST_NOISE, sigma=job.sigma)
    noisy, _ = degrade(img.astype(np.float32) / 255.0, noise, rng_for(job.seed, *job.keys))
    write_png(job.lq_dst, noisy)


def job_transform(job: TransformJob) -> None:
    """Write a test pair cropped (crop16) or resized (resize16); the GT only when job.gt_dst is not ''."""
    fn = crop16 if job.kind == 'crop16' else resize16
    write_png(job.lq_dst, fn(read_rgb(job.lq_src)))
    if job.gt_dst:
        write_png(job.gt_dst, fn(read_rgb(job.gt_src)))


Job = TypeVar('Job')
Result = TypeVar('Result')


def run_jobs(fn: Callable[[Job], Result], jobs: list[Job], workers: int, desc: str) -> list[Result]:
    """Run fn over jobs in order, in a pool of `workers` processes (in this process when workers <= 1); fn must be a
    top-level function and the jobs picklable (the frozen job dataclasses are). Returns the results in job order."""
    if not jobs:
        return []
    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit='image')]
    with Pool(workers) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit='image'))
