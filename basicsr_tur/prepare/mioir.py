"""MiOIR synthesis: every GT degraded once per task (the seven MiOIR formulas of data/degradations.py), and for the
training set cut into sub-images as MiOIR's data_script/gen_sub.py does.

Haze reads the depth map MiOIR predicts for each image (DF2K/depth, MiO_test/original/depth) when it is under the raw
folder (data/degradations.read_depth, resized to the image as MiOIR does); without one it uses the vertical-ramp
depth of data/degradations.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from os import path as osp

import numpy as np

from basicsr_tur.data.data_util import to_uint8, write_png
from basicsr_tur.data.degradations import degrade, read_depth
from basicsr_tur.data.synthetic_task_dataset import degradation_specs
from basicsr_tur.prepare.images import read_rgb, rng_for
from basicsr_tur.prepare.plan import PrepareError

DEPTH_DIRS = {'df2k': 'DF2K/depth', 'mio_test': 'MiO_test/original/depth'}  # per source key, under the raw folder


def mio_windows(h: int, w: int, crop: int = 300, step: int = 150, thres: int = 48) -> list[tuple[int, int]]:
    """Top-left corners of MiOIR's sub-images of an h x w image, in its order (rows, then columns)."""
    if h < crop or w < crop:
        raise PrepareError(f'image of {h}x{w} is smaller than the {crop}x{crop} sub-image')
    tops, lefts = list(range(0, h - crop + 1, step)), list(range(0, w - crop + 1, step))
    # gen_sub.py adds a last window flush with the border when the strip left over is wider than thres.
    if h - (tops[-1] + crop) > thres:
        tops.append(h - crop)
    if w - (lefts[-1] + crop) > thres:
        lefts.append(w - crop)
    return [(top, left) for top in tops for left in lefts]


def mio_sub_name(name: str, index: int) -> str:
    """Name of the index-th (from 1) sub-image of an image, as gen_sub.py: 0001.png, 3 -> 0001_s003.png."""
    return f'{os.path.splitext(name)[0]}_s{index:03d}.png'


def find_depth(raw: str, key: str, name: str) -> str:
    """Depth file of a MiOIR image, or '' when there is none (haze then uses the vertical-ramp fallback)."""
    if key not in DEPTH_DIRS:
        return ''
    stem = osp.splitext(name)[0]
    folder = osp.join(raw, DEPTH_DIRS[key])
    for rel in (f'{stem}.npy', f'{stem}.mat', f'LR_tensor/{stem}/predict_depth.mat'):
        if osp.isfile(osp.join(folder, rel)):
            return osp.join(folder, rel)
    return ''


@dataclass(frozen=True)
class MioJob:
    """One MiOIR GT image to degrade once per task.

    kind: 'mio' (training: GT and LQs cut into sub-images) or 'mio_test' (whole images); src: the GT image; name: its
    path relative to its source folder (names the outputs, keys the generators); depth: its depth map file, '' for
    none; tasks: the MiOIR tasks; lq_root, gt_root: output folders (LQs under <lq_root>/<task>/; the GT is written
    under gt_root for 'mio' only); crop: sub-image size, step and leftover threshold; seed, key (the source key):
    with task and name, what each degradation's generator is a function of (rng_for).
    """

    kind: str
    src: str
    name: str
    depth: str
    tasks: tuple[str, ...]
    lq_root: str
    gt_root: str
    crop: tuple[int, int, int]
    seed: int
    key: str


def job_mio(job: MioJob) -> list[str]:
    """Degrade one GT once per task; 'mio' cuts GT and LQ into sub-images. Returns the written GT-relative names."""
    gt = read_rgb(job.src)
    h, w = gt.shape[:2]
    # MiOIR's depth is predicted at a quarter of the image size and resized to it.
    depth = read_depth(job.depth, (h, w), resize=True, image=job.src) if job.depth else None
    specs = degradation_specs(list(job.tasks), None, 'MiOIR degradations')
    gt_float = gt.astype(np.float32) / 255.0
    lqs = {}
    for task in job.tasks:
        lq, _ = degrade(gt_float, specs[task], rng_for(job.seed, job.key, task, job.name), depth=depth)
        lqs[task] = to_uint8(lq)  # once per task, before it is cut into sub-images
    if job.kind == 'mio_test':
        out = osp.splitext(job.name)[0] + '.png'
        for task, lq in lqs.items():
            write_png(osp.join(job.lq_root, task, out), lq)
        return [out]
    size, step, thres = job.crop
    subs = []
    for index, (top, left) in enumerate(mio_windows(h, w, size, step, thres), 1):
        sub = mio_sub_name(job.name, index)
        write_png(osp.join(job.gt_root, sub), gt[top:top + size, left:left + size])
        for task, lq in lqs.items():
            write_png(osp.join(job.lq_root, task, sub), lq[top:top + size, left:left + size])
        subs.append(sub)
    return subs
