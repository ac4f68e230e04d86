"""Build LMDB copies of task-labelled image sets in basicsr's layout (data.mdb + meta_info.txt per database).

`build_paired_lmdb` writes <out>/lq.lmdb, <out>/gt.lmdb and <out>/meta.txt (`lq_path gt_path task` lines; the
LMDB key of a path is the path without its extension, basicsr's convention), so the same PairedTaskDataset
options work on both backends with only `io_backend` and the roots changed. `build_clean_lmdb` does the same for
the clean images of SyntheticTaskDataset. Everything is written under `<out>.partial` and renamed when complete.
"""
from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from os import path as osp

import cv2
import lmdb
import numpy as np
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.files import atomic_dir
from basicsr_tur.utils.meta_file import format_meta_line

try:
    import resource
except ImportError:  # not on Windows, which has no address-space limit to respect
    resource = None

BASICSR_MAP_SIZE = 1024 ** 4  # LmdbMaker's default map: 1 TB of address space, sparse on disk
# How an LMDB stores its images: 'png' (basicsr's layout, PNG at compress_level: every read decodes) or 'raw' (the
# decoded pixels as an uncompressed .npy value, OpenCV's channel order: a read copies the value, no decode; 1.5-3x the
# disk of PNG for photos; read by basicsr-tur's datasets only). bench/bench_data.py --per-core measures both.
VALUE_FORMATS = ('png', 'raw')


def map_size() -> int:
    """Bytes of address space to map for one new LMDB: basicsr's 1 TB, or, under an address-space limit
    (`ulimit -v`, common on clusters), a quarter of what the process has left, since LMDB reserves the whole map
    when it opens the database and two are open at once (lq and gt)."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0] if resource else -1
    if resource is None or limit == resource.RLIM_INFINITY:
        return BASICSR_MAP_SIZE
    used = 0
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            used = next((int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:')), 0)
    except OSError:  # no /proc: assume nothing is used yet
        pass
    return min(BASICSR_MAP_SIZE, max((limit - used) // 4, 1 << 20))


def lmdb_key(path: str) -> str:
    """LMDB key of an image path: basicsr's convention, the path without its extension."""
    return osp.splitext(path)[0]


def check_lmdb_keys(paths: Iterable[str], where: str) -> dict[str, str]:
    """{key: path} of image paths stored in (or read from) one LMDB; DataError naming both files when two distinct
    paths share a key (x.png and x.jpg: the key drops the extension, so one would be served for the other), or naming
    the path whose key is not ASCII without white space."""
    keys: dict[str, str] = {}
    for path in paths:
        key = lmdb_key(path)
        if not key.isascii() or any(c.isspace() for c in key):
            raise DataError(f'{where}: image path {path!r} cannot be an LMDB key (ASCII without spaces needed)')
        other = keys.setdefault(key, path)
        if other != path:
            raise DataError(f"{where}: {other} and {path} would share the LMDB key '{key}' (keys drop the file "
                             'extension, as in basicsr); rename one of them')
    return keys


def raw_value(img: np.ndarray) -> bytes:
    """An image array as OpenCV decodes it ((H, W) or (H, W, C), BGR(A) order, any pixel type) as the bytes of an
    uncompressed .npy file: the value of a `raw` LMDB (VALUE_FORMATS), read back by data_util.decode_image."""
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(img), allow_pickle=False)
    return out.getvalue()


class LmdbWriter:
    """A new LMDB of PNG-encoded images with basicsr's meta_info.txt, written by `put` inside a `with` block.

    basicsr's LmdbMaker stores the images (one write transaction per 5000 images; a 1 TB map that stays sparse on
    disk, smaller under an address-space limit: map_size; `python bench/bench_data.py --lmdb-write`: about twice
    as fast as one transaction per image on 128x128 crops, see BENCHMARKS.md); this class reads and encodes them,
    and turns every failure into one line naming the file. On an error inside the block nothing is committed (the
    caller removes the folder: atomic_dir).
    """

    def __init__(self, lmdb_path: str, compress_level: int = 1, values: str = 'png') -> None:
        if values not in VALUE_FORMATS:
            raise DataError(f"LMDB values must be one of {', '.join(VALUE_FORMATS)}, got {values!r}")
        if osp.exists(lmdb_path):
            raise FileExistsError(f'{lmdb_path} already exists; remove it or choose another output')
        if not lmdb_path.endswith('.lmdb'):
            raise DataError(f"{lmdb_path}: an LMDB folder's name must end in .lmdb (basicsr's convention)")
        self.path, self.compress_level, self.values = lmdb_path, compress_level, values
        try:
            self.maker = LmdbMaker(lmdb_path, map_size=map_size(), compress_level=compress_level)
        except lmdb.Error as err:
            raise OSError(f'cannot create LMDB {lmdb_path}: {err}') from None

    def put(self, key: str, file_path: str) -> tuple[int, int]:
        """Store the image file under `key`; returns its (height, width). Unreadable images raise DataError,
        LMDB failures (disk full, key too long) OSError, each naming the file."""
        img = cv2.imread(file_path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DataError(f'cannot read image {file_path} (missing, corrupt or not an image)')
        if self.values == 'raw':
            value = raw_value(img)
        else:
            ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, self.compress_level])
            if not ok:
                raise DataError(f'cannot encode image {file_path} as PNG')
            value = buf.tobytes()
        h, w = img.shape[:2]
        try:
            self.maker.put(value, key, (h, w, 1 if img.ndim == 2 else img.shape[2]))
        except lmdb.MapFullError:
            raise OSError(f'{self.path}: cannot store {file_path} under key {key!r}: the LMDB map of '
                          f'{self.maker.env.info()["map_size"] / 2 ** 30:.1f} GiB is full (it is a quarter of the '
                          f'address space left under the process\'s limit, ulimit -v: raise that limit)') from None
        except lmdb.Error as err:  # a commit (every 5000 images) writes the batch that ends with this image
            raise OSError(f'{self.path}: cannot store {file_path} under key {key!r} (or the images of its '
                          f'transaction): {err}') from None
        return h, w

    def __enter__(self) -> LmdbWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None:  # nothing more is committed; the folder is removed by the caller
            self.maker.txn.abort()
            self.maker.env.close()
            self.maker.txt_file.close()
            return
        try:
            self.maker.close()  # commits the last batch, closes the database and meta_info.txt
        except lmdb.Error as err:
            raise OSError(f'{self.path}: cannot write the last images: {err}') from None


def build_paired_lmdb(pairs: list[tuple[str, str, str]], lq_root: str, gt_root: str, out_dir: str,
                      compress_level: int = 1, values: str = 'png') -> dict[str, int]:
    """LMDBs of (lq_rel, gt_rel, task) pairs, values as VALUE_FORMATS says; returns pairs per task. GT files shared
    by tasks are stored once.

    Refused with a DataError before anything is written: no pairs, two files with one key, a key that is not
    ASCII; while writing (the partial output is then removed): an unreadable image, or an LQ image whose size
    differs from its GT's (`LQ/GT size mismatch: ...`, which PairedTaskDataset would refuse at its first read).
    """
    if not pairs:
        raise DataError(f'no image pairs to write to {out_dir}')
    check_lmdb_keys([lq for lq, _, _ in pairs], f'LQ images under {lq_root}')
    check_lmdb_keys([gt for _, gt, _ in pairs], f'GT images under {gt_root}')
    with atomic_dir(out_dir) as tmp, LmdbWriter(osp.join(tmp, 'lq.lmdb'), compress_level, values) as lq_db, \
            LmdbWriter(osp.join(tmp, 'gt.lmdb'), compress_level, values) as gt_db:
        sizes: dict[tuple[str, str], tuple[int, int]] = {}  # ('lq' or 'gt', path) -> (h, w), each file stored once
        for lq, gt, _ in tqdm(pairs, desc='pairs -> lmdb', unit='pair'):
            lq_path, gt_path = osp.join(lq_root, lq), osp.join(gt_root, gt)
            if ('lq', lq) not in sizes:
                sizes['lq', lq] = lq_db.put(lmdb_key(lq), lq_path)
            if ('gt', gt) not in sizes:
                sizes['gt', gt] = gt_db.put(lmdb_key(gt), gt_path)
            (lh, lw), (gh, gw) = sizes['lq', lq], sizes['gt', gt]
            if (lh, lw) != (gh, gw):
                raise DataError(f'LQ/GT size mismatch: {lq_path} is {lh}x{lw}, {gt_path} is {gh}x{gw}')
        with open(osp.join(tmp, 'meta.txt'), 'w', encoding='utf-8') as f:
            f.write(''.join(format_meta_line((lq, gt, task)) for lq, gt, task in pairs))
    return dict(Counter(task for _, _, task in pairs))


def build_clean_lmdb(names: list[str], gt_root: str, out_dir: str, compress_level: int = 1,
                     values: str = 'png') -> int:
    """LMDB of clean images (for SyntheticTaskDataset): <out>/gt.lmdb (values as VALUE_FORMATS says) and
    <out>/meta.txt listing the names.

    No names, or two with one key, raise DataError before anything is written.
    """
    if not names:
        raise DataError(f'no images in {gt_root}')
    keys = check_lmdb_keys(names, f'images under {gt_root}')
    with atomic_dir(out_dir) as tmp:
        with LmdbWriter(osp.join(tmp, 'gt.lmdb'), compress_level, values) as db:
            for key, name in tqdm(keys.items(), desc='GT -> lmdb', unit='image'):
                db.put(key, osp.join(gt_root, name))
        with open(osp.join(tmp, 'meta.txt'), 'w', encoding='utf-8') as f:
            f.write(''.join(format_meta_line((name,)) for name in names))
    return len(keys)
