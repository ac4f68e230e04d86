"""degrade_on: device: the workers ship clean crops and parameters, the model degrades the batch on its device with
the workers' formulas; runs on this path are reproducible and resume exactly."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.models import build_model
from conftest import assert_names, edit, make_options

from basicsr_tur.data.data_util import augment, random_crop, sample_rng, to_unit, unit_tensor
from basicsr_tur.data.degradations import DEGRADATION_TYPES, apply_degradation, sample_params, validate_spec
from basicsr_tur.data.device_degradations import unpack_params
from basicsr_tur.data.loaders import collate_samples
from basicsr_tur.data.samplers import pack_index
from basicsr_tur.models.tur_model import TURModel
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.options import parse_options
from basicsr_tur.utils.sync_count import SyncCounter

MIO = list(DEGRADATION_TYPES)
# Types whose output is a function of the parameters alone (noise and rain also draw a random field).
DETERMINISTIC = ['sr', 'blur', 'jpeg', 'haze', 'dark']


def synthetic(clean_root: str, tasks: list[str], degrade_on: str = 'device', **extra):
    return build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': tasks,
                          'dataroot_gt': clean_root, 'gt_size': 32, 'use_hflip': True, 'use_rot': True, 'seed': 4,
                          'degrade_on': degrade_on, **extra})


def test_device_samples_carry_the_clean_crop_and_the_parameters_the_workers_would_draw(clean_root):
    ds = synthetic(clean_root, MIO)
    for index in range(len(ds)):
        sample = ds[pack_index(1, index, len(ds))]
        assert 'lq' not in sample and sample['gt'].dtype == torch.uint8
        assert ('deg_kernel' in sample) == (MIO[index % len(MIO)] == 'rain')
        rng = sample_rng(4, 1, index)  # the workers' path draws the crop, then the parameters, from this generator
        img = to_unit(ds.read(ds.gt_root, ds.names[index // len(MIO)], 'gt'))
        crop = np.ascontiguousarray(augment(random_crop([img], 32, rng, 'ref'), rng, True, True)[0])
        assert np.array_equal(unit_tensor(sample['gt']).numpy().transpose(1, 2, 0), crop)
        assert unpack_params(sample['deg_params']) == sample_params(validate_spec({'type': MIO[index % len(MIO)]}),
                                                                    rng)


def model_for(tmp_path, clean_root: str, paired_root: str, tasks: list[str]) -> TURModel:
    """The tiny training model of conftest's options, for `tasks`."""
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda opt: opt.update(tasks=tasks))
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    return build_model(opt)


def test_the_model_degrades_device_rows_as_the_workers_do_and_leaves_the_other_rows(tmp_path, clean_root,
                                                                                   paired_root):
    ds = synthetic(clean_root, MIO)
    paired = build_dataset({'name': 'p', 'type': 'PairedTaskDataset', 'phase': 'train', 'tasks': MIO,
                            'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                            'meta_file': osp.join(paired_root, 'meta.txt'), 'gt_size': 32, 'seed': 0})
    samples = [ds[i] for i in range(len(MIO))] + [paired[0]]
    batch = collate_samples(samples)
    model = model_for(tmp_path, clean_root, paired_root, MIO)
    model.feed_data(batch)
    for row, sample in enumerate(samples[:-1]):
        params = unpack_params(sample['deg_params'])
        if params['type'] not in DETERMINISTIC:
            continue
        expected = apply_degradation(unit_tensor(sample['gt']).numpy().transpose(1, 2, 0), params,
                                     np.random.default_rng(0))
        got = model.lq[row].numpy().transpose(1, 2, 0)
        # one 8-bit level at the rare pixels where float summation order moves a value across a rounding edge
        assert np.abs(got - expected).max() <= 1 / 255 + 1e-6
        assert np.mean(np.abs(got - expected) > 1e-6) < 0.01
    assert torch.equal(model.lq[-1], unit_tensor(samples[-1]['lq']))
    assert torch.equal(model.gt[-1], unit_tensor(samples[-1]['gt']))


def test_device_noise_has_the_asked_sigma_and_is_drawn_again_by_another_seed(tmp_path, clean_root, paired_root):
    ds = synthetic(clean_root, ['denoise_25'], degradations={'denoise_25': {'type': 'noise', 'sigma': 25,
                                                                             'quantize': 'none'}})
    samples = [ds[i] for i in range(len(ds))]
    model = model_for(tmp_path, clean_root, paired_root, ['denoise_25'])
    model.feed_data(collate_samples(samples))
    residual = (model.lq - model.gt).flatten()
    interior = residual[(model.gt.flatten() > 0.3) & (model.gt.flatten() < 0.7)]  # away from the clip at 0 and 1
    assert abs(float(interior.std()) * 255 - 25) < 1.5 and abs(float(interior.mean()) * 255) < 1.5
    first = model.lq.clone()
    model.feed_data(collate_samples(samples))
    assert torch.equal(model.lq, first)  # the same samples: the same draws
    model.feed_data(collate_samples([ds[pack_index(1, i, len(ds))] for i in range(len(ds))]))
    assert not torch.equal(model.lq, first)


@pytest.fixture
def device_run(tmp_path, clean_root, paired_root):
    """A finished 8-iteration run on the device path, states at 4 and 8: (root, options path)."""
    opt_path = make_options(tmp_path, clean_root, paired_root, train_set={'degrade_on': 'device'})

    def change(opt):
        opt['tasks'] = ['noise', 'rain', 'blur']
        opt['datasets']['train']['dataset_enlarge_ratio'] = 2
        opt['datasets'].pop('val')
        opt['val'] = {'val_freq': 1000}
        opt['logger']['save_checkpoint_freq'] = 4
    edit(opt_path, change)
    run_train(str(tmp_path), ['-opt', opt_path, '--force_yml', 'train:total_iter=8'])
    return str(tmp_path), opt_path


def test_a_device_path_run_resumes_to_bit_identical_weights(device_run):
    root, opt_path = device_run
    state = osp.join(root, 'experiments', 'tiny', 'training_states', '4.state')
    run_train(root, ['-opt', opt_path, '--force_yml', 'name=fork', f'path:resume_state={state}',
                     'train:total_iter=8'])
    whole = torch.load(osp.join(root, 'experiments', 'tiny', 'models', 'net_g_8.pth'))['params']
    resumed = torch.load(osp.join(root, 'experiments', 'fork', 'models', 'net_g_8.pth'))['params']
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_degrade_on_device_is_refused_for_validation_sets(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'val', 'tasks': ['dark'],
                       'dataroot_gt': clean_root, 'degrade_on': 'device'})
    assert_names(err, "dataset 's'", 'degrade_on: device')


def test_haze_with_a_depth_map_ships_the_depth_crop(tmp_path, clean_root):
    depth_root = tmp_path / 'depth'
    os.makedirs(depth_root)
    ds = synthetic(clean_root, ['haze'])
    for name in ds.names:
        h, w = ds.read(ds.gt_root, name, 'gt').shape[:2]
        np.save(depth_root / (osp.splitext(name)[0] + '.npy'), np.linspace(1, 2, h * w).reshape(h, w))
    sample = synthetic(clean_root, ['haze'], depth_root=str(depth_root))[0]
    assert sample['deg_depth'].shape == (32, 32) and float(sample['deg_depth'].min()) >= 1


def test_degrading_a_batch_in_feed_data_makes_no_host_device_sync(tmp_path, clean_root, paired_root):
    ds = synthetic(clean_root, MIO)
    batch = collate_samples([ds[i] for i in range(len(MIO))])
    model = model_for(tmp_path, clean_root, paired_root, MIO)
    # the parameter rows and seeds live on the host by design (feed_data's task-id check reads the host ids too)
    with SyncCounter(exclude=[batch['deg_params'], batch['deg_seed']]) as syncs:
        model.batch_images(batch, 'lq')
    assert syncs.total == 0, syncs.counts


def test_crops_too_small_for_the_device_kernels_are_refused_when_the_dataset_is_built(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['rain'],
                       'dataroot_gt': clean_root, 'gt_size': 16, 'degrade_on': 'device'})
    assert_names(err, "dataset 's'", "'degradations.rain'", 'gt_size', '16', 'degrade_on: workers')
    # the workers' OpenCV rain takes such crops
    build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['rain'],
                   'dataroot_gt': clean_root, 'gt_size': 16})


def test_a_whole_image_too_small_for_its_blur_kernel_is_named_with_its_file(tmp_path):
    os.makedirs(tmp_path / 'small')
    cv2.imwrite(str(tmp_path / 'small' / 'tiny.png'), np.zeros((8, 8, 3), np.uint8))
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['blur'],
                        'dataroot_gt': str(tmp_path / 'small'), 'degrade_on': 'device',
                        'degradations': {'blur': {'type': 'blur', 'kernel_size': 21}}})
    with pytest.raises(DataError) as err:
        ds[0]
    assert_names(err, "dataset 's'", str(tmp_path / 'small' / 'tiny.png'), '8x8', 'degrade_on: workers')
