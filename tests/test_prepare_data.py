"""basicsr_tur/prepare and scripts/prepare_data.py: every setting's downloads -> the pairs and meta files its
options read, LMDB = disk."""
from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import shutil
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms as T
import yaml
from basicsr.data import build_dataset
from conftest import TASKS, assert_names, write_rgb
from PIL import Image

from basicsr_tur.data.data_util import task_index
from basicsr_tur.data.paired_task_dataset import (
    PREPARE_FORMAT,
    old_format_note,
    read_meta_file,
    read_meta_header,
    read_meta_source,
    read_meta_sources,
)
from basicsr_tur.data.samplers import pack_index
from basicsr_tur.data.synthetic_task_dataset import read_image_list
from basicsr_tur.prepare import settings as S
from basicsr_tur.prepare import writers
from basicsr_tur.prepare.build import prepare, summary_lines
from basicsr_tur.prepare.images import crop16, transweather_size, wgws_size
from basicsr_tur.prepare.mioir import mio_sub_name, mio_windows
from basicsr_tur.prepare.plan import PrepareError
from basicsr_tur.utils.errors import UserError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The command line (argparse, printing, exit status) is the script's; everything else is the package's.
_spec = importlib.util.spec_from_file_location('prepare_data', osp.join(REPO, 'scripts', 'prepare_data.py'))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

MIO_CROP = (8, 8, 2)  # 16x16 images: four 8x8 sub-images instead of MiOIR's 300x300

# --- Tiny replicas of the downloads, with the real naming -------------------------------------------------------------
# Each pair's LQ is the negative of its GT (255 - GT), so a wrong partner shows in the pixels.
# RAW: (LQ, GT) paths under the raw folder (GT '' for clean images); EXPECTED: the distinct meta lines per split and
# LINES: the number of meta lines per task where the authors repeat pairs.
RAW = {
    'mio7': [('DF2K/GT/0001.png', ''), ('MiO_test/original/GT/0801.png', ''), ('MiO_test/original/GT/0802.png', '')],
    'aio3': [('BSD400/test_001.png', ''), ('WED/00001.bmp', ''), ('BSD68/3096.png', ''),
             ('Rain100L/train/rainy/rain-1.png', 'Rain100L/train/gt/norain-1.png'),
             ('Rain100L/train/rainy/rain-2.png', 'Rain100L/train/gt/norain-2.png'),
             ('OTS/hazy/part1/0001_0.8_0.04.jpg', 'OTS/clear/0001.jpg'),
             ('OTS/hazy/part1/0001_0.9_0.1.jpg', 'OTS/clear/0001.jpg'),  # not in AirNet's list: left out
             ('OTS/hazy/part2/0002_1_0.2.jpg', 'OTS/clear/0002.jpg'),
             ('Rain100L/test/input/1.png', 'Rain100L/test/target/1.png'),
             ('SOTS/outdoor/hazy/0001_0.8_0.2.jpg', 'SOTS/outdoor/gt/0001.png')],
    'allweather': [('allweather/input/im_0001_s80_a04.png', 'allweather/gt/im_0001_s80_a04.png'),
                   ('allweather/input/beautiful_smile_00003.jpg', 'allweather/gt/beautiful_smile_00003.jpg'),
                   ('allweather/input/2_rain.png', 'allweather/gt/2_rain.png'),
                   ('Outdoor-Rain/test1/input/im_0002_s85_a05.png', 'Outdoor-Rain/test1/gt/im_0002.png'),
                   ('Snow100K/Snow100K-L/synthetic/city_read_13800.jpg', 'Snow100K/Snow100K-L/gt/city_read_13800.jpg'),
                   ('RainDrop/test_a/data/5_rain.png', 'RainDrop/test_a/gt/5_clean.png')],
    'realweather': [('SPA+/train/input/003/003_12-5.png', 'SPA+/train/gt/003/003_12.png'),
                    ('SPA+/train/input/003/003_12-6.png', 'SPA+/train/gt/003/003_12.png'),
                    ('SPA+/test/input/1.png', 'SPA+/test/gt/1.png'),
                    ('RealSnow/train/input/a.png', 'RealSnow/train/gt/a.png'),
                    ('RealSnow/test/input/b.png', 'RealSnow/test/gt/b.png'),
                    ('REVIDE/train/input/W001/00001.png', 'REVIDE/train/gt/W001/00001.png'),
                    ('REVIDE/test/input/E001/00002.png', 'REVIDE/test/gt/E001/00002.png')],
}
RAW['aio5'] = RAW['aio3'] + [
    ('GOPRO_Large/train/GOPR0372_07_00/blur/000047.png', 'GOPRO_Large/train/GOPR0372_07_00/sharp/000047.png'),
    ('GOPRO_Large/train/GOPR0372_07_00/blur_gamma/000047.png', ''),  # not the blur folder: left out
    ('GOPRO_Large/test/GOPR0384_11_00/blur/000001.png', 'GOPRO_Large/test/GOPR0384_11_00/sharp/000001.png'),
    ('LOL/our485/low/2.png', 'LOL/our485/high/2.png'), ('LOL/eval15/low/1.png', 'LOL/eval15/high/1.png')]
LISTS = {
    'aio3': {'OTS/hazy_outside.txt': ['synthetic/part1/0001_0.8_0.04.jpg', 'synthetic/part2/0002_1_0.2.jpg']},
    'allweather': {'allweather.txt': ['./allweather/input/im_0001_s80_a04.png',
                                      './allweather/input/beautiful_smile_00003.jpg', './allweather/input/2_rain.png']},
}
LISTS['aio5'] = LISTS['aio3']

CLEAN = {'aio3': ['denoise/clean/test_001.png', 'denoise/clean/00001.bmp']}  # meta_train_clean.txt, BSD400 then WED
CLEAN['aio5'] = CLEAN['aio3']
_RAIN_HAZE = {('derain/rainy/rain-1.png', 'derain/gt/norain-1.png', 'derain'),
              ('derain/rainy/rain-2.png', 'derain/gt/norain-2.png', 'derain'),
              ('dehaze/hazy/part1/0001_0.8_0.04.jpg', 'dehaze/clear/0001.jpg', 'dehaze'),
              ('dehaze/hazy/part2/0002_1_0.2.jpg', 'dehaze/clear/0002.jpg', 'dehaze')}
_AIO_TESTS = {'test_rain100l': {('rain100l/rainy/1.png', 'rain100l/gt/1.png', 'derain')},
              'test_sots': {('sots/hazy/0001_0.8_0.2.png', 'sots/clear/0001.png', 'dehaze')}}
EXPECTED = {
    'mio7': {'train': {(f'{t}/0001_s00{k}.png', f'0001_s00{k}.png', t) for t in S.MIO_TASKS for k in range(1, 5)},
             'test_indis': {(f'{t}/{n}.png', f'{n}.png', t) for t in S.MIO_TASKS for n in ('0801', '0802')}},
    'aio3': {'train': _RAIN_HAZE, **_AIO_TESTS,
             'test_bsd68': {(f'bsd68/noisy{s}/3096.png', 'bsd68/clean/3096.png', f'denoise_{s}')
                            for s in (15, 25, 50)}},
    'aio5': {'train': _RAIN_HAZE | {
                 ('deblur/input/GOPR0372_07_00/000047.png', 'deblur/target/GOPR0372_07_00/000047.png', 'deblur'),
                 ('lowlight/low/2.png', 'lowlight/high/2.png', 'lowlight')}, **_AIO_TESTS,
             'test_bsd68': {('bsd68/noisy25/3096.png', 'bsd68/clean/3096.png', 'denoise_25')},
             'test_gopro': {('gopro/input/GOPR0384_11_00/000001.png', 'gopro/target/GOPR0384_11_00/000001.png',
                             'deblur')},
             'test_lol': {('lol/low/1.png', 'lol/high/1.png', 'lowlight')}},
    'allweather': {'train': {('input/im_0001_s80_a04.png', 'gt/im_0001_s80_a04.png', 'rain_haze'),
                             ('input/beautiful_smile_00003.jpg', 'gt/beautiful_smile_00003.jpg', 'snow'),
                             ('input/2_rain.png', 'gt/2_rain.png', 'raindrop')},
                   'test_test1': {('test1/input/im_0002_s85_a05.png', 'test1/gt/im_0002.png', 'rain_haze')},
                   'test_snow100k_l': {('snow100k_l/input/city_read_13800.png', 'snow100k_l/gt/city_read_13800.png',
                                        'snow')},
                   'test_raindrop_a': {('raindrop_a/input/5_rain.png', 'raindrop_a/gt/5_clean.png', 'raindrop')}},
    'realweather': {'train': {('spa_plus/input/003/003_12-5.png', 'spa_plus/gt/003/003_12.png', 'rain'),
                              ('spa_plus/input/003/003_12-6.png', 'spa_plus/gt/003/003_12.png', 'rain'),
                              ('realsnow/input/a.png', 'realsnow/gt/a.png', 'snow'),
                              ('revide/input/W001/00001.png', 'revide/gt/W001/00001.png', 'haze')},
                    'test_spa': {('spa_plus/input/1.png', 'spa_plus/gt/1.png', 'rain')},
                    'test_realsnow': {('realsnow/input/b.png', 'realsnow/gt/b.png', 'snow')},
                    'test_revide': {('revide/input/E001/00002.png', 'revide/gt/E001/00002.png', 'haze')}},
}
LINES = {'aio3': {'derain': 240, 'dehaze': 2},
         'aio5': {'derain': 240, 'dehaze': 2, 'deblur': 10, 'lowlight': 50}}
# Replica images that are not 16x16, (h, w): WGWS-Net's test resize needs sides of 32 (REVIDE 64).
SIZES = {'SPA+/test/gt/1.png': (45, 70), 'RealSnow/test/gt/b.png': (64, 33),
         'REVIDE/test/gt/E001/00002.png': (71, 135)}
MIO_RELEASED = [(f'MiO_test/single_indis/{t}/{n}.png', f'MiO_test/original/GT/{n}.png')
                for t in S.MIO_TASKS for n in ('0801', '0802')]


def smooth_image(rng: np.random.Generator, h: int = 16, w: int = 16) -> np.ndarray:
    """A low-frequency RGB uint8 image (JPEG keeps it within a few levels)."""
    return cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def make_raw(raw: str, setting: str, seed: int = 0, released: bool = False) -> None:
    """Write the setting's replica: each LQ the negative of its GT, list files, MiOIR depth maps (and, with
    released, MiOIR's released degraded test set MiO_test/single_indis/<task>/)."""
    rng = np.random.default_rng(seed)
    gts = {}
    for lq, gt in RAW[setting] + (MIO_RELEASED if released else []):
        if gt:
            gts.setdefault(gt, smooth_image(rng, *SIZES.get(gt, (16, 16))))
            write_rgb(osp.join(raw, gt), gts[gt])
            write_rgb(osp.join(raw, lq), 255 - gts[gt])
        else:
            write_rgb(osp.join(raw, lq), smooth_image(rng))
    for rel, lines in LISTS.get(setting, {}).items():
        with open(osp.join(raw, rel), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    if setting == 'mio7':  # MiOIR's depth maps: a quarter-size .npy and the test set's predict_depth.mat
        from scipy.io import savemat
        os.makedirs(osp.join(raw, 'DF2K/depth'))
        np.save(osp.join(raw, 'DF2K/depth/0001.npy'), rng.uniform(0.1, 1, (4, 4)).astype(np.float32))
        os.makedirs(osp.join(raw, 'MiO_test/original/depth/LR_tensor/0801'))
        savemat(osp.join(raw, 'MiO_test/original/depth/LR_tensor/0801/predict_depth.mat'),
                {'data_obj': rng.uniform(0.1, 1, (4, 4))})


@pytest.fixture(autouse=True)
def small_mio_crop(monkeypatch):
    """MiOIR's 300x300 sub-images become 8x8 ones, so that 16x16 images make four."""
    mio7 = S.SETTINGS['mio7']
    part = dataclasses.replace(mio7.train[0], crop=MIO_CROP)
    monkeypatch.setitem(S.SETTINGS, 'mio7', dataclasses.replace(mio7, train=(part,)))


def build(tmp_path, setting: str, lmdb: bool = False, seed: int = 0, released: bool = False) -> tuple[str, str]:
    """Replica under tmp_path/raw, prepared into tmp_path/<setting>; returns (root, setting folder)."""
    root = str(tmp_path)
    raw = osp.join(root, 'raw')
    if not osp.isdir(raw):
        make_raw(raw, setting, released=released)
    prepare(setting, root, seed=seed, lmdb=lmdb, workers=1)
    return root, osp.join(root, setting)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """Each setting prepared once with its LMDBs: {setting: (root, setting folder)}."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mio7 = S.SETTINGS['mio7']
        mp.setitem(S.SETTINGS, 'mio7', dataclasses.replace(
            mio7, train=(dataclasses.replace(mio7.train[0], crop=MIO_CROP),)))
        for setting in S.SETTINGS:
            out[setting] = build(tmp_path_factory.mktemp(setting), setting, lmdb=True)
    return out


def option_files(setting: str) -> list[str]:
    files = sorted(glob.glob(osp.join(REPO, 'options', '*', setting, '*.yml')))
    assert files, f'no options for {setting}'
    return files


def option_datasets(opt: dict) -> list[dict]:
    """Every dataset dict of an options file that reads files, the parts of a mixed dataset included."""
    found = []

    def walk(d: dict) -> None:
        if 'dataroot_gt' in d or 'meta_file' in d:
            found.append(d)
        for part in d.get('parts') or []:
            walk(part)

    for d in (opt.get('datasets') or {}).values():
        walk(d)
    return found


def options_tasks(setting: str) -> list[str]:
    tasks = {tuple(yaml.safe_load(open(f))['tasks']) for f in option_files(setting)}
    assert len(tasks) == 1, f'{setting} options disagree on tasks: {tasks}'
    return list(tasks.pop())


def read_gray(path: str) -> np.ndarray:
    return cv2.imread(path, cv2.IMREAD_COLOR).astype(np.float32)


# --- Pure rules -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('rule, lq, gt', [
    (S.rain100l_gt, 'rain-12.png', ('norain-12.png',)),
    (S.ots_gt, 'part1/0025_0.8_0.04.jpg', ('0025.jpg', '0025.png')),
    (S.sots_gt, '0001_0.8_0.2.jpg', ('0001.png',)),
    (S.gopro_gt, 'GOPR0372_07_00/blur/000047.png', ('GOPR0372_07_00/sharp/000047.png',)),
    (S.outdoor_rain_gt, 'im_0001_s80_a04.png', ('im_0001.png', 'im_0001_s80_a04.png')),  # or TransWeather's copy
    (S.raindrop_gt, '3_rain.png', ('3_clean.png',)),
    (S.spa_plus_gt, '003/003_12-5.png', ('003/003_12.png',)),
    (S.same_name, 'W001/00001.png', ('W001/00001.png',)),
])
def test_pairing_rules_give_the_authors_partner(rule, lq, gt):
    assert rule(lq) == gt


@pytest.mark.parametrize('rule, lq', [
    (S.rain100l_gt, 'norain-12.png'), (S.ots_gt, 'part1/0025.jpg'), (S.sots_gt, 'hazy_0001.jpg'),
    (S.gopro_gt, 'GOPR0372_07_00/sharp/000047.png'), (S.outdoor_rain_gt, 'im_0001.png'),
    (S.raindrop_gt, '3_clean.png'), (S.spa_plus_gt, '003/004_12-5.png'), (S.allweather_task, 'photo.tif'),
])
def test_names_off_the_rule_raise_naming_error(rule, lq):
    with pytest.raises(S.NamingError) as err:
        rule(lq)
    assert_names(err, lq.split('/')[-1])


@pytest.mark.parametrize('name, task', [('im_0001_s80_a04.png', 'rain_haze'), ('beautiful_smile_00003.jpg', 'snow'),
                                        ('city_read_13800.jpg', 'snow'), ('12_rain.png', 'raindrop')])
def test_allweather_task_is_told_by_the_source_naming(name, task):
    assert S.allweather_task(name) == task


def test_mio_windows_match_gen_sub(tmp_path):
    def gen_sub(h, w, crop_sz=300, step=150, thres_sz=48):  # MiOIR data_script/gen_sub.py, worker()
        h_space = np.arange(0, h - crop_sz + 1, step)
        if h - (h_space[-1] + crop_sz) > thres_sz:
            h_space = np.append(h_space, h - crop_sz)
        w_space = np.arange(0, w - crop_sz + 1, step)
        if w - (w_space[-1] + crop_sz) > thres_sz:
            w_space = np.append(w_space, w - crop_sz)
        return [(int(x), int(y)) for x in h_space for y in w_space]

    for h, w in [(1356, 2040), (300, 300), (449, 520), (1080, 1920)]:
        assert mio_windows(h, w) == gen_sub(h, w)
    assert mio_sub_name('0001.png', 3) == '0001_s003.png'


def test_test_image_geometry_follows_airnet_and_transweather():
    assert crop16(np.zeros((481, 321, 3))).shape == (480, 320, 3)
    assert transweather_size(720, 480) == (720, 480)
    assert transweather_size(1280, 720) == (1024, 576)
    assert transweather_size(500, 2000) == (256, 1024)
    assert transweather_size(35, 20) == (48, 32)


def test_wgws_sizes_round_each_side_down_to_a_multiple_of_32():
    assert wgws_size(70, 45) == (64, 32)
    assert wgws_size(1354, 900) == (1344, 896)  # a REVIDE frame (2708 x 1800) once halved
    assert wgws_size(512, 512) == (512, 512)


# --- Every setting ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('setting', list(S.SETTINGS))
def test_options_read_the_folders_and_meta_files_written(setting):
    setting_t = S.SETTINGS[setting]
    assert options_tasks(setting) == list(setting_t.tasks)
    written = {f'datasets/{setting}/{S.meta_name(split)}': split for split in S.splits_of(setting_t)}
    clean = {f'datasets/{setting}/{S.clean_meta_name(split)}': split
             for split, parts in S.splits_of(setting_t).items() if any(p.kind == 'clean' for p in parts)}
    used = set()
    for file in option_files(setting):
        for d in option_datasets(yaml.safe_load(open(file))):
            where = f"{osp.relpath(file, REPO)} dataset '{d.get('name')}'"
            synthetic = d.get('type') == 'SyntheticTaskDataset'
            metas = clean if synthetic else written
            assert d.get('meta_file') in metas, f'{where}: meta_file {d.get("meta_file")} is not written'
            split = metas[d['meta_file']]
            lq_root, gt_root = S.roots_of(setting_t, split)
            assert synthetic or d['dataroot_lq'] == f'datasets/{setting}/{lq_root}', where
            assert d['dataroot_gt'] == f'datasets/{setting}/{gt_root}', where
            used.add(d['meta_file'])
    assert used == set(written) | set(clean), f'meta files no options read: {set(written) | set(clean) - used}'


@pytest.mark.parametrize('setting', list(S.SETTINGS))
def test_each_lq_gets_its_partner_and_task(setting, built):
    root, out = built[setting]
    index = task_index(options_tasks(setting), setting)
    for split, expected in EXPECTED[setting].items():
        pairs = read_meta_file(osp.join(out, S.meta_name(split)), index)
        assert set(pairs) == expected, split
        lq_root, gt_root = (osp.join(out, r) for r in S.roots_of(S.SETTINGS[setting], split))
        for lq, gt, task in set(pairs):
            lq_img, gt_img = read_gray(osp.join(lq_root, lq)), read_gray(osp.join(gt_root, gt))
            assert lq_img.shape == gt_img.shape
            if setting != 'mio7' and not task.startswith('denoise'):  # real pairs: LQ is the negative of its GT
                assert np.abs(lq_img + gt_img - 255).mean() < 6, (split, lq, gt)
    if setting in LINES:
        pairs = read_meta_file(osp.join(out, 'meta_train.txt'), index)
        assert {t: sum(p[2] == t for p in pairs) for t in setting_tasks_of_lines(pairs)} == LINES[setting]
    if setting in CLEAN:
        assert read_image_list(osp.join(out, 'meta_train_clean.txt')) == CLEAN[setting]
        for rel in CLEAN[setting]:
            name = osp.basename(rel)
            raw = osp.join(root, 'raw', 'BSD400' if name.startswith('test') else 'WED', name)
            assert np.array_equal(read_gray(osp.join(out, 'train', rel)), read_gray(raw))


def setting_tasks_of_lines(pairs: list[tuple[str, str, str]]) -> list[str]:
    """The tasks that have lines in a meta file."""
    return list(dict.fromkeys(task for _, _, task in pairs))


@pytest.mark.parametrize('setting', list(S.SETTINGS))
def test_lmdb_and_disk_backends_give_identical_samples(setting, built):
    root, out = built[setting]
    tasks = options_tasks(setting)
    seen = set()
    for file in option_files(setting):
        for d in option_datasets(yaml.safe_load(open(file))):
            if d['meta_file'] in seen:
                continue
            seen.add(d['meta_file'])
            split = osp.splitext(osp.basename(d['meta_file']))[0][len('meta_'):]
            db = osp.join(out, 'lmdb', split)
            if d['type'] == 'SyntheticTaskDataset':  # clean images: every sample of one epoch is the same
                disk = dict(d, name=d.get('name', 'clean'), phase='train', tasks=tasks, gt_size=8, seed=1,
                            **{k: osp.join(root, d[k][len('datasets/'):]) for k in ('dataroot_gt', 'meta_file')})
                a = build_dataset(disk)
                b = build_dataset(dict(disk, dataroot_gt=osp.join(db, 'gt.lmdb'), meta_file=osp.join(db, 'meta.txt'),
                                       io_backend={'type': 'lmdb'}))
                assert a.names == b.names and len(a) == len(b)
                for i in range(len(a)):  # degrade_on: device samples carry gt and parameters, no lq
                    sa, sb = a[i], b[i]
                    assert sa.keys() == sb.keys() and sa['task_id'] == sb['task_id']
                    assert all(torch.equal(sa[k], sb[k]) for k in sa if torch.is_tensor(sa[k]))
                continue
            disk = {'name': d.get('name', 'pairs'), 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': tasks,
                    **{k: osp.join(root, d[k][len('datasets/'):]) for k in ('dataroot_lq', 'dataroot_gt', 'meta_file')}}
            lmdb = dict(disk, dataroot_lq=osp.join(db, 'lq.lmdb'), dataroot_gt=osp.join(db, 'gt.lmdb'),
                        meta_file=osp.join(db, 'meta.txt'), io_backend={'type': 'lmdb'})
            a, b = build_dataset(disk), build_dataset(lmdb)
            assert a.pairs == b.pairs and a.source == b.source
            for i in sorted({a.pairs.index(p) for p in a.pairs}):
                x, y = a[i], b[i]
                assert torch.equal(x['lq'], y['lq']) and torch.equal(x['gt'], y['gt']), (split, a.pairs[i])
                assert x['task_id'] == y['task_id'] == tasks.index(x['task'])
    assert seen


# --- Synthesized sets -------------------------------------------------------------------------------------------------

def test_noisy_copies_add_gaussian_noise_of_their_sigma(built):
    _, out = built['aio3']
    for sigma in (15, 25, 50):
        clean = read_gray(osp.join(out, 'test', 'bsd68', 'clean', '3096.png'))
        noisy = read_gray(osp.join(out, 'test', 'bsd68', f'noisy{sigma}', '3096.png'))
        assert 0.6 * sigma < np.std(noisy - clean) < 1.2 * sigma


# BSD68 replica of odd sizes, names in an order where sorted (string) order is not numeric order.
BSD68_ODD = {'3096.png': (35, 50), '101085.png': (17, 33), '2092.png': (48, 21),
             '12003.png': (40, 40)}


def airnet_test_noise(folder: str, sigmas: tuple[int, ...]) -> dict[tuple[int, str], np.ndarray]:
    """{(sigma, name): noisy image} as AirNet/PromptIR's test.py makes them (utils/dataset_utils.py
    DenoiseTestDataset): numpy seeded 0 once, then per sigma in turn every image in folder order
    (sorted here), read by PIL, centre-cropped to multiples of 16, noised by the next
    randn(H, W, 3), truncated to uint8."""
    stream = np.random.RandomState(0)  # np.random.seed(0): the same MT19937 stream
    out = {}
    for sigma in sigmas:
        for name in sorted(os.listdir(folder)):
            clean = np.array(Image.open(osp.join(folder, name)).convert('RGB'))
            h, w = clean.shape[:2]
            top, left = h % 16 // 2, w % 16 // 2
            clean = clean[top:top + h // 16 * 16, left:left + w // 16 * 16, :]
            noise = stream.randn(*clean.shape)
            out[sigma, name] = np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)
    return out


def odd_bsd68(tmp_path, setting: str, seed: int = 0) -> tuple[str, str]:
    """The replica with BSD68_ODD as BSD68, prepared: (raw BSD68 folder, setting folder)."""
    raw = str(tmp_path / 'raw')
    make_raw(raw, setting)
    rng = np.random.default_rng(1)
    for name, (h, w) in BSD68_ODD.items():
        write_rgb(osp.join(raw, 'BSD68', name), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    prepare(setting, str(tmp_path), seed=seed, workers=2)
    return osp.join(raw, 'BSD68'), osp.join(str(tmp_path), setting)


@pytest.mark.parametrize('setting, sigmas', [('aio3', (15, 25, 50)), ('aio5', (25,))])
def test_bsd68_noise_is_airnet_promptir_test_noise_bit_for_bit(tmp_path, setting, sigmas):
    # aio5 scores sigma 25 only: its stream starts there (the assumption its # source: line states).
    folder, out = odd_bsd68(tmp_path, setting)
    assert [p.sigma for p in S.SETTINGS[setting].tests['bsd68']] == list(sigmas)
    expected = airnet_test_noise(folder, sigmas)
    for (sigma, name), noisy in expected.items():
        written = np.array(Image.open(osp.join(out, 'test', 'bsd68', f'noisy{sigma}', name)))
        assert written.dtype == noisy.dtype and np.array_equal(written, noisy), (sigma, name)
        clean = np.array(Image.open(osp.join(out, 'test', 'bsd68', 'clean', name)))
        assert clean.shape == noisy.shape
    source = read_meta_source(osp.join(out, 'meta_test_bsd68.txt'))
    said = "seeded as AirNet/PromptIR's test.py (numpy seed 0, sigma order, sorted file order)"
    assert said in source


def test_bsd68_noise_does_not_depend_on_the_seed_option(tmp_path):
    trees = []
    for seed in (0, 2025):
        _, out = odd_bsd68(tmp_path / str(seed), 'aio3', seed=seed)
        files = sorted(glob.glob(osp.join(out, 'test', 'bsd68', '*', '*.png')))
        trees.append({osp.relpath(f, out): open(f, 'rb').read() for f in files})
    assert trees[0] == trees[1] and len(trees[0]) == 4 * len(BSD68_ODD)


def wgws_eval(path: str, halve: bool) -> np.ndarray:
    """An image as WGWS-Net's testing_model_Seting3.py scores it, rounded to uint8 (H, W, 3):
    datasets/dataset_pairs_wRandomSample_Triplet_txt.py my_dataset_eval (halve=False) or
    my_dataset_eval_realH (halve=True: PIL bilinear to half size first), ToTensor, then torchvision
    Resize to multiples of 32 (rounded down) when a side is not one; antialias=False: the default
    for tensors of the torchvision of 2023."""
    img = Image.open(path)
    if halve:
        width_ori, height_ori = img.size
        img = img.resize((int(width_ori * 0.5), int(height_ori * 0.5)), Image.BILINEAR)
    data = T.ToTensor()(img)
    _, h, w = data.shape
    if (h % 32 != 0) or (w % 32 != 0):
        data = T.Resize(((h // 32) * 32, (w // 32) * 32), antialias=False)(data)
    return (data * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize('split, where, halve', [('spa', 'SPA+/test/{}/1.png', False),
                                                 ('realsnow', 'RealSnow/test/{}/b.png', False),
                                                 ('revide', 'REVIDE/test/{}/E001/00002.png', True)])
def test_realweather_tests_are_resized_as_wgws_net_scores_them(built, split, where, halve):
    root, out = built['realweather']
    (lq, gt, _), = set(read_meta_file(osp.join(out, S.meta_name(f'test_{split}')), None))
    for folder, rel in (('input', lq), ('gt', gt)):
        expected = wgws_eval(osp.join(root, 'raw', where.format(folder)), halve)
        written = np.array(Image.open(osp.join(out, 'test', rel)))  # LQ and GT roots: test/
        assert written.shape == expected.shape
        assert written.shape[0] % 32 == written.shape[1] % 32 == 0
        assert np.array_equal(written, expected), (split, folder)
    assert 'WGWS-Net' in read_meta_source(osp.join(out, S.meta_name(f'test_{split}')))


@pytest.mark.parametrize('setting', ['aio3', 'aio5'])
def test_options_draw_training_noise_as_the_authors_list_it(setting):
    part = next(p for p in S.SETTINGS[setting].train if p.kind == 'clean')
    assert list(S.SETTINGS[setting].tasks[:3]) == list(part.task) == ['denoise_15', 'denoise_25', 'denoise_50']
    for file in option_files(setting):
        opt = yaml.safe_load(open(file))
        if 'train' not in opt.get('datasets', {}):
            continue
        synthetic = [d for d in opt['datasets']['train']['parts'] if d['type'] == 'SyntheticTaskDataset']
        assert len(synthetic) == 1, file
        d = synthetic[0]
        assert d['synth_tasks'] == list(part.task) and d['dataset_enlarge_ratio'] == part.repeat, file
        assert d['degradations'] == {t: {'type': 'noise', 'sigma': int(t.split('_')[1]), 'quantize': 'truncate'}
                                     for t in part.task}, file


@pytest.mark.parametrize('setting', ['aio3', 'aio5'])
def test_training_set_of_the_options_mixes_fresh_noise_with_the_pairs(setting, built):
    root, _ = built[setting]
    opt = yaml.safe_load(open(osp.join(REPO, 'options', 'train', setting, 'PromptIR_TUR.yml' if setting == 'aio3'
                                       else 'Transweather_TUR.yml')))
    train = dict(opt['datasets']['train'], phase='train', tasks=opt['tasks'], gt_size=8, seed=3)
    train['parts'] = [{k: osp.join(root, v[len('datasets/'):]) if str(v).startswith('datasets/') else v
                       for k, v in part.items()} for part in train['parts']]
    assert train['parts'][0]['degrade_on'] == 'device'  # on a GPU; the workers' noise, as the authors drew it:
    train['parts'][0]['degrade_on'] = 'workers'
    ds = build_dataset(train)
    lines = sum(LINES[setting].values())
    assert len(ds) == len(CLEAN[setting]) * 3 * 3 + lines  # each clean image 3 times per sigma, then the pairs
    ids = ds.item_tasks()
    assert [ids.count(k) for k in range(3)] == [len(CLEAN[setting]) * 3] * 3
    first = ds[4]
    assert first['task'] == 'denoise_25' and first['task_id'] == 1
    assert first['lq'].dtype == torch.uint8 and not torch.equal(first['lq'], first['gt'])  # truncated to 8 bits
    again = ds[pack_index(1, 4, len(ds))]  # the same image and task in the next epoch: a new crop and a new noise draw
    assert not torch.equal(again['lq'].int() - again['gt'].int(), first['lq'].int() - first['gt'].int())


def test_synthesized_sets_depend_only_on_the_seed(tmp_path):
    files = {}
    for name, seed in (('a', 7), ('b', 7), ('c', 8)):
        _, out = build(tmp_path / name, 'mio7', seed=seed)
        files[name] = {rel: open(osp.join(out, rel), 'rb').read()
                       for rel in ('test/lq/haze/0801.png', 'test/lq/rain/0802.png', 'train/lq/noise/0001_s004.png')}
    assert files['a'] == files['b']
    assert all(files['a'][k] != files['c'][k] for k in files['a'])


# MioJob; NoisyJob and TransformJob (crop16); TransformJob (resize32, half_resize32: torch)
@pytest.mark.parametrize('setting', ['mio7', 'aio3', 'realweather'])
def test_a_worker_pool_writes_the_same_files_as_one_process(tmp_path, setting):
    trees = []
    for workers in (1, 2):
        root = str(tmp_path / f'w{workers}')
        make_raw(osp.join(root, 'raw'), setting)
        prepare(setting, root, seed=5, workers=workers)
        out = osp.join(root, setting)
        files = sorted(glob.glob(osp.join(out, '**', '*.*'), recursive=True))
        trees.append({osp.relpath(f, out): open(f, 'rb').read() for f in files if not osp.islink(f)})
    assert trees[0] == trees[1] and any(rel.endswith('.png') for rel in trees[0])


def test_mio_sub_images_are_crops_of_the_gt(built):
    root, out = built['mio7']
    gt = read_gray(osp.join(root, 'raw', 'DF2K', 'GT', '0001.png'))
    assert np.array_equal(read_gray(osp.join(out, 'train', 'gt', '0001_s004.png')), gt[8:16, 8:16])
    assert read_gray(osp.join(out, 'train', 'lq', 'sr', '0001_s004.png')).shape == (8, 8, 3)


def test_mio_test_set_is_re_synthesised_and_says_so(built):
    _, out = built['mio7']
    source = read_meta_source(osp.join(out, 'meta_test_indis.txt'))
    assert source.startswith('sr, blur, noise, jpeg, rain, haze, dark: re-synthesised from MiO_test/original/GT')
    assert not osp.islink(osp.join(out, 'test', 'lq', 'haze', '0801.png'))


def test_released_mio_test_set_is_linked_instead_of_re_synthesised(tmp_path):
    root, out = build(tmp_path, 'mio7', released=True)
    for task in S.MIO_TASKS:
        for name in ('0801', '0802'):
            lq = osp.join(out, 'test', 'lq', task, f'{name}.png')
            released = osp.join(root, 'raw', 'MiO_test', 'single_indis', task, f'{name}.png')
            assert osp.realpath(lq) == osp.realpath(released)
    index = task_index(list(S.MIO_TASKS), 'mio7')
    assert set(read_meta_file(osp.join(out, 'meta_test_indis.txt'), index)) == EXPECTED['mio7']['test_indis']
    ds = build_dataset({'name': 'indis', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': list(S.MIO_TASKS),
                        'dataroot_lq': osp.join(out, 'test', 'lq'), 'dataroot_gt': osp.join(out, 'test', 'gt'),
                        'meta_file': osp.join(out, 'meta_test_indis.txt')})
    assert 'MiO_test/single_indis linked as distributed' in ds.source and 're-synthesised' not in ds.source


def test_released_mio_test_set_lacking_a_task_is_named(tmp_path):
    import shutil
    raw = str(tmp_path / 'raw')
    make_raw(raw, 'mio7', released=True)
    shutil.rmtree(osp.join(raw, 'MiO_test', 'single_indis', 'jpeg'))
    with pytest.raises(PrepareError) as err:
        prepare('mio7', str(tmp_path), workers=1)
    assert_names(err, 'single_indis', 'jpeg')
    assert not osp.exists(tmp_path / 'mio7') and not osp.exists(tmp_path / 'mio7.partial')


# --- Broken layouts ---------------------------------------------------------------------------------------------------

def break_and_prepare(tmp_path, setting: str, breakage) -> str:
    """Build the replica, apply breakage(raw), prepare, and return the error message (nothing must be left)."""
    raw = str(tmp_path / 'raw')
    make_raw(raw, setting)
    breakage(raw)
    with pytest.raises(PrepareError) as err:
        prepare(setting, str(tmp_path), workers=1)
    assert not osp.exists(tmp_path / setting) and not osp.exists(tmp_path / f'{setting}.partial')
    return str(err.value)


def test_missing_partner_names_the_lq_and_the_expected_gt(tmp_path):
    msg = break_and_prepare(tmp_path, 'aio3', lambda raw: os.remove(osp.join(raw, 'Rain100L/train/gt/norain-2.png')))
    assert 'no GT partner for' in msg and 'rainy/rain-2.png' in msg and 'gt/norain-2.png' in msg


def test_name_off_the_naming_rule_is_named(tmp_path):
    msg = break_and_prepare(tmp_path, 'aio5', lambda raw: write_rgb(osp.join(raw, 'SOTS/outdoor/hazy/haze_7.jpg'),
                                                                     np.zeros((16, 16, 3), np.uint8)))
    assert 'hazy/haze_7.jpg' in msg and 'SOTS outdoor naming rule' in msg


def test_lq_gt_size_mismatch_names_both_files(tmp_path):
    msg = break_and_prepare(tmp_path, 'realweather', lambda raw: write_rgb(
        osp.join(raw, 'REVIDE/train/gt/W001/00001.png'), np.zeros((16, 20, 3), np.uint8)))
    assert 'size mismatch' in msg and 'input/W001/00001.png is 16x16' in msg and 'gt/W001/00001.png is 16x20' in msg


def test_missing_folder_is_named_with_the_expected_layout(tmp_path):
    import shutil
    msg = break_and_prepare(tmp_path, 'allweather',
                            lambda raw: shutil.rmtree(osp.join(raw, 'Snow100K/Snow100K-L/gt')))
    assert 'missing folder' in msg and 'Snow100K/Snow100K-L/gt' in msg and 'synthetic/NAME.jpg with' in msg


def test_mio_image_smaller_than_a_sub_image_is_named(tmp_path):
    msg = break_and_prepare(tmp_path, 'mio7', lambda raw: write_rgb(osp.join(raw, 'DF2K/GT/0002.png'),
                                                                     np.zeros((6, 16, 3), np.uint8)))
    assert 'DF2K/GT/0002.png is 6x16' in msg


def test_test_image_too_small_for_the_wgws_resize_is_named(tmp_path):
    def shrink(raw):
        for folder in ('input', 'gt'):
            write_rgb(osp.join(raw, f'REVIDE/test/{folder}/E001/00002.png'),
                      np.zeros((40, 90, 3), np.uint8))
    msg = break_and_prepare(tmp_path, 'realweather', shrink)
    assert 'REVIDE/test/input/E001/00002.png is 40x90' in msg


def test_allweather_file_of_no_known_set_is_named(tmp_path):
    def add_unknown(raw):
        for sub in ('input', 'gt'):
            write_rgb(osp.join(raw, 'allweather', sub, 'photo-1.png'), np.zeros((16, 16, 3), np.uint8))
        with open(osp.join(raw, 'allweather.txt'), 'a') as f:
            f.write('./allweather/input/photo-1.png\n')
    msg = break_and_prepare(tmp_path, 'allweather', add_unknown)
    assert 'input/photo-1.png' in msg and 'AllWeather source set' in msg


def test_missing_airnet_list_is_named(tmp_path):
    msg = break_and_prepare(tmp_path, 'aio3', lambda raw: os.remove(osp.join(raw, 'OTS/hazy_outside.txt')))
    assert 'missing list file' in msg and 'OTS/hazy_outside.txt' in msg


def test_bad_mio_depth_map_is_named_and_leaves_nothing(tmp_path):
    raw = str(tmp_path / 'raw')
    make_raw(raw, 'mio7')
    depth = osp.join(raw, 'DF2K', 'depth', '0001.npy')
    np.save(depth, np.full((4, 4), np.nan, np.float32))
    with pytest.raises(UserError) as err:
        prepare('mio7', str(tmp_path), workers=1)
    assert_names(err, depth, '256')
    assert sorted(os.listdir(tmp_path)) == ['raw']


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def fail(job):
        raise OSError('disk full')
    monkeypatch.setattr(writers, 'job_transform', fail)
    make_raw(str(tmp_path / 'raw'), 'aio3')
    with pytest.raises(OSError, match='disk full'):
        prepare('aio3', str(tmp_path), workers=1)
    assert sorted(os.listdir(tmp_path)) == ['raw']


def test_failed_lmdb_addition_leaves_the_setting_as_it_was(tmp_path, monkeypatch):
    root, out = build(tmp_path, 'realweather')
    before = sorted(os.listdir(out))

    def fail(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(writers, 'build_paired_lmdb', fail)
    with pytest.raises(OSError, match='disk full'):
        prepare('realweather', root, lmdb=True, workers=1)
    assert sorted(os.listdir(out)) == before and 'lmdb' not in before


# --- Command line -----------------------------------------------------------------------------------------------------

def test_main_prints_pairs_per_task_and_test_set(tmp_path, capsys):
    make_raw(str(tmp_path / 'raw'), 'realweather')
    assert cli.main(['realweather', '--root', str(tmp_path), '--workers', '1']) == 0
    out = capsys.readouterr().out
    assert 'meta_train.txt' in out and 'meta_test_revide.txt' in out
    assert 'rain                  2 pairs' in out and 'haze                  1 pairs' in out


def test_main_counts_on_the_fly_samples_apart_from_meta_lines(tmp_path, capsys):
    make_raw(str(tmp_path / 'raw'), 'aio3')
    assert cli.main(['aio3', '--root', str(tmp_path), '--workers', '1']) == 0
    out = capsys.readouterr().out
    assert 'meta_train.txt                  242 lines' in out
    assert 'denoise_15            2 clean images x 3 = 6 samples an epoch' in out


def test_existing_setting_is_kept_and_lmdb_added_on_request(tmp_path, capsys):
    root, out = build(tmp_path, 'realweather')
    assert cli.main(['realweather', '--root', root]) == 1
    assert 'already exists' in capsys.readouterr().err
    assert cli.main(['realweather', '--root', root, '--lmdb']) == 0
    assert sorted(os.listdir(osp.join(out, 'lmdb'))) == ['test_realsnow', 'test_revide', 'test_spa', 'train']


@pytest.mark.parametrize('content', [b'', b'not an image\n'], ids=['empty', 'not_an_image'])
def test_a_broken_clean_image_is_named_when_preparing_not_when_training_draws_it(tmp_path, content):
    # BSD400 / WED as users assemble them: a failed download among the clean images aio3 noises on the fly.
    def breakage(raw):
        with open(osp.join(raw, 'BSD400', 'broken.jpg'), 'wb') as f:
            f.write(content)
    msg = break_and_prepare(tmp_path, 'aio3', breakage)
    assert 'BSD400/broken.jpg' in msg


def test_outdoor_rain_test1_as_transweather_distributes_it_is_prepared(tmp_path):
    # TransWeather's copy of Test1 names each GT like its input (its ValData swaps 'input' for 'gt' in the path).
    raw = str(tmp_path / 'raw')
    make_raw(raw, 'allweather')
    test1 = osp.join(raw, 'Outdoor-Rain', 'test1')
    inputs = sorted(os.listdir(osp.join(test1, 'input')))
    assert inputs
    scene_gts = {S.outdoor_rain_gt(name)[0] for name in inputs}
    for name in inputs:
        shutil.copy(osp.join(test1, 'gt', S.outdoor_rain_gt(name)[0]), osp.join(test1, 'gt', name))
    for gt in scene_gts:
        os.remove(osp.join(test1, 'gt', gt))
    prepare('allweather', str(tmp_path), workers=1)
    lines = open(osp.join(tmp_path, 'allweather', 'meta_test_test1.txt')).read().split('\n')
    assert len([line for line in lines if line and not line.startswith('#')]) == len(inputs)


def _allweather_with_a_test1_scene(tmp_path) -> str:
    """The allweather replica whose training list also renders Test1's scene im_0002 (as AllWeather's does 301-350)."""
    raw = str(tmp_path / 'raw')
    make_raw(raw, 'allweather')
    for folder in ('input', 'gt'):
        shutil.copy(osp.join(raw, 'allweather', folder, 'im_0001_s80_a04.png'),
                    osp.join(raw, 'allweather', folder, 'im_0002_s90_a06.png'))
    with open(osp.join(raw, 'allweather.txt'), 'a') as f:
        f.write('./allweather/input/im_0002_s90_a06.png\n')
    return raw


@pytest.mark.parametrize('exclude', [False, True])
def test_training_scenes_of_a_test_set_are_reported_and_excludable(tmp_path, exclude):
    _allweather_with_a_test1_scene(tmp_path)
    summary = prepare('allweather', str(tmp_path), workers=1, exclude_test_overlap=exclude)
    meta = osp.join(tmp_path, 'allweather', 'meta_train.txt')
    sources = read_meta_sources(meta)
    assert any(s.startswith('overlap: 1 Outdoor-Rain scenes (im_0002..im_0002)') and 'test_test1' in s
               for s in sources)
    assert any('im_0002' in line for line in summary_lines('allweather', str(tmp_path / 'allweather'), summary,
                                                            False) if 'warning' in line)
    trained = {lq for lq, _, _ in read_meta_file(meta, None)}
    assert ('input/im_0002_s90_a06.png' in trained) is not exclude


# --- The format mark: a folder of an earlier prepare_data.py is not scored silently ---------------


@pytest.mark.parametrize('setting', list(S.SETTINGS))
def test_every_meta_file_written_carries_the_current_format(setting, built):
    _, out = built[setting]
    metas = glob.glob(osp.join(out, 'meta_*.txt'))
    metas += glob.glob(osp.join(out, 'lmdb', '*', 'meta.txt'))
    assert any('lmdb' in m for m in metas) and any('lmdb' not in m for m in metas)
    for meta in metas:
        sources, version = read_meta_header(meta)
        assert sources and version == PREPARE_FORMAT, meta
        assert old_format_note(meta, sources, version) is None


@pytest.mark.parametrize('setting', ['aio3', 'realweather'])
def test_datasets_of_the_current_prepare_output_do_not_warn(setting, built, log_lines):
    root, out = built[setting]
    tasks = options_tasks(setting)
    built_sets = 0
    for file in option_files(setting):
        for d in option_datasets(yaml.safe_load(open(file))):
            split = osp.splitext(osp.basename(d['meta_file']))[0][len('meta_'):]
            db = osp.join(out, 'lmdb', split)
            disk = {k: osp.join(root, v[len('datasets/'):]) if str(v).startswith('datasets/') else v
                    for k, v in d.items()}
            disk.update(name=d.get('name', 'set'), phase='train', tasks=tasks, gt_size=8)
            disk.pop('degrade_on', None)
            lmdb = dict(disk, meta_file=osp.join(db, 'meta.txt'), io_backend={'type': 'lmdb'},
                        **{k: osp.join(db, f'{k[len("dataroot_"):]}.lmdb') for k in disk
                           if k.startswith('dataroot_')})
            build_dataset(disk)
            build_dataset(lmdb)
            built_sets += 2
    assert built_sets and not [line for line in log_lines if 'prepare_data' in line]


def _paired_set(paired_root: str, header: str) -> dict:
    """The conftest pairs, listed in a meta file opening with `header`."""
    meta = osp.join(paired_root, 'meta_old.txt')
    with open(osp.join(paired_root, 'meta.txt')) as f:
        pairs = f.read()
    with open(meta, 'w') as f:
        f.write(header + pairs)
    return {'name': 'old', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
            'meta_file': meta, 'dataroot_lq': osp.join(paired_root, 'lq'),
            'dataroot_gt': osp.join(paired_root, 'gt')}


@pytest.mark.parametrize('mark', ['', '# prepared: format 1\n'])
def test_a_meta_file_of_an_earlier_prepare_warns_once_naming_it(paired_root, log_lines, mark):
    opt = _paired_set(paired_root, mark + '# source: sr, noise, dark: BSD68 linked\n')
    build_dataset(opt)
    warned = [line for line in log_lines if 'prepare_data' in line]
    assert len(warned) == 1 and opt['meta_file'] in warned[0]
    assert 'BSD68' in warned[0] and 'WGWS-Net' in warned[0]


def test_a_hand_written_meta_file_does_not_warn(paired_root, log_lines):
    build_dataset(_paired_set(paired_root, '# my own pairs\n'))
    build_dataset(_paired_set(paired_root, ''))
    assert not [line for line in log_lines if 'prepare_data' in line]


def test_a_clean_list_of_an_earlier_prepare_warns_naming_it(tmp_path, clean_root, log_lines):
    meta = str(tmp_path / 'meta_train_clean.txt')
    names = sorted(os.listdir(clean_root))
    with open(meta, 'w') as f:
        f.write('# source: noise: clean images of BSD400\n' + ''.join(f'{n}\n' for n in names))
    build_dataset({'name': 'clean', 'type': 'SyntheticTaskDataset', 'phase': 'train',
                   'tasks': TASKS, 'dataroot_gt': clean_root, 'meta_file': meta, 'gt_size': 8})
    warned = [line for line in log_lines if 'prepare_data' in line]
    assert len(warned) == 1 and meta in warned[0]


def test_an_lmdb_meta_file_keeps_the_format_line_of_its_meta_file(tmp_path):
    meta, lmdb_meta = str(tmp_path / 'meta_test.txt'), str(tmp_path / 'meta.txt')
    writers.write_meta(meta, [('a.png', 'a.png', 'sr')], ['sr: linked'])
    with open(lmdb_meta, 'w') as f:
        f.write('a.png a.png sr\n')
    writers.prepend_sources(lmdb_meta, meta)
    assert read_meta_header(lmdb_meta) == read_meta_header(meta) == (['sr: linked'], PREPARE_FORMAT)
