"""Pieces shared by the task-labelled datasets: task names, per-sample generators, image reading, augmentation."""
from __future__ import annotations

import difflib
import io
import os
from collections import defaultdict
from collections.abc import Iterable
from os import path as osp

import cv2
import lmdb
import numpy as np
import torch
from basicsr.utils import FileClient
from PIL import Image
from torch.utils import data

from basicsr_tur.data.samplers import unpack_index
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.files import write_image
from basicsr_tur.utils.lmdb_util import lmdb_key
from basicsr_tur.utils.option_checks import BOOL, PATH, Kind

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
CHECK_IMAGES = ('paths', 'headers')  # what a dataset checks of every image when it is built (option check_images)
MAX_LISTED = 5  # problems quoted in one build-time error; the rest are counted
_SCAN_FROM = 16  # files wanted in one folder from which one listing is cheaper than a stat per file


def task_index(tasks: list[str] | None, where: str) -> dict[str, int]:
    """Map each task name of the options' task list to its id (its position in the list)."""
    if not tasks:
        raise DataError(f"{where}: 'tasks' is missing; list the setting's tasks in the options (tasks: [...])")
    return {name: i for i, name in enumerate(tasks)}


def lookup_task(name: str, index: dict[str, int], where: str) -> int:
    """Id of task `name`, or a ValueError naming `where`, the unknown name and the closest known one."""
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        raise DataError(f"{where}: unknown task '{name}' (tasks in the options: {', '.join(index)}){hint}")
    return index[name]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample: a function of (seed, epoch, index) only, so runs ignore the worker count."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def check_backend(io_backend: dict, where: str) -> None:
    """Check an `io_backend` option: type `disk` (default) or `lmdb` with existing database folders."""
    backend = io_backend.get('type', 'disk')
    if backend not in ('disk', 'lmdb'):
        raise DataError(f"{where}: io_backend.type must be 'disk' or 'lmdb', got '{backend}'")
    for db in io_backend.get('db_paths', []) if backend == 'lmdb' else []:
        if not osp.isdir(db):
            raise FileNotFoundError(f'{where}: LMDB folder not found: {db}')


def make_file_client(io_backend: dict) -> FileClient:
    """basicsr FileClient from a checked `io_backend` option."""
    opt = dict(io_backend)
    return FileClient(opt.pop('type', 'disk'), **opt)


_NPY_MAGIC = b'\x93NUMPY'


def npy_view(buf: bytes) -> np.ndarray | None:
    """The array of .npy bytes (a `raw` LMDB value, utils/lmdb_util.raw_value) as a read-only view of `buf`, no copy;
    None when `buf` is not .npy. Raises ValueError for a .npy header that cannot be read or an object array."""
    if not buf[:6] == _NPY_MAGIC:
        return None
    stream = io.BytesIO(buf)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise DataError('a .npy value holding Python objects')
    count = int(np.prod(shape))
    if len(buf) - stream.tell() < count * dtype.itemsize:
        raise DataError('a truncated .npy value')
    array = np.frombuffer(buf, dtype, count=count, offset=stream.tell())
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def decode_image(buf: bytes, where: str, what: str) -> np.ndarray:
    """Decode image bytes as RGB (H, W, 3) in the file's own pixel type: uint8 or uint16 (not scaled), or float32 in
    [0, 1]; scale with to_unit once cropped, so that a training crop is the only part ever made float.

    The result may be a read-only view (channels reversed, grey broadcast to three channels): crop it first, then copy
    (to_unit and to_tensor copy). Float images (TIFF) must be finite and within [0, 1]. An alpha channel is dropped.
    The bytes of a `raw` LMDB value (.npy of OpenCV's decoded array, utils/lmdb_util.raw_value) are viewed, not
    decoded. Anything else (empty, truncated or non-image bytes, signed or 32-bit integers, other channel counts,
    NaN/Inf) raises a ValueError `<what> (<reason>)`, `what` naming the dataset, the image role and the file.
    """
    if len(buf) == 0:
        raise DataError(f'{where}: cannot decode {what} (empty file)')
    try:
        img = npy_view(buf)
        if img is None:
            img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        elif img.ndim not in (2, 3):
            raise DataError(f'{img.ndim}-D array')
    except cv2.error as err:  # OpenCV asserts on some malformed buffers instead of returning None
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f'{where}: cannot decode {what} (corrupt or not an image: {reason})') from None
    except ValueError as err:
        raise DataError(f'{where}: cannot decode {what} (corrupt or not an image: {err})') from None
    if img is None:
        raise DataError(f'{where}: cannot decode {what} (corrupt, truncated or not an image)')
    if img.dtype in (np.float32, np.float64):
        if not np.isfinite(img).all():
            raise DataError(f'{where}: {what} has non-finite pixels (NaN or Inf)')
        low, high = float(img.min()), float(img.max())
        if low < 0 or high > 1:
            raise DataError(f'{where}: {what}: float pixels span [{low:.4g}, {high:.4g}]; expected [0, 1] '
                             '(scale the image, or save it as 8- or 16-bit)')
        img = img.astype(np.float32, copy=False)
    elif img.dtype not in (np.uint8, np.uint16):
        raise DataError(f'{where}: {what}: unsupported pixel type {img.dtype} (expected 8-bit or 16-bit unsigned '
                         'integers, or floats in [0, 1])')
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:  # a view: the three channels are made by the copy of the crop
        return np.broadcast_to(img.reshape(img.shape[0], img.shape[1], 1), (img.shape[0], img.shape[1], 3))
    if channels in (3, 4):  # OpenCV's BGR(A) -> RGB, alpha dropped, as a view
        return img[..., 2::-1]
    raise DataError(f'{where}: {what}: {channels} channels (expected grey, RGB or RGBA)')


def to_unit(img: np.ndarray) -> np.ndarray:
    """An image of decode_image (uint8, uint16 or float32 in [0, 1], any layout) as a new contiguous float32 array
    in [0, 1]: 8-bit divided by 255, 16-bit by 65535 (float32 division, so the values equal the device's
    `uint8 tensor / 255`), float copied. Raises ValueError for another pixel type."""
    if img.dtype == np.uint8 or img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max)
    if img.dtype == np.float32:
        return np.array(img, dtype=np.float32, order='C')
    raise DataError(f'to_unit: pixel type {img.dtype} is not one of uint8, uint16, float32')


def read_image(client: FileClient, root: str, rel_path: str, client_key: str, where: str) -> np.ndarray:
    """Read one image as RGB (H, W, 3) in its own pixel type (see decode_image); missing or undecodable files, and
    non-finite or out-of-range pixels, raise naming `where` and the file."""
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
    return decode_image(buf, where, f'{client_key} image {culprit}')


def missing_files(paths: Iterable[str]) -> set[str]:
    """The paths that are not existing files (symlinks followed). Folders from which many files are wanted are
    listed once (os.scandir) instead of one stat per file, which matters for large sets on network filesystems."""
    by_folder: dict[str, dict[str, str]] = defaultdict(dict)  # folder -> {file name: path}
    for path in paths:
        folder, _, name = path.rpartition(os.sep)  # not osp.split: this runs once per listed file
        by_folder[folder][name] = path
    missing = set()
    for folder, wanted in by_folder.items():
        if len(wanted) < _SCAN_FROM:
            missing.update(p for p in wanted.values() if not osp.isfile(p))
            continue
        try:
            with os.scandir(folder or os.sep) as entries:
                # is_file() costs a stat only for symlinks (to follow them); plain entries answer from the listing
                files = {entry.name for entry in entries if entry.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            files = set()
        missing.update(p for name, p in wanted.items() if name not in files)
    return missing


def lmdb_keys(db_path: str) -> set[str]:
    """Every key of an LMDB database (opened read-only and closed again, so no handle reaches a loader worker)."""
    env = lmdb.open(db_path, readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with env.begin(write=False) as txn:
            return {key.decode('utf-8', 'replace') for key in txn.cursor().iternext(keys=True, values=False)}
    finally:
        env.close()


def image_size(source: str | bytes) -> tuple[int, int]:
    """(height, width) of an image file or its bytes from the header only (PIL's lazy open); formats PIL does not
    read (multi-channel float TIFF) are decoded fully with OpenCV. Raises ValueError with the reason."""
    if isinstance(source, str) and osp.getsize(source) == 0 or isinstance(source, bytes) and not source:
        raise DataError('empty file')
    if isinstance(source, bytes) and source[:6] == _NPY_MAGIC:  # a raw LMDB value: its header holds the shape
        img = npy_view(source)
        if img.ndim not in (2, 3):
            raise DataError(f'{img.ndim}-D array, not an image')
        return img.shape[0], img.shape[1]
    try:
        with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as img:
            return img.height, img.width
    except Exception:  # any PIL failure: let OpenCV, which reads more formats (float TIFF), decide
        buf = np.fromfile(source, np.uint8) if isinstance(source, str) else np.frombuffer(source, np.uint8)
        try:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            img = None
        if img is None:
            raise DataError('corrupt, truncated or not an image') from None
        return img.shape[0], img.shape[1]


def raise_problems(where: str, what: str, problems: list[str], error: type[Exception] = DataError) -> None:
    """One error `<where>: <what>: p1; p2; ...` quoting the first MAX_LISTED problems and counting the rest (nothing
    is raised when there is none)."""
    if problems:
        more = f'; and {len(problems) - MAX_LISTED} more' if len(problems) > MAX_LISTED else ''
        raise error(f"{where}: {what}: {'; '.join(problems[:MAX_LISTED])}{more}")


def output_names(inputs: list[tuple[str, str]], where: str) -> dict[tuple[str, str], str]:
    """A readable output stem for each (task, input path), unique within the task: the file stem (`x`), or, for
    inputs whose stem another input of the task shares, the path below their common folder with '/' and the
    extension's '.' written as '_' (`x.png`, `x.jpg` -> `x_png`, `x_jpg`). Raises ValueError if two inputs would
    still share a name, so that no output file is ever written by two inputs."""
    by_stem: dict[tuple[str, str], set[str]] = defaultdict(set)
    for task, path in inputs:
        by_stem[(task, osp.splitext(osp.basename(path))[0])].add(path)
    names, owner = {}, {}
    for (task, stem), paths in by_stem.items():
        if len(paths) == 1:
            chosen = {next(iter(paths)): stem}
        else:
            folders = {osp.dirname(p) for p in paths}
            common = folders.pop() if len(folders) == 1 else osp.commonpath(list(paths))
            chosen = {p: (osp.relpath(p, common) if common else p).replace(os.sep, '/').replace('/', '_')
                      .replace('.', '_') for p in sorted(paths)}
        for path, name in chosen.items():
            if (task, name) in owner:
                raise DataError(f'{where}: {owner[(task, name)]} and {path} would both be saved as {task}/{name}; '
                                 'rename one of them')
            owner[(task, name)] = path
            names[(task, path)] = name
    return names


def to_uint8(img: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (any float array) as uint8: x255, rounded to the nearest integer, clipped to [0, 255]."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str, img: np.ndarray) -> None:
    """Write an RGB uint8 array, or an RGB float array in [0, 1] (rounded: to_uint8), as PNG, atomically (folders
    created).

    Raises OSError naming `path` when it cannot be written (no partial file is left).
    """
    write_image(path, cv2.cvtColor(img if img.dtype == np.uint8 else to_uint8(img), cv2.COLOR_RGB2BGR))


def random_crop(imgs: list[np.ndarray], size: int, rng: np.random.Generator, where: str) -> list[np.ndarray]:
    """Crop the same size×size window from each (H, W, ...) array; images smaller than size raise."""
    h, w = imgs[0].shape[:2]
    if h < size or w < size:
        raise DataError(f'{where}: image of size {h}x{w} is smaller than gt_size {size}')
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
    """(H, W, C) image -> new contiguous (C, H, W) tensor: uint8 stays uint8 (scaled to [0, 1] on the device, by
    the model's feed_data), any other pixel type becomes float32 in [0, 1] (to_unit)."""
    if img.dtype != np.uint8:
        img = to_unit(img)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def divide_exactly(x: torch.Tensor, value: float, inplace: bool = False) -> torch.Tensor:
    """x / value as one IEEE division on every device (in place with inplace=True): the divisor is a 0-dim tensor
    on x's device, not a Python number, because CUDA divides by a host scalar as a product with its reciprocal, one
    ulp off numpy's float32 division for some values (126 of the 256 levels k / 255)."""
    divisor = torch.full((), value, dtype=x.dtype, device=x.device)
    return x.div_(divisor) if inplace else x / divisor


def unit_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A batch or sample tensor as float32 in [0, 1]: uint8 divided by 255 (on the tensor's device), float32 kept
    (the same tensor). The model calls this once, on the device; the values equal to_unit's on every device."""
    if tensor.dtype == torch.uint8:
        return divide_exactly(tensor.float(), 255.0, inplace=True)
    if tensor.dtype != torch.float32:
        raise DataError(f'unit_tensor: expected a uint8 or float32 image tensor, got {tensor.dtype}')
    return tensor


def list_images(folder: str) -> list[str]:
    """Sorted image file names (not paths) of a folder."""
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))


class SampleError(DataError, RuntimeError):
    """An unexpected error while loading one sample, raised again naming the dataset and the sample's files."""


class TaskDataset(data.Dataset):
    """What the task-labelled datasets share: task ids, the io backend, per-sample seeding and enlargement, the
    build-time check of the files they name, and one-line errors naming the files of a sample that fails to load.

    `roots` maps each LMDB client key ('lq', 'gt') to its option name; with io_backend lmdb those roots are the
    databases. Subclasses set `self.num_items`, call `self.check_files` once they know their files, implement
    `load_sample(index, epoch)` and `sample_files(index)`, and read images through
    `self.read(root, rel_path, client_key)`.
    Option `check_images`: `paths` (default) checks that every named file exists when the dataset is built;
    `headers` also reads each image's header, checking that it is an image, that LQ and GT sizes agree and that
    training images are at least gt_size.
    """

    # The keys this class reads (a subclass adds its own), beside those every dataset takes
    # (utils/option_checks.py DATASET_COMMON: name, type, phase, tasks, io_backend, ...).
    OPTION_KEYS: dict[str, Kind] = {
        'dataroot_gt': PATH.doc('folder (or .lmdb) of the ground-truth or clean images'),
        'meta_file': PATH.doc('the list of images (pairs and tasks); required with lmdb',
                              default=None),
        'gt_size': Kind.of(int, null=True, minimum=1).doc(
            'training crop size (null: whole images, for validation)', default=None),
        'use_hflip': BOOL.doc('random horizontal flips', default=False),
        'use_rot': BOOL.doc('random rotations and transpositions', default=False),
        'key_crop': BOOL.doc("also return lq_key, a second crop (AirNet's contrastive key)",
                             default=False),
        'seed': Kind.of(int).doc('base of the per-sample generators (default: manual_seed)'),
        # checked when the options are, and again here for a dataset built directly
        'check_images': Kind.of(words=CHECK_IMAGES).doc(
            'what is checked of every file when built: paths exist, or headers too',
            default='paths'),
    }

    def __init__(self, opt: dict, roots: dict[str, str]) -> None:
        super().__init__()
        self.opt = opt
        self.where = f"dataset '{opt.get('name', type(self).__name__)}'"
        self.tasks = list(opt.get('tasks') or [])
        self.task_to_id = task_index(self.tasks, self.where)
        for key in roots.values():
            if not opt.get(key):
                raise DataError(f"{self.where}: '{key}' is missing")
        self.roots = {client_key: opt[key] for client_key, key in roots.items()}
        self.check_images = opt.get('check_images', 'paths')
        if self.check_images not in CHECK_IMAGES:
            raise DataError(f"{self.where}: 'check_images' must be one of {', '.join(CHECK_IMAGES)}, "
                             f'got {self.check_images!r}')
        io_backend = dict(opt.get('io_backend') or {'type': 'disk'})
        if io_backend.get('type') == 'lmdb':
            if not opt.get('meta_file'):
                raise DataError(f"{self.where}: the lmdb backend needs 'meta_file' (written by scripts/make_lmdb.py)")
            io_backend.update(db_paths=[opt[k] for k in roots.values()], client_keys=list(roots))
        check_backend(io_backend, self.where)
        self.io_backend = io_backend
        self._file_client: FileClient | None = None
        self.gt_size = opt.get('gt_size')
        self.seed = int(opt.get('seed', 0))
        # Enlarged here rather than by the sampler so that each repeat has its own index, hence its own crop.
        self.enlarge = int(opt.get('dataset_enlarge_ratio', 1)) if opt.get('phase') == 'train' else 1
        self.num_items = 0
        self.out_names: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return self.num_items * self.enlarge

    def __getitem__(self, index: int) -> dict:
        """Sample `index` of epoch 0, or, from a training sampler, `pack_index(epoch, i, len(self))`: sample i of that
        epoch (the epoch reaches loader workers in the index alone; see data/samplers.py)."""
        epoch, index = unpack_index(index, len(self))
        try:
            return self.load_sample(index, epoch)
        except Exception as err:
            if str(err).startswith(self.where):  # ours: names the dataset and the file already
                raise
            # Anything else (OpenCV, numpy, a degradation) is named here, once for every dataset: in a loader
            # worker the traceback is lost behind torch's re-raise, and the CLI shows only this line.
            reason = (str(err).strip().splitlines() or [''])[0]
            raise SampleError(f'{self.where}: {self.sample_files(index)}: {type(err).__name__}'
                              + (f': {reason}' if reason else '')) from err

    def name_outputs(self, inputs: list[tuple[str, str]]) -> None:
        """Fix the output stem of each (task, input path) of a validation or test set (see output_names), refusing
        names two inputs would share. Training sets save no outputs and skip this (it costs ~20 µs per input)."""
        self.out_names = output_names(inputs, self.where) if self.opt.get('phase') != 'train' else {}

    def output_name(self, task: str, path: str) -> str:
        """The stem under which outputs of the input `path` of `task` are saved (its file stem in training sets)."""
        return self.out_names.get((task, path)) or osp.splitext(osp.basename(path))[0]

    def load_sample(self, index: int, epoch: int) -> dict:
        """Sample `index` (in [0, len)) of `epoch`, its randomness from generator(index, epoch)."""
        raise NotImplementedError

    def sample_files(self, index: int) -> str:
        """The files sample `index` reads, for error messages."""
        raise NotImplementedError

    def check_files(self, entries: list[tuple[str, str, str]], meta_file: str | None) -> dict:
        """Check, before the first iteration, the images this dataset will read: (client_key, rel_path, label)
        entries, label saying where the entry is listed ('line 6') or ''. Every missing file (or LMDB key) is
        reported in one FileNotFoundError naming meta_file; with check_images: headers every header is read too
        and unreadable images and, in training, images smaller than gt_size are reported in one ValueError.
        Returns {(client_key, rel_path): (height, width)} from the headers ({} without them)."""
        first: dict[tuple[str, str], str] = {}
        for client_key, rel, label in entries:
            first.setdefault((client_key, rel), label)
        lmdb_backend = self.io_backend.get('type') == 'lmdb'

        def culprit(client_key: str, rel: str) -> str:
            label = first[(client_key, rel)]
            name = f"key '{lmdb_key(rel)}' in {self.roots[client_key]}" if lmdb_backend \
                else osp.join(self.roots[client_key], rel)
            return f'{label + ": " if label else ""}{client_key} {name}'

        if lmdb_backend:
            keys = {client_key: lmdb_keys(root) for client_key, root in self.roots.items()}
            problems = [culprit(k, rel) for k, rel in first if lmdb_key(rel) not in keys[k]]
        else:
            full = {entry: osp.join(self.roots[entry[0]], entry[1]) for entry in first}
            missing = missing_files(full.values())
            problems = [culprit(*entry) for entry, path in full.items() if path in missing] if missing else []
        listed = f' named by {meta_file}' if meta_file else ''
        raise_problems(self.where, f'{len(problems)} of {len(first)} images{listed} not found', problems,
                       FileNotFoundError)
        if self.check_images != 'headers':
            return {}
        sizes, problems = {}, []
        envs = {k: lmdb.open(root, readonly=True, lock=False, readahead=False, meminit=False)
                for k, root in self.roots.items()} if lmdb_backend else {}
        try:
            for k, rel in first:
                try:
                    if lmdb_backend:
                        with envs[k].begin(write=False) as txn:
                            source = bytes(txn.get(lmdb_key(rel).encode('utf-8')))
                    else:
                        source = osp.join(self.roots[k], rel)
                    sizes[(k, rel)] = image_size(source)
                except (OSError, ValueError) as err:
                    problems.append(f'{culprit(k, rel)} ({err})')
        finally:
            for env in envs.values():
                env.close()
        raise_problems(self.where, f'{len(problems)} of {len(first)} images{listed} cannot be read', problems)
        if self.gt_size and self.opt.get('phase') == 'train':
            small = [f'{culprit(k, rel)} is {h}x{w}' for (k, rel), (h, w) in sizes.items()
                     if h < int(self.gt_size) or w < int(self.gt_size)]
            raise_problems(self.where, f'{len(small)} images smaller than gt_size {self.gt_size}', small)
        return sizes

    def read(self, root: str, rel_path: str, client_key: str) -> np.ndarray:
        """Read one image (RGB HWC in its own pixel type, see decode_image) through the backend, opened lazily in the
        reading process."""
        if self._file_client is None:  # LMDB handles do not survive pickling into loader workers
            self._file_client = make_file_client(self.io_backend)
        return read_image(self._file_client, root, rel_path, client_key, self.where)

    def generator(self, index: int, epoch: int) -> np.random.Generator:
        """The generator of sample `index` in `epoch`."""
        return sample_rng(self.seed, epoch, index)

    def crop_and_flip(self, arrays: list[np.ndarray], rng: np.random.Generator, where: str) -> list[np.ndarray]:
        """Training crop (gt_size) and dihedral flips (use_hflip, use_rot) applied alike to aligned arrays."""
        if self.gt_size:
            arrays = random_crop(arrays, int(self.gt_size), rng, where)
        return augment(arrays, rng, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
