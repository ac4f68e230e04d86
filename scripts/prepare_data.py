"""Prepare one of the paper's five all-in-one settings from the datasets as their authors distribute them.

  python scripts/prepare_data.py mio7|aio3|aio5|allweather|realweather [--root datasets] [--raw RAW] [--lmdb]
                                 [--seed N] [--workers N] [--copy]

Reads the downloads under --raw (default <root>/raw, layouts in datasets/README.md), checks every folder, pairs the
files by each dataset's naming rule (basicsr_tur/prepare/settings.py) and checks that partners have the same size,
then writes <root>/<setting>/: the training and test pairs where the options read them (per-file symlinks into the
raw folder, or copies with --copy; synthesized and resized images as PNG), the meta files `meta_train.txt` and
`meta_test_<set>.txt` (lines `lq_path gt_path task`, and `# source: ...` lines saying where each part's images come
from, which test.py prints), `meta_train_clean.txt` listing the clean images the options degrade on the fly (aio3,
aio5 denoising), and with --lmdb `lmdb/<split>/{lq.lmdb,gt.lmdb,meta.txt}` (`lmdb/train_clean/{gt.lmdb,meta.txt}`).
MiOIR's synthesized images are drawn once from generators seeded by (--seed, dataset, task, file
name), so a rebuild gives the same files whatever the worker count. The BSD68 test noise (aio3,
aio5) is drawn as AirNet/PromptIR's test.py draws it: one numpy stream seeded 0, over the sigmas in
their order and the images in sorted order; --seed does not change it. When MiOIR's released
degraded test set (MiO_test/single_indis/<task>/) is under the raw folder, mio7 links it instead of
re-synthesising it. Everything is written under <root>/<setting>.partial and renamed when complete;
a failure removes it. --lmdb on an existing setting folder without lmdb/ adds the LMDBs only. The
work is done by the package basicsr_tur/prepare/ (build.py).
"""
from __future__ import annotations

import argparse
import os
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.prepare.build import prepare, summary_lines
from basicsr_tur.prepare.settings import SETTINGS
from basicsr_tur.utils.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('setting', choices=list(SETTINGS))
    parser.add_argument('--root', default='datasets', help='where <setting>/ is written (default: datasets)')
    parser.add_argument('--raw', help='the downloads, laid out as in datasets/README.md (default: <root>/raw)')
    parser.add_argument('--lmdb', action='store_true', help='also build <root>/<setting>/lmdb/<split>/')
    parser.add_argument('--seed', type=int, default=2025,
                        help="seed of MiOIR's synthesized images (default: 2025); the BSD68 test "
                             "noise is always seeded 0, as AirNet/PromptIR's test.py")
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='processes for image writing')
    parser.add_argument('--copy', action='store_true', help='copy the downloaded files instead of symlinking them')
    parser.add_argument('--exclude-test-overlap', action='store_true',
                        help='drop training images of scenes a test set holds (AllWeather: Outdoor-Rain im_0301..0350 '
                             'are Test1 scenes); kept by default, as the authors trained')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Prepare the setting and print its summary; errors print one line `error: ...` and return 1."""
    args = build_parser().parse_args(argv)

    def run(_: str) -> None:
        summary = prepare(args.setting, args.root, args.raw, args.seed, args.lmdb, args.copy, args.workers,
                          exclude_test_overlap=args.exclude_test_overlap)
        print('\n'.join(summary_lines(args.setting, osp.join(args.root, args.setting), summary, args.lmdb)))

    return run_cli(run, os.getcwd())


if __name__ == '__main__':
    sys.exit(main())
