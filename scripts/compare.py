"""Join several test.py result files (and optionally published figures) into one table in the paper's layout.

    python scripts/compare.py results/aio3_PromptIR_L1/metrics.json results/aio3_PromptIR_TUR/metrics.json \
        [--published options/published.yml --setting aio3] [--out results/compare_aio3]

One row per model (and per published row), one column per test set (per task when a test set holds several),
cells "PSNR/SSIM", and an Average column (mean over the columns). With --published, each measured row is
followed by its difference to the published row named in the result's `published_as` (or to the first one).
Writes <out>.md, <out>.csv and <out>.json when --out is given.
"""
from __future__ import annotations

import argparse
import json
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.utils.tables import build_table, load_published, load_rows, to_csv, to_markdown


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) the joined table; errors print one line and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', nargs='+', help='metrics.json files written by test.py')
    parser.add_argument('--published', help='YAML of published figures (options/published.yml)')
    parser.add_argument('--setting', help='setting name inside --published')
    parser.add_argument('--out', help='write <out>.md, <out>.csv and <out>.json')
    args = parser.parse_args(argv)
    try:
        measured = load_rows(args.results)
        published = {}
        if args.published:
            if not args.setting:
                parser.error('--published needs --setting')
            published = load_published(args.published, args.setting)
        names, rows = build_table(measured, published)
    except (OSError, ValueError, KeyError) as err:
        print(f'error: {err.args[0] if isinstance(err, KeyError) else err}', file=sys.stderr)
        return 1
    text = to_markdown(names, rows)
    print(text)
    if args.out:
        import os
        os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
        with open(args.out + '.md', 'w', encoding='utf-8') as f:
            f.write(text)
        with open(args.out + '.csv', 'w', encoding='utf-8') as f:
            f.write(to_csv(names, rows))
        with open(args.out + '.json', 'w', encoding='utf-8') as f:
            json.dump({'columns': names, 'rows': [{'method': r, 'cells': c} for r, c in rows]}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
