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
import csv
import io
import json
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.utils.options import load_yaml

METRICS = ('psnr', 'ssim')


def columns_of(results: dict) -> dict[str, dict[str, float]]:
    """Flatten one metrics.json `results` into {column: {metric: value}}: a test set, or `set/task` if several."""
    out = {}
    for dataset, res in results.items():
        tasks = res['model']['tasks']
        for task, values in tasks.items():
            out[dataset if len(tasks) == 1 else f'{dataset}/{task}'] = values
    return out


def load_rows(paths: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{row label: columns} of each result file (label: the run's name)."""
    rows = {}
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'result file not found: {path}')
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if 'results' not in data:
            raise ValueError(f"{path}: not a test.py metrics.json (no 'results' key)")
        rows[data.get('name', osp.basename(osp.dirname(path)))] = columns_of(data['results'])
    return rows


def load_published(path: str, setting: str) -> dict[str, dict[str, dict[str, float]]]:
    """Published rows of a setting: {label: {column: {'psnr': .., 'ssim': ..}}} from a YAML of [psnr, ssim] pairs."""
    data = load_yaml(path)
    if setting not in data:
        raise KeyError(f"{path}: no setting '{setting}' (have: {', '.join(data)})")
    rows = {}
    for label, cells in (data[setting].get('rows') or {}).items():
        rows[label] = {col: dict(zip(METRICS, pair)) for col, pair in cells.items()}
    return rows


def cell(values: dict | None) -> str:
    """'PSNR/SSIM' text of one cell, '-' where missing."""
    if not values:
        return '-'
    return '/'.join(f'{values[m]:.2f}' if m == 'psnr' else f'{values[m]:.4f}' for m in METRICS if m in values)


def average(cols: dict, names: list[str]) -> dict[str, float]:
    """Mean of each metric over the named columns that have it (only when all of them have it)."""
    out = {}
    for m in METRICS:
        vals = [cols[c][m] for c in names if c in cols and m in cols[c]]
        if vals and len(vals) == len(names):
            out[m] = sum(vals) / len(vals)
    return out


def build_table(measured: dict, published: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """Column names (in first-seen order) and rows (label, columns incl. 'Average'), published rows first."""
    names: list[str] = []
    for cols in list(published.values()) + list(measured.values()):
        names += [c for c in cols if c not in names]
    rows = []
    reference = next(iter(published.values()), None)
    for label, cols in published.items():
        rows.append((f'{label} (published)', dict(cols, Average=average(cols, names))))
    for label, cols in measured.items():
        full = dict(cols, Average=average(cols, names))
        rows.append((label, full))
        if reference is not None:
            ref = dict(reference, Average=average(reference, names))
            diff = {c: {m: full[c][m] - ref[c][m] for m in METRICS if m in full.get(c, {}) and m in ref.get(c, {})}
                    for c in names + ['Average'] if c in full and c in ref}
            rows.append((f'Δ {label} − published', diff))
    return names + ['Average'], rows


def to_markdown(names: list[str], rows: list[tuple[str, dict]]) -> str:
    """The table as Markdown."""
    lines = ['| Method | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    for label, cols in rows:
        if label.startswith('Δ'):
            cells = ['/'.join(f'{v[m]:+.2f}' if m == 'psnr' else f'{v[m]:+.4f}' for m in METRICS if m in v)
                     if (v := cols.get(c)) else '-' for c in names]
        else:
            cells = [cell(cols.get(c)) for c in names]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def to_csv(names: list[str], rows: list[tuple[str, dict]]) -> str:
    """One line per (row, column, metric)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(['method', 'column', 'metric', 'value'])
    for label, cols in rows:
        for c in names:
            for m, v in (cols.get(c) or {}).items():
                writer.writerow([label, c, m, f'{v:.6f}'])
    return buf.getvalue()


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
