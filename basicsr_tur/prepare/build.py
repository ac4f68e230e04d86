"""Building one of the paper's settings: plan (check the downloads), write every split, and read the result back.

`prepare` is what scripts/prepare_data.py runs; `summary_lines` is what it prints.
"""
from __future__ import annotations

import re
from collections import Counter
from os import path as osp

from basicsr_tur.data.data_util import task_index
from basicsr_tur.data.paired_task_dataset import read_meta_file, read_meta_sources
from basicsr_tur.data.synthetic_task_dataset import read_image_list
from basicsr_tur.prepare.plan import PrepareError, plan
from basicsr_tur.prepare.settings import SETTINGS, Setting, clean_meta_name, meta_name, roots_of, splits_of
from basicsr_tur.prepare.writers import SplitWriter, build_lmdbs, write_meta
from basicsr_tur.utils.files import atomic_dir

# {split: {task: (distinct pairs, meta lines)}}
Summary = dict[str, dict[str, tuple[int, int]]]


def summarize(setting_dir: str, setting: Setting) -> Summary:
    """{split: {task: (distinct pairs, meta lines)}} read back from the meta files; a task degraded on the fly
    counts its clean images and, as lines, the samples an epoch (each image `repeat` times per task)."""
    index = task_index(list(setting.tasks), 'prepare_data')
    out = {}
    for split, parts in splits_of(setting).items():
        pairs = read_meta_file(osp.join(setting_dir, meta_name(split)), index)
        lines = Counter(task for _, _, task in pairs)
        distinct = Counter(task for _, _, task in set(pairs))
        clean_meta = osp.join(setting_dir, clean_meta_name(split))
        if osp.isfile(clean_meta):
            n = len(read_image_list(clean_meta))
            for part in parts:
                for task in part.task if part.kind == 'clean' else ():
                    distinct[task], lines[task] = n, n * part.repeat
        out[split] = {task: (distinct[task], lines[task]) for task in setting.tasks if lines[task]}
    return out


# An Outdoor-Rain (HeavyRainRemoval) image's scene: im_0301_s80_a04.png renders the clean image of scene im_0301.
_SCENE = re.compile(r'(im_\d+)_s\d+_a\d+\.png$')
OVERLAP_PREFIX = 'overlap:'


def scene_of(path: str) -> str | None:
    """The Outdoor-Rain scene an image renders (`im_0301` for .../im_0301_s80_a04.png), or None for other images."""
    match = _SCENE.search(osp.basename(path))
    return match.group(1) if match else None


def test_scene_overlap(items: dict) -> dict[str, set[str]]:
    """{test split: the scenes its images share with the training images} for plan()'s items (empty when none):
    AllWeather's training list holds Outdoor-Rain scenes im_0301..im_0350, whose clean images are Test1's ground
    truth, so a model trained on it has seen Test1's clean scenes."""
    train = {scene_of(lq) for _, part_items in items.get('train', []) for _, lq, _ in part_items} - {None}
    out = {}
    for split, parts in items.items():
        if split != 'train':
            shared = {scene_of(lq) for _, part_items in parts for _, lq, _ in part_items} & train
            if shared:
                out[split] = shared
    return out


def prepare(name: str, root: str, raw: str | None = None, seed: int = 2025, lmdb: bool = False, copy: bool = False,
            workers: int = 1, exclude_test_overlap: bool = False) -> Summary:
    """Build <root>/<name> (and its LMDBs with lmdb=True); returns the summary of summarize().

    seed seeds MiOIR's synthesized images (mio7); the BSD68 test noise of aio3/aio5 is seeded 0
    whatever it is (images.TEST_NOISE_SEED, as AirNet/PromptIR's test.py); the other settings draw
    nothing.

    Training images that render a scene a test set also holds (test_scene_overlap) are kept, as the authors trained,
    and said in an `# source: overlap: ...` line of meta_train.txt (summary_lines prints it); exclude_test_overlap
    drops them from the training split instead.

    Raises KeyError for an unknown setting, ValueError for a negative seed, FileExistsError when <root>/<name>
    exists (unless lmdb=True and it has no lmdb/ yet: then only the LMDBs are added), PrepareError (a ValueError)
    for downloads that do not fit the setting.
    """
    if name not in SETTINGS:
        raise PrepareError(f"unknown setting '{name}'; expected one of {', '.join(SETTINGS)}")
    if seed < 0:
        raise PrepareError(f'--seed must be >= 0, got {seed}')
    setting = SETTINGS[name]
    raw = raw or osp.join(root, 'raw')
    out = osp.join(root, name)
    if osp.exists(out):
        if lmdb and not osp.exists(osp.join(out, 'lmdb')):
            build_lmdbs(out, setting)
            return summarize(out, setting)
        raise FileExistsError(f'{out} already exists; delete it to rebuild the {name} setting')
    items = plan(raw, setting)
    overlap = test_scene_overlap(items)
    shared = set().union(*overlap.values()) if overlap else set()
    if exclude_test_overlap and shared:
        items['train'] = [(part, [item for item in part_items if scene_of(item[1]) not in shared])
                          for part, part_items in items['train']]
    # Written under <out>.partial, renamed when complete; a failure removes it. The links made relative inside it
    # stay right after the rename: <out>.partial and <out> are siblings.
    with atomic_dir(out) as tmp:
        for split, parts in items.items():
            writer = SplitWriter(tmp, raw, *roots_of(setting, split), copy)
            for part, part_items in parts:
                writer.write_part(part, part_items, seed, workers)
            if split == 'train' and overlap:
                scenes = sorted(shared)
                kept = 'dropped from this split (--exclude-test-overlap)' if exclude_test_overlap else \
                    'kept, as the authors trained (--exclude-test-overlap drops them)'
                writer.sources.append(f"{OVERLAP_PREFIX} {len(scenes)} Outdoor-Rain scenes ({scenes[0]}..{scenes[-1]}) "
                                      f"of the training images are also in {', '.join(sorted(overlap))}: {kept}")
            write_meta(osp.join(tmp, meta_name(split)), writer.lines, writer.sources)
            if writer.clean:
                write_meta(osp.join(tmp, clean_meta_name(split)), [(name,) for name in writer.clean],
                           writer.clean_sources)
        if lmdb:
            build_lmdbs(tmp, setting)
        summary = summarize(tmp, setting)
    return summary


def summary_lines(name: str, out: str, summary: Summary, lmdb: bool) -> list[str]:
    """What scripts/prepare_data.py prints for a prepared setting: per split its meta file and line count, per task
    its pairs (and repeats), tasks degraded on the fly counted as clean images times samples an epoch."""
    lines = [f'{name} -> {out}']
    train_meta = osp.join(out, meta_name('train'))
    if osp.isfile(train_meta):
        lines += [f'  warning: {source}' for source in read_meta_sources(train_meta)
                  if source.startswith(OVERLAP_PREFIX)]
    for split, parts in splits_of(SETTINGS[name]).items():
        on_the_fly = {task: part.repeat for part in parts if part.kind == 'clean' for task in part.task}
        counts = summary[split]
        total = sum(n for task, (_, n) in counts.items() if task not in on_the_fly)
        lines.append(f'  {split:<18s} {meta_name(split):<26s} {total:>8d} lines')
        for task, (pairs, n_lines) in counts.items():
            if task in on_the_fly:
                lines.append(f'    {task:<14s} {pairs:>8d} clean images x {on_the_fly[task]} = {n_lines} samples an '
                             f'epoch, degraded on the fly ({clean_meta_name(split)})')
                continue
            repeats = f' x {n_lines // pairs} = {n_lines} lines' if n_lines != pairs else ''
            lines.append(f'    {task:<14s} {pairs:>8d} pairs{repeats}')
    if lmdb:
        lines.append(f'  LMDB: {osp.join(out, "lmdb")}/<split>/{{lq.lmdb, gt.lmdb, meta.txt}}')
    return lines
