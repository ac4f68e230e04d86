"""The embedded demo's data, built from scikit-image's shipped photographs (no download): preparation step `demo`.

Options name it with `prepare: demo`; train.py/test.py then build `<root>/datasets/demo` in-process when it is
missing, through the step registered in prepare/__init__.py, which imports this module only then
(scripts/make_demo_data.py builds it elsewhere). Writes, under the output folder:
  train/gt/*.png        clean training images (astronaut, rocket, coffee, the left part of motorcycle_left)
  train/depth/*.npy     depth for haze where one exists (motorcycle: 1/disparity from motorcycle_disp.npz)
  test/gt/*.png         held-out clean images (chelsea, the right part of motorcycle_left), 256x256 crops
  test/lq/<task>/*.png  the seven MiO degradations of each test image, synthesized once with a fixed seed
  test/depth/*.npy      depth of the test crops that have one
  meta_test.txt         `lq gt task` lines of the test set
The folder is built under a temporary name and renamed when complete, so an interrupted run leaves nothing.
"""
from __future__ import annotations

import os
from os import path as osp

import cv2
import numpy as np
import skimage.data
from tqdm import tqdm

from basicsr_tur.data.data_util import write_png
from basicsr_tur.data.degradations import degrade
from basicsr_tur.data.synthetic_task_dataset import degradation_specs
from basicsr_tur.utils.files import atomic_dir, atomic_write
from basicsr_tur.utils.meta_file import format_meta_line

TASKS = ['sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark']
SPLIT_X = 440  # motorcycle_left columns [0, 440) train, [440, 741) test
TEST_SIZE = 256


def motorcycle_depth() -> np.ndarray:
    """Depth (H, W) of motorcycle_left, proportional to 1/disparity, holes filled by inpainting."""
    disp = np.load(osp.join(osp.dirname(skimage.data.__file__), 'motorcycle_disp.npz'))
    disp = disp[disp.files[0]].astype(np.float32)
    valid = np.isfinite(disp) & (disp > 0)
    filled = np.where(valid, disp, 0).astype(np.float32)
    filled = cv2.inpaint(filled, (~valid).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    filled = np.maximum(filled, disp[valid].min())
    depth = 1.0 / filled
    return (depth / depth.max()).astype(np.float32)


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Central size×size window of an (H, W, ...) array."""
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def write_demo_data(out: str, seed: int) -> None:
    """Write the demo train and test folders into `out`."""
    moto = skimage.data.stereo_motorcycle()[0]
    depth = motorcycle_depth()
    train = {'astronaut': skimage.data.astronaut(), 'rocket': skimage.data.rocket(),
             'coffee': skimage.data.coffee(), 'motorcycle_a': moto[:, :SPLIT_X]}
    for name, img in train.items():
        write_png(osp.join(out, 'train', 'gt', f'{name}.png'), img)
    os.makedirs(osp.join(out, 'train', 'depth'))
    np.save(osp.join(out, 'train', 'depth', 'motorcycle_a.npy'), depth[:, :SPLIT_X])

    test = {'chelsea': (center_crop(skimage.data.chelsea(), TEST_SIZE), None),
            'motorcycle_b': (center_crop(moto[:, SPLIT_X:], TEST_SIZE), center_crop(depth[:, SPLIT_X:], TEST_SIZE))}
    specs = degradation_specs(TASKS, None, 'demo data')
    os.makedirs(osp.join(out, 'test', 'depth'))
    lines = []
    jobs = [(t, n) for t in TASKS for n in test]
    for task, name in tqdm(jobs, desc='demo test set', unit='image'):
        img, img_depth = test[name]
        gt = img.astype(np.float32) / 255.0
        # One generator per (task, image): the test set is the same whatever order it is built in.
        rng = np.random.default_rng(np.random.SeedSequence([seed, TASKS.index(task), list(test).index(name)]))
        lq, _ = degrade(gt, specs[task], rng, depth=img_depth)
        write_png(osp.join(out, 'test', 'lq', task, f'{name}.png'), lq)
        lines.append(format_meta_line((f'{task}/{name}.png', f'{name}.png', task)))
    for name, (img, img_depth) in test.items():
        write_png(osp.join(out, 'test', 'gt', f'{name}.png'), img)
        if img_depth is not None:
            np.save(osp.join(out, 'test', 'depth', f'{name}.npy'), img_depth)
    atomic_write(osp.join(out, 'meta_test.txt'), ''.join(lines))


def build_demo_data(out: str, seed: int = 2025) -> bool:
    """Build the demo data into `out` unless it exists (False then); built under `<out>.partial`, renamed when done
    (utils/files.atomic_dir)."""
    if osp.isdir(out):
        return False
    with atomic_dir(out) as tmp:
        write_demo_data(tmp, seed)
    return True


# Images of every kind restore.py reads, from the demo's degraded test images: (task, image, file under photos/, kind).
SAMPLE_PHOTOS = [
    ('noise', 'chelsea', 'chelsea_noise.jpg', 'JPEG, stored turned 90° with EXIF orientation 6'),
    ('rain', 'motorcycle_b', osp.join('16bit', 'motorcycle_rain.png'), '16-bit PNG'),
    ('noise', 'motorcycle_b', osp.join('16bit', 'motorcycle_noise.tif'), '16-bit TIFF'),
    ('haze', 'chelsea', 'chelsea_haze_gray.png', 'grayscale PNG'),
    ('dark', 'motorcycle_b', 'motorcycle_dark_rgba.png', 'RGBA PNG (alpha: a vignette, passed through)'),
]


def write_sample_photos(demo_root: str, out: str) -> list[str]:
    """Write SAMPLE_PHOTOS into `out` from `<demo_root>/test/lq` (a folder to try restore.py on: 8/16-bit, gray,
    RGBA, EXIF-rotated JPEG); returns the files written. Raises FileNotFoundError when the demo data is missing."""
    from PIL import Image

    written = []
    for task, name, file, _ in SAMPLE_PHOTOS:
        src = osp.join(demo_root, 'test', 'lq', task, f'{name}.png')
        img = cv2.imread(src, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'{src}: missing; build the demo data first (make demo, or '
                                    'python scripts/make_demo_data.py)')
        path = osp.join(out, file)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if file.endswith('.jpg'):
            exif = Image.Exif()
            exif[0x0112] = 6  # the viewer turns the stored pixels 90° clockwise: store them turned the other way
            Image.fromarray(np.rot90(img[..., ::-1]).copy()).save(path, quality=95, exif=exif)
        elif '16bit' in file:
            cv2.imwrite(path, img.astype(np.uint16) * 257)
        elif 'gray' in file:
            cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        else:
            h, w = img.shape[:2]
            yy, xx = np.mgrid[:h, :w]
            alpha = np.clip(1.6 - np.hypot((yy - h / 2) / h, (xx - w / 2) / w) * 2.4, 0, 1)
            cv2.imwrite(path, np.dstack([img, (alpha * 255).round().astype(np.uint8)]))
        written.append(path)
    return written
