"""Pieces shared by the task-labelled datasets: task names, per-sample generators, image reading, augmentation."""
from __future__ import annotations

import difflib
import os
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.utils import FileClient

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def task_index(tasks: list[str] | None, where: str) -> dict[str, int]:
    """Map each task name of the options' task list to its id (its position in the list)."""
    if not tasks:
        raise ValueError(f"{where}: 'tasks' is missing; list the setting's tasks in the options (tasks: [...])")
    return {name: i for i, name in enumerate(tasks)}


def lookup_task(name: str, index: dict[str, int], where: str) -> int:
    """Id of task `name`, or a ValueError naming `where`, the unknown name and the closest known one."""
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        raise ValueError(f"{where}: unknown task '{name}' (tasks in the options: {', '.join(index)}){hint}")
    return index[name]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample: a function of (seed, epoch, index) only, so runs ignore the worker count."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def check_backend(io_backend: dict, where: str) -> None:
    """Check an `io_backend` option: type `disk` (default) or `lmdb` with existing database folders."""
    backend = io_backend.get('type', 'disk')
    if backend not in ('disk', 'lmdb'):
        raise ValueError(f"{where}: io_backend.type must be 'disk' or 'lmdb', got '{backend}'")
    for db in io_backend.get('db_paths', []) if backend == 'lmdb' else []:
        if not osp.isdir(db):
            raise FileNotFoundError(f'{where}: LMDB folder not found: {db}')


def make_file_client(io_backend: dict) -> FileClient:
    """basicsr FileClient from a checked `io_backend` option."""
    opt = dict(io_backend)
    return FileClient(opt.pop('type', 'disk'), **opt)


def lmdb_key(path: str) -> str:
    """LMDB key of an image path: basicsr's convention, the path without its extension."""
    return osp.splitext(path)[0]


def read_image(client: FileClient, root: str, rel_path: str, client_key: str, where: str) -> np.ndarray:
    """Read one image as float32 RGB (H, W, 3) in [0, 1]; missing or undecodable files name the culprit."""
    if client.backend == 'lmdb':
        key = lmdb_key(rel_path)
        buf = client.get(key, client_key)
        culprit = f"key '{key}' in {root}"
        if buf is None:
            raise FileNotFoundError(f'{where}: {client_key} image not found: {culprit}')
    else:
        full = osp.join(root, rel_path) if root else rel_path
        culprit = full
        if not osp.isfile(full):
            raise FileNotFoundError(f'{where}: {client_key} image not found: {full}')
        buf = client.get(full, client_key)
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'{where}: cannot decode {client_key} image {culprit} (corrupt or not an image)')
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) / scale


def random_crop(imgs: list[np.ndarray], size: int, rng: np.random.Generator, where: str) -> list[np.ndarray]:
    """Crop the same size×size window from each (H, W, ...) array; images smaller than size raise."""
    h, w = imgs[0].shape[:2]
    if h < size or w < size:
        raise ValueError(f'{where}: image of size {h}x{w} is smaller than gt_size {size}')
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return [img[top:top + size, left:left + size] for img in imgs]


def augment(imgs: list[np.ndarray], rng: np.random.Generator, hflip: bool, rot: bool) -> list[np.ndarray]:
    """Apply one random horizontal flip, vertical flip and transpose (the 8 dihedral views) to all arrays alike."""
    do_hflip = hflip and rng.random() < 0.5
    do_vflip = rot and rng.random() < 0.5
    do_rot90 = rot and rng.random() < 0.5
    out = []
    for img in imgs:
        if do_hflip:
            img = img[:, ::-1]
        if do_vflip:
            img = img[::-1]
        if do_rot90:
            img = img.swapaxes(0, 1)
        out.append(img)
    return out


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float32 array -> contiguous (C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def list_images(folder: str) -> list[str]:
    """Sorted image file names (not paths) of a folder."""
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))
