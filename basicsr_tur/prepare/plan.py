"""Planning a setting: check the downloads under the raw folder and list which files each part writes, before writing.

Every check runs before anything is written: missing folders (with the layout expected), list files, naming rules,
GT partners, LQ/GT sizes, MiOIR images too small for a sub-image, test images too small for
WGWS-Net's resize, the tasks of a released set. All problems of one kind are reported together in
one PrepareError (the first MAX_LISTED quoted, the rest counted).
"""
from __future__ import annotations

import glob
import os
from os import path as osp

from PIL import Image

from basicsr_tur.data.data_util import IMG_EXTENSIONS
from basicsr_tur.prepare.settings import SOURCES, NamingError, Part, Setting, all_parts, splits_of
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.text_file import TextFileError, read_text_lines

MAX_LISTED = 10  # problems quoted in one error; the rest are counted
# Smallest test-image side each WGWS-Net resize keeps non-empty (REVIDE's is halved first).
MIN_SIDE = {'resize32': 32, 'half_resize32': 64}

# One item of a part: (source key, LQ path relative to the source's LQ folder, GT path relative to its GT folder or
# '' for a clean image).
Item = tuple[str, str, str]


class PrepareError(UserError):
    """The downloads do not have the layout, naming or sizes a setting needs."""


def raise_problems(what: str, problems: list[str]) -> None:
    """Raise one PrepareError quoting the first problems and counting the rest; nothing when there are none."""
    if problems:
        more = f'\n  ... and {len(problems) - MAX_LISTED} more' if len(problems) > MAX_LISTED else ''
        raise PrepareError(f'{what}: {len(problems)} problem(s):\n  ' + '\n  '.join(problems[:MAX_LISTED]) + more)


def _is_image(rel: str) -> bool:
    return rel.lower().endswith(IMG_EXTENSIONS)


def scan_images(folder: str, pattern: str = '*') -> list[str]:
    """Sorted '/'-separated paths, relative to folder, of the image files matching pattern ('*', '*/blur/*', '**/*')."""
    found = glob.glob(osp.join(glob.escape(folder), pattern), recursive=True)
    rels = (osp.relpath(p, folder).replace(os.sep, '/') for p in found if osp.isfile(p))
    return sorted(r for r in rels if _is_image(r))


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image from its header (PIL reads no pixels here)."""
    with Image.open(path) as img:
        return img.size[1], img.size[0]


def source_dirs(part: Part) -> list[str]:
    """The folders (relative to the raw folder) of a part's sources."""
    return [d for key in part.sources for d in (SOURCES[key].lq_dir, SOURCES[key].gt_dir) if d]


def resolve(raw: str, part: Part) -> Part:
    """The part to write: its `released` alternative (the authors' own images) when all its folders exist."""
    if part.released and all(osp.isdir(osp.join(raw, d)) for d in source_dirs(part.released)):
        return part.released
    return part


def missing_folders(raw: str, setting: Setting) -> list[str]:
    """'folder: expected layout' for every source folder of the setting that does not exist."""
    missing = []
    keys = dict.fromkeys(k for part in all_parts(setting) for k in resolve(raw, part).sources)
    for key in keys:
        source = SOURCES[key]
        for folder in dict.fromkeys(d for d in (source.lq_dir, source.gt_dir) if d):
            if not osp.isdir(osp.join(raw, folder)):
                missing.append(f'missing folder {osp.join(raw, folder)}: expected {source.layout} '
                               f'(datasets/README.md)')
    return missing


def lq_names(raw: str, key: str) -> list[str]:
    """LQ paths of a source, relative to its LQ folder: from the authors' list file when it defines the set."""
    source = SOURCES[key]
    lq_dir = osp.join(raw, source.lq_dir)
    list_file = osp.join(raw, source.list_file) if source.list_file else ''
    if list_file and osp.isfile(list_file):
        try:  # the authors' lists as their tools wrote them: byte-order marks, CRLF or CR line ends
            lines = read_text_lines(list_file)
        except TextFileError as err:
            raise PrepareError(str(err)) from None
        names, problems = [], []
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                name = source.list_entry(line)
            except NamingError as err:
                problems.append(f'{list_file} line {line_no}: {err}')
                continue
            if not osp.isfile(osp.join(lq_dir, name)):
                problems.append(f'{list_file} line {line_no} lists {osp.join(lq_dir, name)}, which does not exist')
            names.append(name)
        raise_problems(f'{key} list {list_file}', problems)
    elif source.list_required:
        raise PrepareError(f'missing list file {list_file}: expected {source.layout}')
    else:
        names = scan_images(lq_dir, source.glob)
    if not names:
        raise PrepareError(f'no images in {lq_dir}: expected {source.layout}')
    return names


def pair_source(raw: str, key: str) -> list[tuple[str, str]]:
    """Checked (lq, gt) paths of a paired source, relative to its folders: partner found, same size."""
    source = SOURCES[key]
    lq_dir, gt_dir = osp.join(raw, source.lq_dir), osp.join(raw, source.gt_dir)
    pairs, problems = [], []
    sizes: dict[str, tuple[int, int] | None] = {}

    def size_of(path: str) -> tuple[int, int] | None:
        if path not in sizes:
            try:
                sizes[path] = image_size(path)
            except OSError as err:
                sizes[path] = None
                problems.append(f'cannot read {path}: {err}')
        return sizes[path]

    for lq in lq_names(raw, key):
        lq_path = osp.join(lq_dir, lq)
        try:
            candidates = source.rule(lq)
        except NamingError as err:
            problems.append(f'{lq_path}: {err}')
            continue
        gt = next((c for c in candidates if osp.isfile(osp.join(gt_dir, c))), None)
        if gt is None:
            expected = ' or '.join(osp.join(gt_dir, c) for c in candidates)
            problems.append(f'no GT partner for {lq_path}: expected {expected}')
            continue
        gt_path = osp.join(gt_dir, gt)
        lq_size, gt_size = size_of(lq_path), size_of(gt_path)
        if lq_size and gt_size and lq_size != gt_size:
            problems.append(f'LQ/GT size mismatch: {lq_path} is {lq_size[0]}x{lq_size[1]}, '
                            f'{gt_path} is {gt_size[0]}x{gt_size[1]}')
            continue
        pairs.append((lq, gt))
    raise_problems(f'{key} ({source.layout})', problems)
    return pairs


def clean_source(raw: str, key: str) -> list[tuple[str, str]]:
    """Checked (path, '') of an unpaired source (clean images degraded on the fly), relative to its folder: every
    header read, as pair_source reads both images of a pair, so that an empty or broken download is named here
    rather than when training first draws it."""
    source = SOURCES[key]
    folder = osp.join(raw, source.lq_dir)
    names, problems = lq_names(raw, key), []
    for name in names:
        path = osp.join(folder, name)
        try:
            image_size(path)
        except (OSError, SyntaxError, ValueError) as err:  # PIL: OSError (UnidentifiedImageError), or a bad header
            problems.append(f'cannot read {path}: {err}')
    raise_problems(f'{key} ({source.layout})', problems)
    return [(name, '') for name in names]


def plan(raw: str, setting: Setting) -> dict[str, list[tuple[Part, list[Item]]]]:
    """Check the downloads and list each part's items (source key, LQ path, GT path or '') before writing anything.

    Returns {split: [(part to write, its items)]}, splits in writing order. Raises PrepareError naming every problem.
    """
    raise_problems(f'layout under {raw}', missing_folders(raw, setting))
    cache: dict[str, list[tuple[str, str]]] = {}
    out = {}
    for split, parts in splits_of(setting).items():
        out[split] = []
        for original in parts:
            part = resolve(raw, original)
            items = []
            for key in part.sources:
                if key not in cache:
                    paired = SOURCES[key].rule is not None
                    cache[key] = pair_source(raw, key) if paired else clean_source(raw, key)
                items += [(key, lq, gt) for lq, gt in cache[key]]
            if part.kind == 'mio':
                problems = []
                for key, name, _ in items:
                    path = osp.join(raw, SOURCES[key].lq_dir, name)
                    h, w = image_size(path)
                    if min(h, w) < part.crop[0]:
                        problems.append(f'{path} is {h}x{w}, smaller than the {part.crop[0]}x{part.crop[0]} '
                                        'MiOIR sub-image')
                raise_problems('MiOIR training images', problems)
            if part.kind in MIN_SIDE:
                problems = []
                for key, lq, _ in items:
                    path = osp.join(raw, SOURCES[key].lq_dir, lq)
                    h, w = image_size(path)
                    if min(h, w) < MIN_SIDE[part.kind]:
                        problems.append(f"{path} is {h}x{w}: WGWS-Net's {part.kind} test resize "
                                        f'needs sides of at least {MIN_SIDE[part.kind]}')
                raise_problems(f'{", ".join(part.sources)} test images', problems)
            if callable(part.task):
                problems = []
                for key, lq, _ in items:
                    try:
                        part.task_of(lq)
                    except NamingError as err:
                        problems.append(f'{osp.join(raw, SOURCES[key].lq_dir, lq)}: {err}')
                raise_problems(f'tasks of {", ".join(part.sources)}', problems)
            if part is not original:  # a released set must hold every task of the set it replaces
                found = {part.task_of(lq) for _, lq, _ in items}
                lacking = [t for t in original.task if t not in found]
                if lacking:
                    where = osp.join(raw, SOURCES[part.sources[0]].lq_dir)
                    raise PrepareError(f'{where} has no images of task(s) {", ".join(lacking)}: expected '
                                       f'{SOURCES[part.sources[0]].layout} for each of {", ".join(original.task)}')
            out[split].append((part, items))
    return out
