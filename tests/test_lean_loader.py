"""The lean CPU data path: images decoded, cropped and flipped in uint8, shipped as uint8, scaled on the device; the
values the model trains on are those of the former whole-image float path, bit for bit."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from torch.utils.data import Dataset

from basicsr_tur.data.data_util import augment, random_crop, sample_rng, to_unit, unit_tensor
from basicsr_tur.data.degradations import DEGRADATION_TYPES, apply_degradation, degrade, validate_spec
from basicsr_tur.data.loaders import build_loader, collate_samples
from basicsr_tur.data.samplers import pack_index

MIO = list(DEGRADATION_TYPES)


def whole_float(path: str) -> np.ndarray:
    """The former reader: the whole image as float32 RGB in [0, 1] (before the crop)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    img = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    return np.ascontiguousarray(img[..., ::-1])


def former_crop(imgs: list[np.ndarray], rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """The former training crop and flips, on whole float images, drawing from rng as the datasets do."""
    return [np.ascontiguousarray(a) for a in augment(random_crop(imgs, size, rng, 'ref'), rng, True, True)]


def as_float_hwc(tensor: torch.Tensor) -> np.ndarray:
    """A sample's image as the model sees it: unit_tensor on its device, back to (H, W, C)."""
    return unit_tensor(tensor).numpy().transpose(1, 2, 0)


def test_paired_training_sample_is_uint8_and_equals_the_whole_image_float_path(paired_root):
    ds = build_dataset({'name': 'p', 'type': 'PairedTaskDataset', 'phase': 'train', 'tasks': ['sr', 'noise', 'dark'],
                        'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                        'meta_file': osp.join(paired_root, 'meta.txt'), 'gt_size': 16, 'use_hflip': True,
                        'use_rot': True, 'seed': 3})
    for index in range(len(ds)):
        sample = ds[pack_index(2, index, len(ds))]
        assert sample['lq'].dtype == torch.uint8 and sample['gt'].dtype == torch.uint8
        lq_rel, gt_rel, _ = ds.pairs[index]
        lq, gt = former_crop([whole_float(osp.join(paired_root, 'lq', lq_rel)),
                              whole_float(osp.join(paired_root, 'gt', gt_rel))], sample_rng(3, 2, index), 16)
        np.testing.assert_array_equal(as_float_hwc(sample['lq']), lq)
        np.testing.assert_array_equal(as_float_hwc(sample['gt']), gt)


@pytest.mark.parametrize('quantize', ['round', 'truncate', 'none'])
def test_synthetic_training_sample_equals_the_whole_image_float_path(clean_root, quantize):
    specs = {task: {'type': task, 'quantize': quantize} for task in MIO}
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': MIO,
                        'dataroot_gt': clean_root, 'gt_size': 24, 'use_hflip': True, 'use_rot': True, 'seed': 5,
                        'degradations': specs, 'key_crop': True})
    for index in range(len(ds)):
        sample = ds[pack_index(1, index, len(ds))]
        task = MIO[index % len(MIO)]
        rng = sample_rng(5, 1, index)
        full = whole_float(osp.join(clean_root, ds.names[index // len(MIO)]))
        gt = former_crop([full], rng, 24)[0]
        lq, params = degrade(gt, validate_spec(specs[task]), rng)
        key = apply_degradation(former_crop([full], rng, 24)[0], params, rng)
        assert sample['gt'].dtype == torch.uint8
        assert sample['lq'].dtype == (torch.float32 if quantize == 'none' else torch.uint8)
        np.testing.assert_array_equal(as_float_hwc(sample['gt']), gt)
        np.testing.assert_array_equal(as_float_hwc(sample['lq']), lq)
        np.testing.assert_array_equal(as_float_hwc(sample['lq_key']), key)


def test_every_8bit_level_survives_the_uint8_trip_of_both_quantize_modes():
    levels = np.arange(256)
    device = torch.arange(256, dtype=torch.uint8).float() / 255
    rounded = np.rint(levels.astype(np.float32)) / np.float32(255)  # degradations._finish, round
    truncated = (np.floor(levels.astype(np.float64)) / 255.0).astype(np.float32)  # _finish, truncate
    np.testing.assert_array_equal(device.numpy(), rounded)
    np.testing.assert_array_equal(device.numpy(), truncated)


def test_16bit_images_ship_float32_scaled_by_their_own_range(tmp_path):
    img = np.random.default_rng(0).integers(0, 65536, (20, 20, 3)).astype(np.uint16)
    os.makedirs(tmp_path / 'gt')
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), img)
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['dark'],
                        'dataroot_gt': str(tmp_path / 'gt'), 'gt_size': 20, 'seed': 0})
    sample = ds[0]
    assert sample['gt'].dtype == torch.float32
    np.testing.assert_array_equal(sample['gt'].numpy().transpose(1, 2, 0),
                                  img[..., ::-1].astype(np.float32) / np.float32(65535))


def test_to_unit_equals_the_device_scaling():
    img = np.random.default_rng(1).integers(0, 256, (7, 9, 3)).astype(np.uint8)
    np.testing.assert_array_equal(to_unit(img), (torch.from_numpy(img).float() / 255).numpy())


def test_unit_tensor_divides_by_a_tensor_on_the_device_not_a_host_scalar():
    # CUDA computes x / <host scalar> as x * (1 / scalar): one ulp off k / 255 for 126 of the 256 8-bit levels, so
    # a CUDA batch would not hold to_unit's values. A divisor tensor on the device keeps the true division.
    from torch.utils._python_dispatch import TorchDispatchMode

    divisors = []

    class Divisions(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.div, torch.ops.aten.div_):
                divisors.append(args[1])
            return func(*args, **(kwargs or {}))

    levels = torch.arange(256, dtype=torch.uint8)
    with Divisions():
        scaled = unit_tensor(levels)
    assert divisors and all(isinstance(d, torch.Tensor) and d.device == levels.device for d in divisors)
    np.testing.assert_array_equal(scaled.numpy(), to_unit(levels.numpy()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_unit_tensor_on_cuda_equals_to_unit():
    levels = torch.arange(256, dtype=torch.uint8)
    np.testing.assert_array_equal(unit_tensor(levels.cuda()).cpu().numpy(), to_unit(levels.numpy()))


def test_a_batch_mixing_uint8_and_float_samples_collates_as_float_with_the_device_values():
    u8 = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    f32 = torch.rand(3, 4, 4)
    batch = collate_samples([{'lq': u8, 'gt': u8, 'task_id': 0}, {'lq': f32, 'gt': u8, 'task_id': 1}])
    assert batch['lq'].dtype == torch.float32 and batch['gt'].dtype == torch.uint8
    assert torch.equal(batch['lq'][0], u8.float() / 255) and torch.equal(batch['lq'][1], f32)


class _CvThreads(Dataset):
    """One item: the OpenCV thread count of the process that loads it."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        return {'threads': cv2.getNumThreads()}


def loader_opt(workers: int, **extra) -> tuple[dict, dict]:
    dataset_opt = {'phase': 'train', 'batch_size_per_gpu': 1, 'num_worker_per_gpu': workers, **extra}
    return dataset_opt, {'num_gpu': 0, 'dist': False, 'manual_seed': 0, 'world_size': 1, 'rank': 0}


def test_loader_workers_run_opencv_on_one_thread():
    dataset_opt, opt = loader_opt(1)
    loader = build_loader(_CvThreads(), dataset_opt, opt)
    assert int(next(iter(loader))['threads'][0]) == 1


def test_loader_passes_persistent_workers_and_prefetch_factor():
    dataset_opt, opt = loader_opt(1, persistent_workers=True, prefetch_factor=4)
    loader = build_loader(_CvThreads(), dataset_opt, opt)
    assert loader.persistent_workers and loader.prefetch_factor == 4 and loader.num_workers == 1


def test_evaluation_loader_decodes_in_workers_when_asked():
    dataset_opt, opt = loader_opt(2)
    loader = build_loader(_CvThreads(), dict(dataset_opt, phase='val'), opt)
    assert loader.num_workers == 2 and loader.batch_size == 1
    assert build_loader(_CvThreads(), {'phase': 'val'}, opt).num_workers == 0  # CPU-only run, by default
