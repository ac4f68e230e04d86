"""Build the embedded demo's data from scikit-image's shipped photographs (no download).

The same builder as the preparation step `demo` that the demo options name (`prepare: demo`), which train.py and
test.py run on first use; this script builds it into another folder or with another seed. See
basicsr_tur/prepare/demo_data.py for what it writes.
"""
from __future__ import annotations

import argparse
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.prepare.demo_data import SAMPLE_PHOTOS, build_demo_data, write_sample_photos


def main(argv: list[str] | None = None) -> None:
    """Build the demo data unless it already exists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='datasets/demo')
    parser.add_argument('--seed', type=int, default=2025)
    parser.add_argument('--photos', metavar='DIR', help='also write images of every kind restore.py reads (8/16-bit, '
                                                        'gray, RGBA, EXIF-rotated JPEG) into DIR, from the test set')
    args = parser.parse_args(argv)
    if args.photos:
        build_demo_data(args.out, args.seed)
        for path, (_, _, _, kind) in zip(write_sample_photos(args.out, args.photos), SAMPLE_PHOTOS):
            print(f'{path}: {kind}')
    elif build_demo_data(args.out, args.seed):
        print(f'demo data written to {args.out}')
    else:
        print(f'{args.out} exists; delete it to rebuild the demo data')


if __name__ == '__main__':
    main()
