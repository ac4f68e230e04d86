"""Pieces shared by the task-labelled datasets: task names, per-sample generators, image reading, augmentation."""
from __future__ import annotations

import difflib
import os
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.utils import FileClient
from torch.utils import data

from basicsr_tur.utils.files import write_image
from basicsr_tur.utils.lmdb_util import lmdb_key

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


def write_png(path: str, img: np.ndarray) -> None:
    """Write an RGB uint8 array, or an RGB float array in [0, 1] (rounded), as PNG, atomically (folders created).

    Raises OSError naming `path` when it cannot be written (no partial file is left).
    """
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    write_image(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


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


class TaskDataset(data.Dataset):
    """What the task-labelled datasets share: task ids, the io backend, per-sample seeding and enlargement.

    `roots` maps each LMDB client key ('lq', 'gt') to its option name; with io_backend lmdb those roots are the
    databases. Subclasses set `self.num_items` and read images through `self.read(root, rel_path, client_key)`.
    """

    def __init__(self, opt: dict, roots: dict[str, str]) -> None:
        super().__init__()
        self.opt = opt
        self.where = f"dataset '{opt.get('name', type(self).__name__)}'"
        self.tasks = list(opt.get('tasks') or [])
        self.task_to_id = task_index(self.tasks, self.where)
        for key in roots.values():
            if not opt.get(key):
                raise ValueError(f"{self.where}: '{key}' is missing")
        io_backend = dict(opt.get('io_backend') or {'type': 'disk'})
        if io_backend.get('type') == 'lmdb':
            if not opt.get('meta_file'):
                raise ValueError(f"{self.where}: the lmdb backend needs 'meta_file' (written by scripts/make_lmdb.py)")
            io_backend.update(db_paths=[opt[k] for k in roots.values()], client_keys=list(roots))
        check_backend(io_backend, self.where)
        self.io_backend = io_backend
        self._file_client: FileClient | None = None
        self.gt_size = opt.get('gt_size')
        self.seed = int(opt.get('seed', 0))
        # Enlarged here rather than by the sampler so that each repeat has its own index, hence its own crop.
        self.enlarge = int(opt.get('dataset_enlarge_ratio', 1)) if opt.get('phase') == 'train' else 1
        self.epoch = 0
        self.num_items = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose per-sample generators __getitem__ uses."""
        self.epoch = epoch

    def locate(self, index: int) -> int:
        """Decode a sampler index `epoch * len(self) + i` into i, taking its epoch.

        Our samplers carry the epoch in the index so that persistent loader workers, which never see set_epoch
        in the main process, still seed each sample by (seed, epoch, index).
        """
        if index >= len(self):
            self.epoch, index = divmod(index, len(self))
        return index

    def __len__(self) -> int:
        return self.num_items * self.enlarge

    def read(self, root: str, rel_path: str, client_key: str) -> np.ndarray:
        """Read one image (float32 RGB HWC in [0, 1]) through the backend, opened lazily in the reading process."""
        if self._file_client is None:  # LMDB handles do not survive pickling into loader workers
            self._file_client = make_file_client(self.io_backend)
        return read_image(self._file_client, root, rel_path, client_key, self.where)

    def generator(self, index: int) -> np.random.Generator:
        """The generator of sample `index` in the current epoch."""
        return sample_rng(self.seed, self.epoch, index)

    def crop_and_flip(self, arrays: list[np.ndarray], rng: np.random.Generator, where: str) -> list[np.ndarray]:
        """Training crop (gt_size) and dihedral flips (use_hflip, use_rot) applied alike to aligned arrays."""
        if self.gt_size:
            arrays = random_crop(arrays, int(self.gt_size), rng, where)
        return augment(arrays, rng, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
