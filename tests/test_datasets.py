"""Task-labelled datasets: pairing, task ids, disk/LMDB equality, per-sample determinism, clear errors."""
import os
from os import path as osp

import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from conftest import TASKS, assert_names, write_rgb

from basicsr_tur.data.data_util import unit_tensor
from basicsr_tur.data.samplers import pack_index
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.lmdb_util import build_clean_lmdb, build_paired_lmdb


def paired_opt(root, phase='train', **kw):
    """PairedTaskDataset options on the fixture's disk layout."""
    opt = {'name': 'p', 'type': 'PairedTaskDataset', 'phase': phase, 'tasks': TASKS, 'seed': 3,
           'dataroot_lq': osp.join(root, 'lq'), 'dataroot_gt': osp.join(root, 'gt'), 'gt_size': 16,
           'use_hflip': True, 'use_rot': True}
    opt.update(kw)
    return opt


def assert_same_sample(a, b):
    assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])
    assert a['task_id'] == b['task_id'] and a['task'] == b['task']


def test_folder_scan_pairs_each_task_with_shared_gt(paired_root):
    ds = build_dataset(paired_opt(paired_root))
    assert len(ds) == 9
    assert ds.task_counts() == {'sr': 3, 'noise': 3, 'dark': 3}
    sample = ds[0]
    assert set(sample) == {'lq', 'gt', 'task_id', 'task', 'lq_path', 'gt_path', 'out_name'}
    # 8-bit images ship as uint8; the model scales them to [0, 1] on its device
    assert sample['lq'].shape == (3, 16, 16) and sample['lq'].dtype == torch.uint8
    assert osp.basename(sample['lq_path']) == osp.basename(sample['gt_path'])


def test_meta_file_and_folder_scan_give_the_same_pairs(paired_root):
    a = build_dataset(paired_opt(paired_root, phase='val'))
    b = build_dataset(paired_opt(paired_root, phase='val', meta_file=osp.join(paired_root, 'meta.txt')))
    assert sorted(a.pairs) == sorted(b.pairs)


def test_task_ids_follow_the_options_task_list(paired_root):
    forward = build_dataset(paired_opt(paired_root, phase='val'))
    backward = build_dataset(paired_opt(paired_root, phase='val', tasks=list(reversed(TASKS))))
    ids = {}
    for ds in (forward, backward):
        for i in range(len(ds)):
            sample = ds[i]
            assert sample['task_id'] == ds.opt['tasks'].index(sample['task'])
            ids.setdefault(sample['task'], set()).add(sample['task_id'])
    assert ids == {'sr': {0, 2}, 'noise': {1}, 'dark': {2, 0}}


def test_lmdb_and_disk_backends_give_identical_samples(paired_root, tmp_path):
    meta = osp.join(paired_root, 'meta.txt')
    out = str(tmp_path / 'lmdb')
    from basicsr_tur.data.paired_task_dataset import read_meta_file
    pairs = read_meta_file(meta, {t: i for i, t in enumerate(TASKS)})
    build_paired_lmdb(pairs, osp.join(paired_root, 'lq'), osp.join(paired_root, 'gt'), out)
    disk = build_dataset(paired_opt(paired_root, meta_file=meta))
    lmdb_ds = build_dataset(paired_opt(paired_root, meta_file=osp.join(out, 'meta.txt'), io_backend={'type': 'lmdb'},
                                       dataroot_lq=osp.join(out, 'lq.lmdb'), dataroot_gt=osp.join(out, 'gt.lmdb')))
    assert len(disk) == len(lmdb_ds)
    for i in range(len(disk)):
        assert_same_sample(disk[i], lmdb_ds[i])


def test_lmdb_clean_images_match_disk_for_synthetic_dataset(clean_root, tmp_path):
    out = str(tmp_path / 'clean_lmdb')
    names = sorted(os.listdir(clean_root))
    build_clean_lmdb(names, clean_root, out)
    base = {'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS, 'seed': 1, 'gt_size': 16}
    disk = build_dataset(dict(base, dataroot_gt=clean_root))
    lmdb_ds = build_dataset(dict(base, dataroot_gt=osp.join(out, 'gt.lmdb'), io_backend={'type': 'lmdb'},
                                 meta_file=osp.join(out, 'meta.txt')))
    for i in range(len(disk)):
        assert_same_sample(disk[i], lmdb_ds[i])


def test_lmdb_builder_leaves_nothing_when_an_image_is_unreadable(paired_root, tmp_path):
    open(osp.join(paired_root, 'gt', 'coffee.png'), 'wb').write(b'not a png')
    out = str(tmp_path / 'broken')
    pairs = [('sr/coffee.png', 'coffee.png', 'sr')]
    with pytest.raises(DataError) as err:
        build_paired_lmdb(pairs, osp.join(paired_root, 'lq'), osp.join(paired_root, 'gt'), out)
    assert_names(err, osp.join(paired_root, 'gt', 'coffee.png'))
    assert not osp.exists(out) and not osp.exists(out + '.partial')


def test_sample_depends_only_on_seed_epoch_and_index(paired_root):
    a = build_dataset(paired_opt(paired_root))
    b = build_dataset(paired_opt(paired_root))
    b[5], b[2]
    assert_same_sample(a[4], b[4])
    assert not torch.equal(a[pack_index(1, 4, len(a))]['lq'], b[4]['lq']) or \
        not torch.equal(a[pack_index(1, 3, len(a))]['lq'], b[3]['lq'])


@pytest.mark.parametrize('kind', ['paired', 'mixed'])
def test_a_sample_depends_on_its_index_alone_not_on_the_samples_read_before(kind, clean_root, paired_root):
    # The epoch comes with the index: reading a later epoch's sample leaves a plain index meaning epoch 0.
    ds = build_dataset(paired_opt(paired_root) if kind == 'paired' else mixed_opt(clean_root, paired_root))
    first = ds[4]
    later = ds[pack_index(3, 4, len(ds))]
    assert not torch.equal(later['lq'], first['lq'])
    assert_same_sample(ds[4], first)


def test_synthetic_batches_do_not_depend_on_worker_count(clean_root):
    opt = {'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS, 'seed': 2,
           'dataroot_gt': clean_root, 'gt_size': 16, 'use_hflip': True, 'use_rot': True}
    ds = build_dataset(opt)
    epoch_2 = [pack_index(2, i, len(ds)) for i in range(len(ds))]
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=epoch_2, num_workers=workers)
        batches.append(torch.cat([b['lq'] for b in loader]))
    assert torch.equal(batches[0], batches[1])


def test_synthetic_dataset_degrades_each_task(clean_root):
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
                        'dataroot_gt': clean_root, 'seed': 0})
    assert len(ds) == 3 * len(TASKS)
    for i in range(len(TASKS)):
        s = ds[i]
        assert s['task'] == TASKS[i] and s['task_id'] == i
        assert (unit_tensor(s['lq']) - unit_tensor(s['gt'])).abs().mean() > 0.005


def test_synthetic_dataset_takes_ranges_from_options(clean_root):
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['denoise_25'],
                        'dataroot_gt': clean_root, 'degradations': {'denoise_25': {'type': 'noise', 'sigma': 25}}})
    assert ds.specs['denoise_25']['sigma'] == 25


# ---- errors name the culprit ----

def test_unknown_task_in_meta_file_is_named(paired_root):
    meta = osp.join(paired_root, 'meta.txt')
    with open(meta, 'a') as f:
        f.write('noise/coffee.png coffee.png nosie\n')
    with pytest.raises(DataError) as err:
        build_dataset(paired_opt(paired_root, meta_file=meta))
    assert_names(err, f'{meta} line 10', "'nosie'", "'noise'")


def test_unknown_task_without_degradation_type_is_named(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['derain_x'],
                       'dataroot_gt': clean_root})
    assert_names(err, "dataset 's'", "'derain_x'", "'degradations.derain_x.type'")


def test_missing_lq_folder_is_named(paired_root):
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(paired_opt(paired_root, tasks=TASKS + ['jpeg']))
    assert_names(err, "'jpeg'", osp.join(paired_root, 'lq', 'jpeg'))


def test_missing_gt_partner_is_named(paired_root):
    os.remove(osp.join(paired_root, 'gt', 'chelsea.png'))
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(paired_opt(paired_root))
    assert_names(err, osp.join(paired_root, 'lq', 'sr', 'chelsea.png'), osp.join(paired_root, 'gt', 'chelsea.png'))


def test_missing_image_listed_in_meta_file_is_named(paired_root):
    meta = osp.join(paired_root, 'meta.txt')
    ds = build_dataset(paired_opt(paired_root, meta_file=meta))
    os.remove(osp.join(paired_root, 'lq', 'sr', 'astronaut.png'))
    idx = [i for i, p in enumerate(ds.pairs) if p[0] == 'sr/astronaut.png'][0]
    with pytest.raises(FileNotFoundError) as err:
        ds[idx]
    assert_names(err, "dataset 'p'", osp.join(paired_root, 'lq', 'sr', 'astronaut.png'))


def test_unreadable_image_is_named(paired_root):
    ds = build_dataset(paired_opt(paired_root))
    open(osp.join(paired_root, 'lq', 'noise', 'coffee.png'), 'wb').write(b'\x89PNG garbage')
    idx = [i for i, p in enumerate(ds.pairs) if p[0] == osp.join('noise', 'coffee.png')][0]
    with pytest.raises(DataError) as err:
        ds[idx]
    assert_names(err, "dataset 'p'", osp.join(paired_root, 'lq', 'noise', 'coffee.png'))


def test_lq_gt_size_mismatch_is_named(paired_root):
    write_rgb(osp.join(paired_root, 'lq', 'dark', 'astronaut.png'), np.zeros((20, 30, 3), np.uint8))
    ds = build_dataset(paired_opt(paired_root, phase='val'))
    idx = [i for i, p in enumerate(ds.pairs) if p[0] == osp.join('dark', 'astronaut.png')][0]
    with pytest.raises(DataError) as err:
        ds[idx]
    assert_names(err, "dataset 'p'", f"{osp.join(paired_root, 'lq', 'dark', 'astronaut.png')} is 20x30",
                 f"{osp.join(paired_root, 'gt', 'astronaut.png')} is 40x40")


def test_enlarged_repeats_draw_their_own_crops(paired_root):
    ds = build_dataset(paired_opt(paired_root, dataset_enlarge_ratio=2))
    assert len(ds) == 18
    assert ds[0]['lq_path'] == ds[9]['lq_path']
    assert not torch.equal(ds[0]['lq'], ds[9]['lq'])


def test_make_lmdb_script_builds_from_task_folders(paired_root, tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_lmdb', osp.join(osp.dirname(osp.dirname(__file__)),
                                                                        'scripts', 'make_lmdb.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = str(tmp_path / 'from_folders')
    assert script.main(['--lq', osp.join(paired_root, 'lq'), '--gt', osp.join(paired_root, 'gt'),
                        '--tasks', *TASKS, '--out', out]) == 0
    assert '3 pairs' in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ['gt.lmdb', 'lq.lmdb', 'meta.txt']
    assert len(open(osp.join(out, 'lq.lmdb', 'meta_info.txt')).read().splitlines()) == 9
    assert script.main(['--lq', osp.join(paired_root, 'lq'), '--gt', osp.join(paired_root, 'gt'),
                        '--tasks', *TASKS, '--out', out]) == 1  # refuses to overwrite


@pytest.mark.parametrize('kind', ['paired', 'synthetic'])
def test_key_crop_returns_a_second_crop_of_the_same_image(kind, paired_root, clean_root):
    if kind == 'paired':
        ds = build_dataset(paired_opt(paired_root, key_crop=True))
    else:
        ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS, 'seed': 0,
                            'dataroot_gt': clean_root, 'gt_size': 16, 'key_crop': True})
    sample = ds[1]
    assert sample['lq_key'].shape == sample['lq'].shape
    assert not torch.equal(sample['lq_key'], sample['lq'])
    assert torch.equal(ds[1]['lq_key'], sample['lq_key'])


def mixed_opt(clean_root, paired_root, **kw):
    """On-the-fly noise on clean images beside fixed sr/dark pairs, as one dataset."""
    opt = {'name': 'mix', 'type': 'MixedTaskDataset', 'phase': 'train', 'tasks': TASKS, 'seed': 5, 'gt_size': 16,
           'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root,
                      'degradations': {'sr': {'type': 'sr'}, 'noise': {'type': 'noise', 'sigma': 25},
                                       'dark': {'type': 'dark'}}},
                     {'type': 'PairedTaskDataset', 'dataroot_lq': osp.join(paired_root, 'lq'),
                      'dataroot_gt': osp.join(paired_root, 'gt'), 'dataset_enlarge_ratio': 2}]}
    opt.update(kw)
    return opt


def test_mixed_dataset_concatenates_parts_with_their_task_ids(clean_root, paired_root):
    ds = build_dataset(mixed_opt(clean_root, paired_root))
    assert len(ds) == 9 + 18
    assert ds[0]['lq_path'].endswith('#sr') and ds[9]['lq_path'].endswith('.png')
    assert all(ds[i]['task_id'] == TASKS.index(ds[i]['task']) for i in (0, 1, 2, 9, 20))
    assert ds[0]['lq'].shape == (3, 16, 16) and ds[20]['gt'].shape == (3, 16, 16)


def test_mixed_dataset_epoch_reaches_every_part(clean_root, paired_root):
    ds = build_dataset(mixed_opt(clean_root, paired_root))
    first = [ds[i]['lq'] for i in (1, 12)]
    assert all(not torch.equal(a, ds[pack_index(3, i, len(ds))]['lq']) for a, i in zip(first, (1, 12)))


def test_mixed_dataset_part_keys_are_checked(tmp_path, clean_root, paired_root):
    import yaml
    from conftest import make_options

    from basicsr_tur.utils.option_file import OptionError
    from basicsr_tur.utils.options import parse_options
    path = make_options(tmp_path, clean_root, paired_root)
    opt = yaml.safe_load(open(path))
    opt['datasets']['train'] = mixed_opt(clean_root, paired_root, num_worker_per_gpu=0, batch_size_per_gpu=4)
    opt['datasets']['train']['parts'][1]['dataroot_qq'] = 'x'
    open(path, 'w').write(yaml.safe_dump(opt))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'datasets.train.parts[1].dataroot_qq'")


def test_synth_tasks_draw_only_those_tasks_keeping_the_setting_ids(clean_root):
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'seed': 0, 'gt_size': 16,
                        'tasks': ['denoise_15', 'denoise_50', 'derain'], 'synth_tasks': ['denoise_50', 'denoise_15'],
                        'degradations': {'denoise_15': {'type': 'noise', 'sigma': 15},
                                         'denoise_50': {'type': 'noise', 'sigma': 50}},
                        'dataroot_gt': clean_root, 'dataset_enlarge_ratio': 3})
    assert len(ds) == 3 * 2 * 3  # images x synthesised tasks x enlarge ratio
    assert ds.item_tasks() == [1, 0] * 9
    samples = [ds[i] for i in range(4)]
    assert [s['task'] for s in samples] == ['denoise_50', 'denoise_15'] * 2
    assert [s['task_id'] for s in samples] == [1, 0, 1, 0]
    assert samples[0]['gt_path'] == samples[1]['gt_path'] != samples[2]['gt_path']  # each image once per task


def test_synth_tasks_outside_the_setting_are_named(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'dataroot_gt': clean_root,
                       'tasks': ['denoise_50', 'derain'], 'synth_tasks': ['denoise_51']})
    assert_names(err, "dataset 's'", "'synth_tasks'", "'denoise_51'", "'denoise_50'")


def test_degradation_of_a_task_not_synthesised_is_named(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'dataroot_gt': clean_root,
                       'tasks': ['noise', 'derain'], 'synth_tasks': ['noise'],
                       'degradations': {'derain': {'type': 'rain'}}})
    assert_names(err, "dataset 's'", "'degradations.derain'", '(noise)')


def test_mixed_dataset_with_a_synthesised_subset_keeps_the_setting_ids(clean_root, paired_root):
    opt = mixed_opt(clean_root, paired_root)
    opt['parts'][0] = {'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root, 'synth_tasks': ['noise'],
                       'degradations': {'noise': {'type': 'noise', 'sigma': 25, 'quantize': 'truncate'}},
                       'dataset_enlarge_ratio': 3}
    ds = build_dataset(opt)
    assert len(ds) == 3 * 3 + 18
    assert ds.item_tasks()[:9] == [TASKS.index('noise')] * 9
    sample = ds[0]
    assert sample['task'] == 'noise' and torch.equal(sample['lq'] * 255, torch.round(sample['lq'] * 255))
