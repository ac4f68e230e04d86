"""Build LMDB copies of a task-labelled dataset, with a progress bar.

Paired sets (PairedTaskDataset), from a meta file or from per-task folders:
  python scripts/make_lmdb.py --lq datasets/X/lq --gt datasets/X/gt --meta datasets/X/meta.txt --out datasets/X_lmdb
  python scripts/make_lmdb.py --lq datasets/X/lq --gt datasets/X/gt --tasks sr blur noise --out datasets/X_lmdb
Clean images (SyntheticTaskDataset):
  python scripts/make_lmdb.py --gt datasets/X/gt --clean --out datasets/X_lmdb
Then point the dataset at <out>/lq.lmdb, <out>/gt.lmdb and meta_file <out>/meta.txt with io_backend {type: lmdb}.
"""
import argparse
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.data.data_util import list_images, task_index
from basicsr_tur.data.paired_task_dataset import read_meta_file, scan_task_folders
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.lmdb_util import VALUE_FORMATS, build_clean_lmdb, build_paired_lmdb


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and build the LMDBs; errors print one line and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lq', help='LQ root (paired sets)')
    parser.add_argument('--gt', required=True, help='GT root')
    parser.add_argument('--meta', help='meta file of `lq gt task` lines relative to the roots')
    parser.add_argument('--tasks', nargs='+', help='task names (per-task folders, or to check the meta file)')
    parser.add_argument('--clean', action='store_true', help='clean images only (SyntheticTaskDataset)')
    parser.add_argument('--out', required=True, help='output folder (must not exist)')
    parser.add_argument('--compress_level', type=int, default=1, help='PNG compression level 0-9')
    parser.add_argument('--values', choices=VALUE_FORMATS, default='png',
                        help="png (basicsr's layout, decoded at every read) or raw (uncompressed pixels: reads "
                             'about 20x the pairs per core for 1.5-3x the disk; basicsr-tur readers only)')
    args = parser.parse_args(argv)
    try:
        if args.clean:
            if not osp.isdir(args.gt):
                raise FileNotFoundError(f'GT folder not found: {args.gt}')
            n = build_clean_lmdb(list_images(args.gt), args.gt, args.out, args.compress_level, args.values)
            print(f'{n} clean images -> {args.out}')
            return 0
        if not args.lq:
            parser.error('--lq is required for paired sets (or pass --clean)')
        if args.meta:
            # Without --tasks the tasks are whatever the meta file names (an LMDB does not depend on them).
            pairs = read_meta_file(args.meta, task_index(args.tasks, args.meta) if args.tasks else None)
        elif args.tasks:
            pairs = scan_task_folders(args.lq, args.gt, args.tasks)
        else:
            parser.error('give --meta or --tasks')
        counts = build_paired_lmdb(pairs, args.lq, args.gt, args.out, args.compress_level, args.values)
    except (OSError, UserError) as err:  # anything else is a bug: its traceback is shown
        print(f'error: {err}', file=sys.stderr)
        return 1
    for task, n in counts.items():
        print(f'{task:>12s}: {n} pairs')
    print(f'-> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
