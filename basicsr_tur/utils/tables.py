"""Result tables in the paper's layout: one row per method, one column per test set (or test set/task), cells
"PSNR/SSIM", an Average column, published rows and differences to them. Used by test.py and scripts/compare.py."""
from __future__ import annotations

import csv
import io
import json
from os import path as osp

from basicsr_tur.utils.options import load_yaml

METRICS = ('psnr', 'ssim')


def columns_of(results: dict, source: str = 'model') -> dict[str, dict[str, float]]:
    """Flatten a metrics.json `results` into {column: {metric: value}}: a test set, or `set/task` if several.

    source: 'model' for the restored images, 'input' for the degraded inputs.
    """
    out = {}
    for dataset, res in results.items():
        tasks = res[source]['tasks']
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


def build_table(measured: dict, published: dict,
                no_diff: tuple[str, ...] = ()) -> tuple[list[str], list[tuple[str, dict]]]:
    """Column names (first seen in the measured rows, then the published ones; then Average) and rows (label,
    columns): published rows first, then each measured row followed by its difference to the first published row
    (except the labels in no_diff)."""
    names: list[str] = []
    for cols in list(measured.values()) + list(published.values()):  # measured order first
        names += [c for c in cols if c not in names]
    rows = [(f'{label} (published)', dict(cols, Average=average(cols, names))) for label, cols in published.items()]
    reference = next(iter(rows), (None, None))[1]
    for label, cols in measured.items():
        full = dict(cols, Average=average(cols, names))
        rows.append((label, full))
        if reference is not None and label not in no_diff:
            diff = {c: {m: full[c][m] - reference[c][m] for m in METRICS if m in full[c] and m in reference[c]}
                    for c in names + ['Average'] if c in full and c in reference}
            rows.append((f'Δ {label} − {next(iter(published))} (published)', diff))
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


