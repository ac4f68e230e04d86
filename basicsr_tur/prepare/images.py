"""Image jobs of the test sets, and the worker pool that runs every image job of a setting.

Test images are cropped or resized as the authors do before scoring (crop16: AirNet/PromptIR's
crop_img(base=16); resize16: TransWeather's ValData; resize32 / half_resize32: WGWS-Net's
my_dataset_eval / my_dataset_eval_realH), and BSD68 is noised once as AirNet/PromptIR's test.py
noises it. A job is a top-level function of one frozen dataclass (NoisyJob, TransformJob) naming its
fields, so that a worker pool can pickle both. Cropped and resized pairs are independent of each
other and run in the pool; the BSD68 noise is one random stream drawn in a fixed order
(write_noisy), so those jobs run one after the other in this process. MiOIR's synthesized images
draw from a generator of their own (rng_for), so they too are the same whatever the number of
workers.
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
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from basicsr_tur.data.data_util import to_uint8, write_png
from basicsr_tur.prepare.plan import MIN_SIDE, PrepareError

# AirNet's and PromptIR's test.py call np.random.seed(0) once, before any test noise is drawn.
TEST_NOISE_SEED = 0


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


def wgws_size(w: int, h: int) -> tuple[int, int]:
    """(width, height) WGWS-Net's test loaders give a w x h image: sides down to multiples of 32."""
    return w // 32 * 32, h // 32 * 32


def resize32(img: np.ndarray) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image as WGWS-Net's my_dataset_eval scores it (SPA+, RealSnow).

    testing_model_Seting3.py: ToTensor (float32 in [0, 1]), then, when a side is not a multiple of
    32, torchvision Resize((H // 32 * 32, W // 32 * 32)) of that tensor: bilinear,
    align_corners=False, without antialiasing (torchvision's default for tensors before 0.17;
    WGWS-Net is of 2023). Rounded to uint8 (data_util.to_uint8); images already of that size are
    returned as they are. Raises PrepareError for a side below MIN_SIDE['resize32'] (plan.py checks
    the same before anything is written).
    """
    h, w = img.shape[:2]
    size = wgws_size(w, h)
    if size == (w, h):
        return img
    if min(h, w) < MIN_SIDE['resize32']:
        raise PrepareError(f"image of {h}x{w} has a side below {MIN_SIDE['resize32']}, which WGWS-Net "
                           'resizes to 0')
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(torch.float32) / 255
    x = F.interpolate(x, size=(size[1], size[0]), mode='bilinear', align_corners=False,
                      antialias=False)
    return to_uint8(x[0].permute(1, 2, 0).numpy())


def half_resize32(img: np.ndarray) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image as WGWS-Net's my_dataset_eval_realH scores it (REVIDE).

    First halved with PIL, resize((int(W * 0.5), int(H * 0.5)), Image.BILINEAR) of the 8-bit image
    (the GT to the input's halved size: the same for a checked pair), then resize32. Raises
    PrepareError for a side below MIN_SIDE['half_resize32'].
    """
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE['half_resize32']:
        raise PrepareError(f"image of {h}x{w} has a side below {MIN_SIDE['half_resize32']}, which "
                           'WGWS-Net halves, then resizes to 0')
    half = Image.fromarray(np.ascontiguousarray(img)).resize((int(w * 0.5), int(h * 0.5)),
                                                             Image.BILINEAR)
    return resize32(np.array(half))  # a writable copy, as torch.from_numpy wants


# Part kind -> what it does to each image of a test pair.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'crop16': crop16, 'resize16': resize16, 'resize32': resize32, 'half_resize32': half_resize32}


def add_test_noise(clean: np.ndarray, sigma: float, stream: np.random.RandomState) -> np.ndarray:
    """AirNet/PromptIR's DenoiseTestDataset noise of an RGB uint8 (H, W, 3) image, sigma on the
    0-255 scale: the next stream.randn(H, W, 3) (float64), np.clip(clean + noise * sigma, 0, 255)
    truncated to uint8 (.astype)."""
    noise = stream.randn(*clean.shape)
    return np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class NoisyJob:
    """One noisy test pair (BSD68): a clean image centre-cropped to multiples of 16, then noised once.

    src: the clean image; lq_dst: the noisy PNG to write; gt_dst: the cropped clean PNG to write, ''
    when the split already holds it (another sigma wrote it); sigma: noise level on the 0-255 scale.
    The noise is the next draw of the stream given to write_noisy, so a job's image depends on every
    job written before it from that stream.
    """

    src: str
    lq_dst: str
    gt_dst: str
    sigma: float


@dataclass(frozen=True)
class TransformJob:
    """One test pair cropped or resized as the authors score it.

    kind: a key of TRANSFORMS ('crop16': AirNet/PromptIR; 'resize16': TransWeather; 'resize32',
    'half_resize32': WGWS-Net); lq_src, gt_src: the downloaded pair; lq_dst, gt_dst: the PNGs to
    write, gt_dst '' when the split already holds that GT (several LQs share it).
    """

    kind: str
    lq_src: str
    gt_src: str
    lq_dst: str
    gt_dst: str


def write_noisy(jobs: list[NoisyJob], stream: np.random.RandomState, desc: str) -> None:
    """Write the noisy test pairs in job order, each noised by the next draws of stream
    (add_test_noise), in this process: the images depend on the order, as AirNet/PromptIR's do,
    whose DataLoader (num_workers=0) draws from the global numpy stream one image after the
    other."""
    for job in tqdm(jobs, desc=desc, unit='image'):
        img = crop16(read_rgb(job.src))
        if job.gt_dst:
            write_png(job.gt_dst, img)
        write_png(job.lq_dst, add_test_noise(img, job.sigma, stream))


def job_transform(job: TransformJob) -> None:
    """Write a test pair cropped or resized (TRANSFORMS[job.kind]); the GT only when job.gt_dst is
    not ''. Raises PrepareError naming the file when it is too small for the resize."""
    fn = TRANSFORMS[job.kind]
    for src, dst in ((job.lq_src, job.lq_dst), (job.gt_src, job.gt_dst)):
        if not dst:
            continue
        img = read_rgb(src)
        try:
            out = fn(img)
        except ValueError as err:
            raise PrepareError(f'{src}: {err}') from err
        write_png(dst, out)


def _init_worker() -> None:
    """One torch thread per pool process: the pool is the parallelism, and no OpenMP thread pool
    inherited across fork is used."""
    torch.set_num_threads(1)


Job = TypeVar('Job')
Result = TypeVar('Result')


def run_jobs(fn: Callable[[Job], Result], jobs: list[Job], workers: int, desc: str) -> list[Result]:
    """Run fn over jobs in order, in a pool of `workers` processes (in this process when workers <= 1); fn must be a
    top-level function and the jobs picklable (the frozen job dataclasses are). Returns the results in job order."""
    if not jobs:
        return []
    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit='image')]
    with Pool(workers, initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc, unit='image'))
