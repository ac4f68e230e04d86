"""The embedded demo's data, built from scikit-image's shipped photographs (no download): preparation step `demo`.

Options name it with `prepare: demo`; train.py/test.py then build `<root>/datasets/demo` in-process when it is
missing (scripts/make_demo_data.py builds it elsewhere). Writes, under the output folder:
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
import shutil
from os import path as osp

import cv2
import numpy as np
import skimage.data
from tqdm import tqdm

from basicsr_tur.data.data_util import write_png
from basicsr_tur.data.degradations import degrade
from basicsr_tur.data.synthetic_task_dataset import degradation_specs
from basicsr_tur.utils.files import atomic_write
from basicsr_tur.utils.meta_file import format_meta_line
from basicsr_tur.utils.registry import register_prepare_step

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
    """Build the demo data into `out` unless it exists (False then); built under `<out>.partial`, renamed when done."""
    if osp.isdir(out):
        return False
    tmp = out.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_demo_data(tmp, seed)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, out)
    return True


@register_prepare_step(creates=osp.join('datasets', 'demo'))
def demo(root: str) -> None:
    """Preparation step `demo`: build `<root>/datasets/demo`, the folder the demo options read."""
    build_demo_data(osp.join(root, 'datasets', 'demo'))
