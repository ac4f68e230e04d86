"""What the datasets accept and refuse: pixel types, files named by meta files (checked when built), file names,
output names, and errors raised while loading a sample."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest
from basicsr.data import build_dataset
from conftest import TASKS, assert_names

from basicsr_tur.data import synthetic_task_dataset
from basicsr_tur.data.data_util import SampleError, missing_files, output_names, unit_tensor
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.lmdb_util import build_paired_lmdb
from basicsr_tur.utils.meta_file import format_meta_line, parse_meta_line, read_meta_rows

RNG_IMG = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)  # BGR, as OpenCV writes it


def one_pair_set(tmp_path, gt_name: str, gt_bytes: bytes | None = None, gt_img: np.ndarray | None = None,
                 **opt) -> dict:
    """A paired set of one sr pair: lq/sr/a.png (8-bit RGB_IMG) and gt/<gt_name> from bytes or an array."""
    lq, gt = tmp_path / 'lq', tmp_path / 'gt'
    os.makedirs(lq / 'sr', exist_ok=True)
    os.makedirs(gt, exist_ok=True)
    assert cv2.imwrite(str(lq / 'sr' / 'a.png'), RNG_IMG)
    if gt_bytes is not None:
        (gt / gt_name).write_bytes(gt_bytes)
    else:
        assert cv2.imwrite(str(gt / gt_name), gt_img)
    (tmp_path / 'meta.txt').write_text(format_meta_line(('sr/a.png', gt_name, 'sr')))
    return {'name': 'px', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS, 'dataroot_lq': str(lq),
            'dataroot_gt': str(gt), 'meta_file': str(tmp_path / 'meta.txt'), **opt}


EXPECTED_RGB = RNG_IMG[..., ::-1].astype(np.float32) / 255


@pytest.mark.parametrize('name, img, expected', [
    ('b.png', RNG_IMG, EXPECTED_RGB),
    ('b16.png', RNG_IMG.astype(np.uint16) * 257, EXPECTED_RGB),
    ('f32.tif', RNG_IMG.astype(np.float32) / 255, EXPECTED_RGB),
    ('f64.tif', RNG_IMG.astype(np.float64) / 255, EXPECTED_RGB),
    ('grey.png', RNG_IMG[..., 0], np.repeat(RNG_IMG[..., :1].astype(np.float32) / 255, 3, axis=2)),
    ('rgba.png', np.dstack([RNG_IMG, np.full((8, 8), 7, np.uint8)]), EXPECTED_RGB),
], ids=['uint8', 'uint16', 'float32_tiff', 'float64_tiff', 'grey', 'rgba'])
def test_reader_scales_each_pixel_type_by_its_own_range(tmp_path, name, img, expected):
    sample = build_dataset(one_pair_set(tmp_path, name, gt_img=img))[0]
    gt = unit_tensor(sample['gt'])  # as the model scales it on its device
    np.testing.assert_allclose(gt.numpy().transpose(1, 2, 0), expected, atol=1e-6)


def _truncated_png() -> bytes:
    data = cv2.imencode('.png', RNG_IMG)[1].tobytes()
    return data[:len(data) // 2]


def _tiff(img: np.ndarray) -> bytes:
    return cv2.imencode('.tif', img)[1].tobytes()


NAN_IMG = RNG_IMG.astype(np.float32) / 255
NAN_IMG[2:4, 2:4] = np.nan


@pytest.mark.parametrize('name, data, values', [  # values: what the one line names beside the dataset and file
    ('zero.png', b'', ()),
    ('cut.png', _truncated_png(), ()),
    ('text.png', b'not an image at all\n', ()),
    ('nan.tif', _tiff(NAN_IMG), ('NaN',)),
    ('inf.tif', _tiff(np.where(NAN_IMG != NAN_IMG, np.inf, NAN_IMG).astype(np.float32)), ('Inf',)),
    ('hdr.tif', _tiff(RNG_IMG.astype(np.float32)), ('[0, 249]', '[0, 1]')),
    ('int16.tif', _tiff(RNG_IMG.astype(np.int16)), ('int16',)),
], ids=['zero_byte', 'truncated_png', 'text_named_png', 'nan_float_tiff', 'inf_float_tiff', 'float_above_one',
        'int16_tiff'])
def test_reader_refuses_what_it_cannot_scale_in_one_line_naming_the_file(tmp_path, name, data, values):
    ds = build_dataset(one_pair_set(tmp_path, name, gt_bytes=data))
    with pytest.raises(DataError) as err:
        ds[0]
    assert_names(err, "dataset 'px'", osp.join(tmp_path, 'gt', name), *values)


def test_every_missing_image_of_a_meta_file_is_reported_when_the_dataset_is_built(paired_root):
    meta = osp.join(paired_root, 'meta.txt')
    with open(meta, 'a') as f:
        f.write(''.join(f'sr/missing{i}.png astronaut.png sr\n' for i in range(6)))
        f.write('noise/coffee.png gone.png noise\n')
    with pytest.raises(FileNotFoundError) as err:
        build_dataset({'name': 'v', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                       'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                       'meta_file': meta})
    lq = osp.join(paired_root, 'lq')
    message = assert_names(err, "dataset 'v'", '7 of 19', meta,
                           *(f'line {10 + i}: lq {lq}/sr/missing{i}.png' for i in range(5)), '2 more')
    assert 'missing5.png' not in message  # the first five, then a count


def test_missing_clean_image_of_a_synthetic_meta_file_is_reported_when_built(clean_root, tmp_path):
    meta = tmp_path / 'clean.txt'
    meta.write_text('astronaut.png\n# a comment\nnope.png\n')
    with pytest.raises(FileNotFoundError) as err:
        build_dataset({'name': 'syn', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
                       'dataroot_gt': clean_root, 'meta_file': str(meta), 'gt_size': 16})
    assert_names(err, "dataset 'syn'", '1 of 2', meta, f'line 3: gt {clean_root}/nope.png')


def test_missing_image_of_a_mixed_part_is_reported_when_built(clean_root, paired_root):
    with open(osp.join(paired_root, 'meta.txt'), 'a') as f:
        f.write('sr/x.png astronaut.png sr\n')
    with pytest.raises(FileNotFoundError) as err:
        build_dataset({'name': 'mix', 'type': 'MixedTaskDataset', 'phase': 'train', 'tasks': TASKS, 'gt_size': 16,
                       'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root},
                                 {'type': 'PairedTaskDataset', 'dataroot_lq': osp.join(paired_root, 'lq'),
                                  'dataroot_gt': osp.join(paired_root, 'gt'),
                                  'meta_file': osp.join(paired_root, 'meta.txt')}]})
    assert_names(err, "dataset 'mix[1]'", '1 of 13', osp.join(paired_root, 'meta.txt'),
                 f"line 10: lq {osp.join(paired_root, 'lq', 'sr', 'x.png')}")


def test_lmdb_keys_missing_from_the_database_are_reported_when_built(paired_root, tmp_path):
    pairs = [(f'{t}/{n}.png', f'{n}.png', t) for t in TASKS for n in ('astronaut', 'coffee')]
    out = str(tmp_path / 'db')
    build_paired_lmdb(pairs, osp.join(paired_root, 'lq'), osp.join(paired_root, 'gt'), out)
    with open(osp.join(out, 'meta.txt'), 'a') as f:
        f.write('dark/chelsea.png chelsea.png dark\n')  # in the folders, not in the databases
    with pytest.raises(FileNotFoundError) as err:
        build_dataset({'name': 'db', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                       'io_backend': {'type': 'lmdb'}, 'dataroot_lq': osp.join(out, 'lq.lmdb'),
                       'dataroot_gt': osp.join(out, 'gt.lmdb'), 'meta_file': osp.join(out, 'meta.txt')})
    assert_names(err, "dataset 'db'", '2 of 10', f'{out}/meta.txt', 'line 7', "'dark/chelsea'", f'{out}/lq.lmdb',
                 "'chelsea'", f'{out}/gt.lmdb')


def test_header_check_reports_every_unreadable_image_when_built(paired_root):
    for name in ('coffee', 'chelsea'):
        open(osp.join(paired_root, 'lq', 'noise', f'{name}.png'), 'wb').close()
    opt = {'name': 'v', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
           'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
           'meta_file': osp.join(paired_root, 'meta.txt')}
    build_dataset(opt)  # paths only by default: the files exist
    with pytest.raises(DataError) as err:
        build_dataset(dict(opt, check_images='headers'))
    lq = osp.join(paired_root, 'lq', 'noise')
    assert_names(err, "dataset 'v'", '2 of 12', opt['meta_file'], f'line 5: lq {lq}/coffee.png',
                 f'line 8: lq {lq}/chelsea.png')


def test_header_check_reports_lq_gt_size_mismatches_when_built(paired_root):
    path = osp.join(paired_root, 'lq', 'dark', 'coffee.png')
    cv2.imwrite(path, cv2.resize(cv2.imread(path), (20, 20)))
    with pytest.raises(DataError) as err:
        build_dataset({'name': 'v', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': TASKS,
                       'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                       'meta_file': osp.join(paired_root, 'meta.txt'), 'check_images': 'headers'})
    gt = osp.join(paired_root, 'gt', 'coffee.png')
    assert_names(err, "dataset 'v'", f'line 6: {path} is 20x20', f'{gt} is 40x40')


def test_header_check_reports_training_images_smaller_than_gt_size_when_built(clean_root):
    cv2.imwrite(osp.join(clean_root, 'thumb.png'), RNG_IMG)
    with pytest.raises(DataError) as err:
        build_dataset({'name': 'syn', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
                       'dataroot_gt': clean_root, 'gt_size': 24, 'check_images': 'headers'})
    assert_names(err, "dataset 'syn'", 'gt_size 24', f'{clean_root}/thumb.png is 8x8')


def test_unknown_check_images_value_is_refused(clean_root):
    with pytest.raises(DataError) as err:
        build_dataset({'name': 'syn', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
                       'dataroot_gt': clean_root, 'check_images': 'all'})
    assert_names(err, "dataset 'syn'", "'check_images'", 'paths', 'headers', "'all'")


def test_empty_synthetic_meta_file_is_named_not_the_image_folder(clean_root, tmp_path):
    meta = tmp_path / 'empty.txt'
    meta.write_text('# only a comment\n')
    opt = {'name': 'tiny_train', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
           'dataroot_gt': clean_root, 'meta_file': str(meta)}
    with pytest.raises(DataError) as err:
        build_dataset(opt)
    assert clean_root not in assert_names(err, "dataset 'tiny_train'", meta)
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(dict(opt, meta_file=str(tmp_path / 'nope.txt')))
    assert clean_root not in assert_names(err, "dataset 'tiny_train'", tmp_path / 'nope.txt')


@pytest.mark.parametrize('value, reason', [(np.nan, 'NaN'), (-1.0, 'min -1')], ids=['nan', 'negative'])
def test_bad_depth_map_is_refused_naming_its_file_whatever_the_crop(clean_root, tmp_path, value, reason):
    depth_root = tmp_path / 'depth'
    depth_root.mkdir()
    depth = np.ones((40, 40), np.float32)
    depth[39, 39] = value  # a corner few crops cover
    np.save(depth_root / 'astronaut.npy', depth)
    ds = build_dataset({'name': 'hz', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['haze'],
                        'dataroot_gt': clean_root, 'depth_root': str(depth_root), 'gt_size': 8})
    with pytest.raises(DataError) as err:
        ds[0]
    assert_names(err, "dataset 'hz'", f'{depth_root}/astronaut.npy', reason)


def test_unexpected_error_while_loading_a_sample_names_the_dataset_and_file(clean_root, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError('division by zero\nsecond line')

    monkeypatch.setattr(synthetic_task_dataset, 'apply_degradation', broken)
    ds = build_dataset({'name': 'syn', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': TASKS,
                        'dataroot_gt': clean_root, 'gt_size': 16})
    with pytest.raises(SampleError) as err:
        ds[1]
    assert_names(err, "dataset 'syn'", f'{clean_root}/astronaut.png', 'noise', 'ZeroDivisionError')


ODD_NAMES = ['my photo.png', '#1.png', 'a#b.png', '-lead.png', 'café 日本.png', "it's.png", 'quote".png',
             ' padded .png']


@pytest.mark.parametrize('name', ODD_NAMES + ['tab\there.png', ''])
def test_meta_line_holds_any_name_exactly(name):
    fields = [f'sr/{name}', name, 'sr']
    line = format_meta_line(fields)
    assert line.endswith('\n') and line.count('\n') == 1
    assert parse_meta_line(line, 'meta.txt line 1') == fields


def test_meta_lines_of_the_old_format_read_as_before(tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_bytes(b'# source: somewhere\r\nsr/a.png a.png sr  # note\r\n\r\n  noise/b#2.png b#2.png noise\n')
    assert read_meta_rows(str(meta)) == [(2, ['sr/a.png', 'a.png', 'sr']),
                                         (4, ['noise/b#2.png', 'b#2.png', 'noise'])]


def test_malformed_quoted_name_is_named_with_its_line(tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('sr/a.png a.png sr\n"sr/b c.png b.png sr\n')
    with pytest.raises(DataError) as err:
        read_meta_rows(str(meta))
    assert_names(err, f'{meta} line 2', '"sr/b')


def test_any_file_name_survives_folder_scan_meta_file_and_output_names(tmp_path):
    lq, gt = tmp_path / 'lq', tmp_path / 'gt'
    for i, name in enumerate(ODD_NAMES):
        img = np.full((8, 8, 3), 10 * i, np.uint8)
        for path in (lq / 'sr' / name, gt / name):
            os.makedirs(path.parent, exist_ok=True)
            cv2.imwrite(str(path), img)  # OpenCV handles any UTF-8 path on POSIX
    (tmp_path / 'meta.txt').write_text(''.join(format_meta_line((f'sr/{n}', n, 'sr')) for n in ODD_NAMES),
                                       encoding='utf-8')
    base = {'name': 'odd', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': ['sr'], 'dataroot_lq': str(lq),
            'dataroot_gt': str(gt)}
    for opt in (dict(base, meta_file=str(tmp_path / 'meta.txt')), base):  # meta file, then folder scan
        ds = build_dataset(opt)
        samples = {osp.basename(s['lq_path']): s for s in (ds[i] for i in range(len(ds)))}
        assert sorted(samples) == sorted(ODD_NAMES)
        for i, name in enumerate(ODD_NAMES):
            assert float(unit_tensor(samples[name]['gt'])[0, 0, 0]) == pytest.approx(10 * i / 255)
            assert samples[name]['out_name'] == osp.splitext(name)[0]
    syn = build_dataset({'name': 'syn', 'type': 'SyntheticTaskDataset', 'phase': 'val', 'tasks': TASKS,
                         'dataroot_gt': str(gt)})
    assert sorted(syn[i]['out_name'] for i in range(0, len(syn), 3)) == sorted(osp.splitext(n)[0] for n in ODD_NAMES)


def test_inputs_sharing_a_stem_get_distinct_readable_output_names():
    names = output_names([('sr', 'sr/x.png'), ('sr', 'sr/x.jpg'), ('noise', 'noise/x.png'), ('sr', 'sr/a/y.png'),
                          ('sr', 'sr/b/y.png'), ('sr', 'sr/z.png'), ('sr', 'sr/z.png')], "dataset 'd'")
    assert names == {('sr', 'sr/x.png'): 'x_png', ('sr', 'sr/x.jpg'): 'x_jpg', ('noise', 'noise/x.png'): 'x',
                     ('sr', 'sr/a/y.png'): 'a_y_png', ('sr', 'sr/b/y.png'): 'b_y_png', ('sr', 'sr/z.png'): 'z'}


def test_inputs_that_would_still_share_an_output_name_are_refused_when_built(tmp_path):
    for root in ('lq', 'gt'):
        os.makedirs(tmp_path / root / 'sr')
        for name in ('x.png', 'x.jpg', 'x_png.bmp'):  # x.png -> x_png, like x_png.bmp's own stem
            cv2.imwrite(str(tmp_path / root / 'sr' / name), RNG_IMG)
    with pytest.raises(DataError) as err:
        build_dataset({'name': 'd', 'type': 'PairedTaskDataset', 'phase': 'val', 'tasks': ['sr'],
                       'dataroot_lq': str(tmp_path / 'lq'), 'dataroot_gt': str(tmp_path / 'gt')})
    assert_names(err, "dataset 'd'", 'sr/x.png', 'sr/x_png.bmp', 'sr/x_png')


def test_missing_files_agrees_with_isfile_whether_a_folder_is_listed_or_stat_per_file(tmp_path):
    for i in range(40):
        (tmp_path / f'{i}.png').write_bytes(b'x')
    os.symlink(tmp_path / 'nowhere.png', tmp_path / 'broken.png')
    os.mkdir(tmp_path / 'dir.png')
    many = [str(tmp_path / f'{i}.png') for i in range(45)] + [str(tmp_path / n) for n in ('broken.png', 'dir.png')]
    few = many[38:]  # under the listing threshold: one stat per file
    for wanted in (many, few):
        assert missing_files(wanted) == {p for p in wanted if not osp.isfile(p)}
    assert len(missing_files(many)) == 7
    assert missing_files([str(tmp_path / 'no_folder' / f'{i}.png') for i in range(20)]) == \
        {str(tmp_path / 'no_folder' / f'{i}.png') for i in range(20)}
