"""Clean images degraded on the fly: each sample draws its task's degradation from a per-sample generator."""
from __future__ import annotations

from os import path as osp

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_tur.data.data_util import TaskDataset, list_images, lookup_task, to_tensor, to_unit
from basicsr_tur.data.degradations import (
    DEGRADATION_TYPES,
    apply_degradation,
    check_depth,
    read_depth,
    sample_params,
    validate_spec,
)
from basicsr_tur.data.device_degradations import pack_params, padded_rain_kernel, rain_kernel_side
from basicsr_tur.data.paired_task_dataset import warn_old_format
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.lmdb_util import check_lmdb_keys
from basicsr_tur.utils.meta_file import read_meta_rows
from basicsr_tur.utils.option_checks import PATH, Kind


def degradation_specs(tasks: list[str], specs: dict | None, where: str) -> dict[str, dict]:
    """The degradation spec of every task: `degradations[task]`, or the MiOIR default of the type named `task`."""
    specs = dict(specs or {})
    for name in specs:
        if name not in tasks:
            raise DataError(f"{where}: 'degradations.{name}' is not one of the synthesised tasks "
                             f"({', '.join(tasks)})")
    out = {}
    for task in tasks:
        given = specs.get(task)
        if given is not None and not isinstance(given, dict):
            raise DataError(f"{where}: 'degradations.{task}' must be a mapping such as {{type: noise, sigma: "
                            f'[0, 50]}}, got {given!r}')
        spec = dict(given or {})
        if 'type' not in spec:
            if task not in DEGRADATION_TYPES:
                raise DataError(f"{where}: task '{task}' needs 'degradations.{task}.type' "
                                 f"(one of {', '.join(DEGRADATION_TYPES)})")
            spec['type'] = task
        out[task] = validate_spec(spec, f'{where}: degradations.{task}')
    return out


def synthesised_tasks(task_to_id: dict[str, int], synth_tasks: list[str] | None, where: str) -> list[str]:
    """The tasks a dataset synthesises: `synth_tasks` (distinct names among the setting's tasks, `task_to_id`), or
    all of them."""
    if synth_tasks is None:
        return list(task_to_id)
    if not isinstance(synth_tasks, list) or not synth_tasks or len(set(synth_tasks)) != len(synth_tasks):
        raise DataError(f"{where}: 'synth_tasks' must be a non-empty list of distinct task names, got {synth_tasks!r}")
    for name in synth_tasks:
        lookup_task(name, task_to_id, f"{where}: 'synth_tasks'")
    return list(synth_tasks)


# Where a training set's degradations are synthesised (option degrade_on).
DEGRADE_ON = ('workers', 'device')


def degraded_tensor(lq: np.ndarray, quantize: str) -> torch.Tensor:
    """A degraded (H, W, 3) float32 image as the (3, H, W) tensor a sample ships: uint8 when `quantize` made it 8-bit
    (round, truncate: its values are k/255, and the device's k / 255 gives them back bit for bit), else float32."""
    if quantize == 'none':
        return to_tensor(lq)
    return to_tensor(np.rint(lq * np.float32(255)).astype(np.uint8))


def device_padding(spec: dict) -> int:
    """The widest reflect padding device_degradations.degrade_batch needs for a spec's (or one draw's) parameters:
    half the blur kernel, half the padded rain kernel (rain_kernel_side), 0 for the other types. A crop's sides must
    exceed it (the workers' OpenCV and basicsr paths need no such bound for rain)."""
    def largest(value: int | list) -> int:
        return max(value) if isinstance(value, list) else value

    if spec['type'] == 'blur':
        return largest(spec['kernel_size']) // 2
    if spec['type'] == 'rain':
        return rain_kernel_side(largest(spec['length'])) // 2
    return 0


def read_image_entries(meta_file: str) -> list[tuple[int, str]]:
    """(line number, image path) of each line of a clean-image list: its first field (basicsr's meta_info lines
    `name (h,w,c) level` read too), in the line format of utils/meta_file.py. A missing file, or one listing no
    image, raises naming it."""
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'meta file not found: {meta_file}')
    entries = [(line_no, fields[0]) for line_no, fields in read_meta_rows(meta_file)]
    if not entries:
        raise DataError(f'meta file {meta_file} lists no images')
    return entries


def read_image_list(meta_file: str) -> list[str]:
    """Image paths of a clean-image list (see read_image_entries)."""
    return [name for _, name in read_image_entries(meta_file)]


def lookup_depth(depth_root: str | None, image_name: str, shape: tuple[int, int]) -> np.ndarray | None:
    """Depth map `<depth_root>/<stem>.npy` (H, W) of an image (larger = farther), or None when there is none.

    Read by degradations.read_depth, which refuses (ValueError naming the file) a map that is not a 2-D numeric .npy,
    has another size than its image, or holds non-finite or negative values.
    """
    if not depth_root:
        return None
    path = osp.join(depth_root, osp.splitext(osp.basename(image_name))[0] + '.npy')
    if not osp.isfile(path):
        return None
    return read_depth(path, shape, image=image_name)


@DATASET_REGISTRY.register()
class SyntheticTaskDataset(TaskDataset):
    """Clean GT images, each sample degraded by one task; returns lq, gt, task_id, task, lq_path (`<gt_path>#<task>`),
    gt_path and out_name (the stem its outputs are saved under, unique within its task).

    Options:
        tasks: the setting's task names; a task's id is its position in this list.
        synth_tasks: the tasks this dataset synthesises (default: all of `tasks`), e.g. [denoise_15, denoise_25,
            denoise_50] for the noise part of a MixedTaskDataset beside fixed pairs. Sample `index` has task
            `synth_tasks[index % len(synth_tasks)]` and image `index // len(synth_tasks)`, so every image is read
            once per task and epoch (times dataset_enlarge_ratio), as the authors list each clean image once per
            noise level, and a shuffled batch mixes the tasks.
        dataroot_gt: folder (or `.lmdb` with io_backend lmdb) of clean images; meta_file: optional list of
            image paths relative to it (one per line), required for lmdb.
        degradations: {task: spec} for the synthesised tasks, a spec as in `data/degradations.py` (type, ranges,
            quantize); a task named after a degradation type takes the MiOIR ranges by default.
        depth_root: optional folder of `<image stem>.npy` depth maps used by haze.
        gt_size, use_hflip, use_rot, dataset_enlarge_ratio, seed, check_images: as in PairedTaskDataset.
        key_crop: also return `lq_key`, another crop degraded with the same parameters (AirNet's contrastive key).
        degrade_on: `workers` (default: the loader's workers degrade each crop, as above) or `device` (training sets
            only: the workers draw each sample's crop and parameters and ship the clean crop as `gt` with
            `deg_params` (device_degradations.pack_params), `deg_seed`, and for rain `deg_kernel`, for haze with a
            depth map `deg_depth`; the model degrades the batch on its device in feed_data, by
            device_degradations.degrade_batch: the same formulas, batched, noise and rain seeds drawn on the device).
    Samples ship uint8 tensors where the values are 8-bit (the clean crop of an 8-bit image, an output quantized by
    round or truncate), float32 in [0, 1] otherwise; the model scales uint8 on its device (data_util.unit_tensor).
    """

    OPTION_KEYS: dict[str, Kind] = {
        **TaskDataset.OPTION_KEYS,
        'synth_tasks': Kind.of(list, null=True).doc(
            'the tasks synthesised (default: every task)', default=None),
        'degradations': Kind.of(dict, null=True).doc(
            '{task: spec}, a degradation type and its ranges (default: MiOIR ranges)',
            default=None),
        'depth_root': PATH.doc('folder of <image stem>.npy depth maps used by haze', default=None),
        # checked when the options are, and again here for a dataset built directly
        'degrade_on': Kind.of(words=DEGRADE_ON).doc(
            "who degrades the crops: the loader's workers or the model on its device",
            default='workers'),
    }

    def __init__(self, opt: dict) -> None:
        super().__init__(opt, {'gt': 'dataroot_gt'})
        self.synth_tasks = synthesised_tasks(self.task_to_id, opt.get('synth_tasks'), self.where)
        self.specs = degradation_specs(self.synth_tasks, opt.get('degradations'), self.where)
        self.degrade_on = opt.get('degrade_on', 'workers')
        if self.degrade_on not in DEGRADE_ON:
            raise DataError(f"{self.where}: 'degrade_on' must be one of {', '.join(DEGRADE_ON)}, "
                             f'got {self.degrade_on!r}')
        if self.degrade_on == 'device' and opt.get('phase') != 'train':
            raise DataError(f"{self.where}: 'degrade_on: device' is for training sets (the model degrades training "
                             'batches); validation and test sets are degraded by the workers, reproducibly')
        if self.degrade_on == 'device' and opt.get('gt_size'):
            for task, spec in self.specs.items():
                pad = device_padding(spec)
                if pad >= int(opt['gt_size']):
                    raise DataError(f"{self.where}: 'degradations.{task}' draws {spec['type']} kernels that need "
                                     f"crops larger than {pad} pixels on the device, and gt_size is {opt['gt_size']}; "
                                     "raise gt_size, narrow the range, or set 'degrade_on: workers'")
        self.gt_root = opt['dataroot_gt']
        meta_file = opt.get('meta_file')
        if meta_file:
            try:
                entries = read_image_entries(meta_file)
            except (OSError, ValueError) as err:
                raise type(err)(f'{self.where}: {err}') from None
            self.names = [name for _, name in entries]
            labels = [f'line {line_no}' for line_no, _ in entries]
            warn_old_format(meta_file)
        else:
            if not osp.isdir(self.gt_root):
                raise FileNotFoundError(f'{self.where}: dataroot_gt folder not found: {self.gt_root}')
            self.names = list_images(self.gt_root)
            if not self.names:
                raise DataError(f'{self.where}: no images in {self.gt_root}')
            labels = [''] * len(self.names)
        if self.io_backend['type'] == 'lmdb':  # x.png and x.jpg have one key: one would be served for the other
            check_lmdb_keys(self.names, f"{self.where}: images of {meta_file or self.gt_root}")
        self.check_files([('gt', name, label) for name, label in zip(self.names, labels)], meta_file)
        self.name_outputs([('', name) for name in self.names])
        self.num_items = len(self.names) * len(self.synth_tasks)

    def item_tasks(self) -> list[int]:
        """Task id of every index (index % number of synthesised tasks), for the task-balanced sampler."""
        n = len(self.synth_tasks)
        return [self.task_to_id[self.synth_tasks[i % n]] for i in range(len(self))]

    def sample_files(self, index: int) -> str:
        n = len(self.synth_tasks)
        name = self.names[(index // n) % len(self.names)]
        return f'{osp.join(self.gt_root, name)} (task {self.synth_tasks[index % n]})'

    def load_sample(self, index: int, epoch: int) -> dict:
        n = len(self.synth_tasks)
        task = self.synth_tasks[index % n]
        name = self.names[(index // n) % len(self.names)]
        gt_path = osp.join(self.gt_root, name)
        gt = self.read(self.gt_root, name, 'gt')
        try:
            depth = lookup_depth(self.opt.get('depth_root'), name, gt.shape[:2])
        except ValueError as err:
            raise DataError(f'{self.where}: {err}') from None
        rng = self.generator(index, epoch)
        full = [gt] if depth is None else [gt, depth[..., None]]
        where = f'{self.where}: {gt_path}'
        gt_crop, depth_crop = self._crop(full, rng, where)
        sample = {'gt': to_tensor(gt_crop), 'task_id': self.task_to_id[task], 'task': task,
                  'lq_path': f'{gt_path}#{task}', 'gt_path': gt_path, 'out_name': self.output_name('', name)}
        if self.degrade_on == 'device':
            return self._device_sample(sample, full, gt_crop, depth_crop, task, rng, where)
        # Degraded from the crop alone: an 8-bit crop goes in as it is (its type bounds it: no scan). As degrade()
        # does, in two calls: the specs were validated when the dataset was built.
        params = sample_params(self.specs[task], rng, checked=True)
        lq = apply_degradation(self._input(gt_crop), params, rng, depth=depth_crop)
        sample['lq'] = degraded_tensor(lq, params['quantize'])
        if self.opt.get('key_crop'):
            # Another crop of the same image with the same degradation parameters (AirNet's contrastive key).
            key_gt, key_depth = self._crop(full, rng, where)
            key = apply_degradation(self._input(key_gt), params, rng, depth=key_depth)
            sample['lq_key'] = degraded_tensor(key, params['quantize'])
        return sample

    def _device_sample(self, sample: dict, full: list[np.ndarray], gt_crop: np.ndarray,
                       depth_crop: np.ndarray | None, task: str, rng: np.random.Generator, where: str) -> dict:
        """The sample of degrade_on: device: the clean crop and what the model needs to degrade it (class doc)."""
        params = sample_params(self.specs[task], rng, checked=True)
        pad = 0 if self.gt_size else device_padding(params)  # with gt_size, checked once when built
        if pad >= min(gt_crop.shape[:2]):  # whole images (no gt_size): checked per sample
            raise DataError(f"{where}: {params['type']} of task '{task}' needs an image larger than {pad} pixels on "
                             f"the device, got {gt_crop.shape[0]}x{gt_crop.shape[1]}; set 'degrade_on: workers'")
        sample['deg_params'] = torch.from_numpy(pack_params(params))
        sample['deg_seed'] = int(rng.integers(0, 2 ** 63))
        if params['type'] == 'rain':
            side = rain_kernel_side(params['length'])
            sample['deg_kernel'] = torch.from_numpy(padded_rain_kernel(params, side).astype(np.float32))
        if params['type'] == 'haze' and depth_crop is not None:
            check_depth(depth_crop, gt_crop.shape)  # the crop's maximum divides it: refused here if zero
            sample['deg_depth'] = torch.from_numpy(depth_crop)
        if self.opt.get('key_crop'):
            key_gt, key_depth = self._crop(full, rng, where)
            sample['gt_key'] = to_tensor(key_gt)
            if 'deg_depth' in sample:
                check_depth(key_depth, key_gt.shape)
                sample['deg_depth_key'] = torch.from_numpy(key_depth)
        return sample

    @staticmethod
    def _input(crop: np.ndarray) -> np.ndarray:
        """A crop as the degradations take it: uint8 as it is (their type bounds them), anything else in [0, 1]."""
        return crop if crop.dtype == np.uint8 else to_unit(crop)

    def _crop(self, arrays: list[np.ndarray], rng: np.random.Generator,
              where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Crop and flip the image (and its depth, if any) alike: a (H, W, 3) view of the image in its own pixel
        type (to_tensor, to_unit and the degradations copy it once), a contiguous (H, W) depth or None."""
        arrays = self.crop_and_flip(arrays, rng, where)
        depth = np.ascontiguousarray(arrays[1][..., 0]) if len(arrays) > 1 else None
        return arrays[0], depth
