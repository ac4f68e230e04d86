"""Result tables: the one Markdown and CSV writer (markdown_table, csv_table) of every table a run, a study or a
benchmark writes, and the paper's layout: one row per method, one column per test set (or test set/task), cells
"PSNR/SSIM", an Average column, published rows and, for each measured row that names one, its difference to its own
published row. Used by test.py, scripts/compare.py, scripts/study.py, presets.py and bench/head_curve.py."""
from __future__ import annotations

import csv
import difflib
import inspect
import io
import json
from collections.abc import Iterable, Sequence
from os import path as osp

from basicsr.utils.registry import METRIC_REGISTRY

from basicsr_tur.utils.errors import DataError, UserError
from basicsr_tur.utils.option_file import load_yaml

METRICS = ('psnr', 'ssim')
INPUT_ROW = 'Input (degraded)'  # the row label of the degraded inputs in every table


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub Markdown table: the header line, a `|---|` rule, one line per row, each line ending in a newline.

    Cells are written with str(); a `|` inside a cell is escaped (`\\|`) so that it cannot split the cell.
    """
    def line(cells: Sequence[object]) -> str:
        return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'

    return '\n'.join([line(header), '|' + '---|' * len(header)] + [line(row) for row in rows]) + '\n'


def csv_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """CSV text: the header line, then one line per row, each ending in `\\n` (the csv module's quoting; a float
    written with repr, None as an empty field)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


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


def load_rows(paths: list[str]) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict]]:
    """Rows of result files: ({row label: columns}, {row label: {'path': file, 'published_as': its entry or None,
    'protocol': how it was measured (test.measurement_protocol; None in files written before it was recorded),
    'input': the degraded inputs' columns, or None when the file lacks them}}).

    The label is the run's name; `published_as` ({'file', 'setting', 'row'}) is the published row test.py compared
    the run with. Raises FileNotFoundError, or ValueError for a file that is not a metrics.json or a repeated label.
    """
    rows, sources = {}, {}
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'result file not found: {path}')
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise DataError(f'{path}: not valid JSON ({err})') from None
        results = data.get('results') if isinstance(data, dict) else None
        if not isinstance(results, dict) or not all(isinstance(r, dict) and isinstance(r.get('model'), dict)
                                                    and isinstance(r['model'].get('tasks'), dict)
                                                    for r in results.values()):
            raise DataError(f"{path}: not a test.py metrics.json (expected 'results': {{test set: {{'model': "
                            "{'tasks': ...}}}})")
        label = data.get('name', osp.basename(osp.dirname(path)))
        if label in rows:
            raise UserError(f"{path}: run name '{label}' repeats that of {sources[label]['path']}; "
                             'rows are told apart by run name')
        rows[label] = columns_of(data['results'])
        sources[label] = {'path': path, 'published_as': data.get('published_as'), 'protocol': data.get('protocol'),
                          'input': columns_of(data['results'], 'input')
                          if all('input' in r for r in data['results'].values()) else None}
    return rows, sources


def full_metric_settings(settings: dict) -> dict:
    """A val.metrics entry with every argument its metric function defaults filled in ({'type': 'calculate_psnr',
    'crop_border': 0} -> ... 'input_order': 'HWC', 'test_y_channel': False), keys sorted, so that two runs that
    measured alike compare equal however their options spelled it; an unknown type is returned as it is."""
    try:
        fn = METRIC_REGISTRY.get(settings.get('type'))
    except KeyError:
        return dict(sorted(settings.items()))
    defaults = {name: p.default for name, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD}
    return dict(sorted({**defaults, **settings}.items()))


def metric_protocols(sources: dict[str, dict]) -> dict[str, str]:
    """{run label: its metric settings as one line ('psnr: calculate_psnr, crop_border 0, test_y_channel true; ...')
    or 'not recorded'} of load_rows' sources."""
    out = {}
    for label, source in sources.items():
        metrics = (source.get('protocol') or {}).get('metrics')
        out[label] = 'not recorded' if metrics is None else '; '.join(
            f"{name}: {settings.get('type')}" + ''.join(f', {k} {json.dumps(v)}' for k, v in settings.items()
                                                         if k != 'type')
            for name, settings in ((n, full_metric_settings(m)) for n, m in sorted(metrics.items())))
    return out


def check_protocols(sources: dict[str, dict], allow_mixed: bool) -> list[str]:
    """Refuse (ValueError naming both files and both settings) runs whose metric settings differ, unless
    allow_mixed; returns the note lines to print under the table: each run's settings when they differ or some file
    does not record them, [] when every run was measured alike."""
    protocols = metric_protocols(sources)
    recorded = {label: p for label, p in protocols.items() if p != 'not recorded'}
    distinct = sorted(set(recorded.values()))
    if len(distinct) > 1 and not allow_mixed:
        first = next(label for label, p in recorded.items() if p == distinct[0])
        other = next(label for label, p in recorded.items() if p == distinct[1])
        raise UserError(f"{sources[first]['path']} measured {distinct[0]} but {sources[other]['path']} measured "
                         f'{distinct[1]}: their figures are not comparable; rescore one with the other\'s val.metrics '
                         '(or pass --mixed-protocols to print them side by side, each marked)')
    if len(distinct) > 1 or (recorded and len(recorded) < len(protocols)):
        return [f'- {label}: {protocol}' for label, protocol in protocols.items()]
    return []


# What else metrics.json's protocol records that changes a figure, with how to print it: the test-time padding and
# tiling, the weights entry scored (params / params_ema) and each test set's source (released, resized,
# re-synthesised). A file written before padding and tiling were recorded ran without either: null.
_PROTOCOL_FIELDS = {
    'test-time padding (val.pad)': lambda p: json.dumps(p.get('pad')),
    'tiled restoration (val.tile)': lambda p: json.dumps(p.get('tile')),
    'weights entry scored': lambda p: json.dumps((p.get('weights') or {}).get('key')) if 'weights' in p else None,
    'test data': lambda p: '; '.join(f'{name}: {src or "not recorded"}' for name, src in
                                     sorted((p.get('test_sets') or {}).items())) if 'test_sets' in p else None,
}


def protocol_differences(sources: dict[str, dict]) -> list[str]:
    """Note lines marking, beside a table, each measurement choice other than the metric settings that differs
    between the runs (load_rows' sources) that record a protocol: the test-time padding and tiling, the weights
    entry scored and the test data's sources; [] when they agree. Runs differing in these are comparable only
    with that said."""
    notes = []
    for field, read in _PROTOCOL_FIELDS.items():
        values = {label: read(source['protocol']) for label, source in sources.items() if source.get('protocol')}
        values = {label: v for label, v in values.items() if v is not None}
        if len(set(values.values())) > 1:
            notes += [f'Runs differ in {field}:'] + [f'- {label}: {v}' for label, v in values.items()]
    return notes


def input_row(sources: dict[str, dict]) -> dict[str, dict[str, float]] | None:
    """The degraded inputs' columns shared by every result file (load_rows' sources), or None when a file lacks them
    or two files scored different inputs (another test set, or another degradation of it): their metrics differ by
    more than 1e-6."""
    inputs = [source['input'] for source in sources.values()]
    if not inputs or any(i is None for i in inputs):
        return None
    first = inputs[0]
    for other in inputs[1:]:
        if set(other) != set(first) or any(set(other[c]) != set(first[c]) or
                                           any(abs(other[c][m] - first[c][m]) > 1e-6 for m in first[c])
                                           for c in first):
            return None
    return first


PUBLISHED_KEYS = ('table', 'protocol', 'rows', 'printed_average')  # the keys of a setting in published.yml


def published_setting(path: str, setting: str) -> dict:
    """One setting of a published-figures YAML (options/published.yml): {'table': where in the paper, 'protocol':
    how the published rows were measured, 'rows': {label: {column: [psnr, ssim]}}, 'printed_average': {label:
    [psnr, ssim]}}, each optional but `rows`.

    Raises FileNotFoundError for a missing file, ValueError naming the file and the key when it has no such
    setting or the setting holds a key not in PUBLISHED_KEYS.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'published figures file not found: {path}')
    data = load_yaml(path)
    if setting not in data:
        raise UserError(f"{path}: no setting '{setting}' (have: {', '.join(data)})")
    entry = data[setting] or {}
    unknown = [key for key in entry if key not in PUBLISHED_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown key '{setting}.{unknown[0]}' (known: {', '.join(PUBLISHED_KEYS)})")
    return entry


def load_published(path: str, setting: str) -> dict[str, dict[str, dict[str, float]]]:
    """Published rows of a setting: {label: {column: {'psnr': .., 'ssim': ..}}} from a YAML of [psnr, ssim] pairs.

    Raises FileNotFoundError for a missing file, ValueError naming the file when it has no such setting.
    """
    rows = {}
    for label, cells in (published_setting(path, setting).get('rows') or {}).items():
        rows[label] = {col: dict(zip(METRICS, pair)) for col, pair in cells.items()}
    return rows


def printed_average_notes(path: str, setting: str, rows: list[tuple[str, dict]]) -> list[str]:
    """Note lines for the published rows of a built table (build_table's rows) whose Average column differs from
    the Average the paper prints (the setting's `printed_average`) by more than one unit of its last digit, or is
    missing: the table's Average is the mean of the cells it shows, and the paper's own figure is said beside it."""
    printed = published_setting(path, setting).get('printed_average') or {}
    notes = []
    for label, cols in rows:
        if not label.endswith(' (published)') or label[:-len(' (published)')] not in printed:
            continue
        paper = dict(zip(METRICS, printed[label[:-len(' (published)')]]))
        shown = cols.get('Average') or {}
        # one unit of the printed figure's last digit: rounding, or truncation as some of the quoted papers did
        off = [m for m, v in paper.items() if m in shown
               and abs(shown[m] - v) > 10 ** -len(repr(v).split('.')[-1]) + 1e-9]
        if off or not shown:
            notes.append(f"- {label}: the paper prints Average {cell(paper)}; the Average column is the mean of "
                         f"the cells shown ({cell(shown) if shown else 'not all of its columns are in this table'})")
    return notes


def published_protocol(path: str, setting: str) -> str:
    """The sentence under a table with difference rows: where the published rows come from and how they were
    measured (the setting's `table` and `protocol`), '' when the file records neither."""
    entry = published_setting(path, setting)
    parts = [f"the paper's {entry['table']}" if entry.get('table') else '',
             f"protocol: {entry['protocol']}" if entry.get('protocol') else '']
    text = '; '.join(p for p in parts if p)
    return f"Published rows of '{setting}' ({osp.basename(path)}): {text}." if text else ''


def check_row(rows: dict, row: str, where: str) -> None:
    """Raise ValueError (one line: the row, `where` the rows come from, their labels, the closest one) when `row` is
    not a label of `rows`; `where` reads e.g. "setting 'aio3' of options/published.yml".

    Matching is exact: 'PromptIR + TUR' and 'PromptIR+TUR' are different rows, and the error suggests the right one.
    """
    if isinstance(row, str) and row in rows:
        return
    lower = {str(label).lower(): str(label) for label in rows}
    close = difflib.get_close_matches(str(row).lower(), list(lower), n=1, cutoff=0.5)
    hint = f"; did you mean '{lower[close[0]]}'?" if close else ''
    have = ', '.join(f"'{label}'" for label in rows) or 'none'
    raise UserError(f"no published row '{row}' in {where}{hint} (rows: {have})")


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
                diff_to: dict[str, str] | None = None) -> tuple[list[str], list[tuple[str, dict]]]:
    """Column names (first seen in the measured rows, then the published ones; then Average) and rows (label,
    columns): published rows first, then each measured row, followed by its difference to the published row that
    diff_to names for it ('Δ <label> − <row> (published)'); a measured row diff_to does not name gets none.

    Raises ValueError when diff_to names a row that `published` lacks.
    """
    diff_to = diff_to or {}
    for label, row in diff_to.items():
        if label in measured:
            check_row(published, row, 'the published rows of this table')
    names: list[str] = []
    for cols in list(measured.values()) + list(published.values()):  # measured order first
        names += [c for c in cols if c not in names]
    published = {label: dict(cols, Average=average(cols, names)) for label, cols in published.items()}
    rows = [(f'{label} (published)', cols) for label, cols in published.items()]
    for label, cols in measured.items():
        full = dict(cols, Average=average(cols, names))
        rows.append((label, full))
        if label in diff_to:
            reference = published[diff_to[label]]
            diff = {c: {m: full[c][m] - reference[c][m] for m in METRICS if m in full[c] and m in reference[c]}
                    for c in names + ['Average'] if c in full and c in reference}
            rows.append((f'Δ {label} − {diff_to[label]} (published)', diff))
    return names + ['Average'], rows


def to_markdown(names: list[str], rows: list[tuple[str, dict]]) -> str:
    """The table as Markdown: a Method column, then one per name; difference rows (label 'Δ ...') signed."""
    lines = []
    for label, cols in rows:
        if label.startswith('Δ'):
            cells = ['/'.join(f'{v[m]:+.2f}' if m == 'psnr' else f'{v[m]:+.4f}' for m in METRICS if m in v)
                     if (v := cols.get(c)) else '-' for c in names]
        else:
            cells = [cell(cols.get(c)) for c in names]
        lines.append([label] + cells)
    return markdown_table(['Method'] + names, lines)


def to_csv(names: list[str], rows: list[tuple[str, dict]]) -> str:
    """One line per (row, column, metric)."""
    return csv_table(['method', 'column', 'metric', 'value'],
                     ([label, c, m, f'{v:.6f}'] for label, cols in rows for c in names
                      for m, v in (cols.get(c) or {}).items()))


