"""Build LMDB copies of task-labelled image sets in basicsr's layout (data.mdb + meta_info.txt per database).

`build_paired_lmdb` writes <out>/lq.lmdb, <out>/gt.lmdb and <out>/meta.txt (`lq_path gt_path task` lines; the
LMDB key of a path is the path without its extension, basicsr's convention), so the same PairedTaskDataset
options work on both backends with only `io_backend` and the roots changed. `build_clean_lmdb` does the same for
the clean images of SyntheticTaskDataset. Everything is written under `<out>.partial` and renamed when complete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from os import path as osp

import cv2
import lmdb
from tqdm import tqdm

from basicsr_tur.data.data_util import lmdb_key
from basicsr_tur.utils.meta_file import format_meta_line


def write_lmdb(lmdb_path: str, items: Iterable[tuple[str, str]], compress_level: int = 1,
               desc: str = 'lmdb') -> int:
    """Write images {key: file} into a new LMDB as PNG bytes, with basicsr's meta_info.txt; returns the count."""
    items = list(items)
    if osp.exists(lmdb_path):
        raise FileExistsError(f'{lmdb_path} already exists; remove it or choose another output')
    map_size = 1 << 30
    env = lmdb.open(lmdb_path, map_size=map_size)
    meta_lines = []
    try:
        for key, file_path in tqdm(items, desc=desc, unit='image'):
            img = cv2.imread(file_path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f'cannot read image {file_path} (missing, corrupt or not an image)')
            ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
            if not ok:
                raise ValueError(f'cannot encode image {file_path} as PNG')
            while True:  # grow the map when full rather than guessing the dataset's size up front
                try:
                    with env.begin(write=True) as txn:
                        txn.put(key.encode('ascii'), buf.tobytes())
                    break
                except lmdb.MapFullError:
                    map_size *= 2
                    env.set_mapsize(map_size)
            h, w = img.shape[:2]
            c = 1 if img.ndim == 2 else img.shape[2]
            meta_lines.append(f'{key}.png ({h},{w},{c}) {compress_level}')
    finally:
        env.close()
    with open(osp.join(lmdb_path, 'meta_info.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(meta_lines) + '\n')
    return len(meta_lines)


def _check_key(path: str) -> str:
    key = lmdb_key(path)
    if not key.isascii() or ' ' in key:
        raise ValueError(f'image path {path!r} cannot be an LMDB key (ASCII without spaces needed)')
    return key


@contextlib.contextmanager
def _atomic_dir(out_dir: str) -> Iterator[str]:
    """Yield `<out_dir>.partial` to fill; rename it to out_dir on success, remove it on failure."""
    if osp.exists(out_dir):
        raise FileExistsError(f'{out_dir} already exists; remove it or choose another output')
    tmp = out_dir.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_paired_lmdb(pairs: list[tuple[str, str, str]], lq_root: str, gt_root: str, out_dir: str,
                      compress_level: int = 1) -> dict[str, int]:
    """LMDBs of (lq_rel, gt_rel, task) pairs; returns pairs per task. GT files shared by tasks are stored once."""
    with _atomic_dir(out_dir) as tmp:
        lq_items = {_check_key(lq): osp.join(lq_root, lq) for lq, _, _ in pairs}
        gt_items = {_check_key(gt): osp.join(gt_root, gt) for _, gt, _ in pairs}
        write_lmdb(osp.join(tmp, 'lq.lmdb'), lq_items.items(), compress_level, 'LQ -> lmdb')
        write_lmdb(osp.join(tmp, 'gt.lmdb'), gt_items.items(), compress_level, 'GT -> lmdb')
        with open(osp.join(tmp, 'meta.txt'), 'w', encoding='utf-8') as f:
            f.write(''.join(format_meta_line((lq, gt, task)) for lq, gt, task in pairs))
    return dict(Counter(task for _, _, task in pairs))


def build_clean_lmdb(names: list[str], gt_root: str, out_dir: str, compress_level: int = 1) -> int:
    """LMDB of clean images (for SyntheticTaskDataset): <out>/gt.lmdb and <out>/meta.txt listing the names."""
    with _atomic_dir(out_dir) as tmp:
        n = write_lmdb(osp.join(tmp, 'gt.lmdb'), [(_check_key(n), osp.join(gt_root, n)) for n in names],
                       compress_level, 'GT -> lmdb')
        with open(osp.join(tmp, 'meta.txt'), 'w', encoding='utf-8') as f:
            f.write(''.join(format_meta_line((name,)) for name in names))
    return n
