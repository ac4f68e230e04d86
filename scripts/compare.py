"""Join several test.py result files (and optionally published figures) into one table in the paper's layout.

    python scripts/compare.py results/aio3_PromptIR_L1/metrics.json results/aio3_PromptIR_TUR/metrics.json \
        [--published options/published.yml --setting aio3] [--published-as aio3_PromptIR_L1=PromptIR] \
        [--out results/compare_aio3]

One row per model (and per published row), a first row 'Input (degraded)' when every file scored the same degraded
inputs (test.py's `val.input_row`, on by default), one column per test set (per task when a test set holds several),
cells "PSNR/SSIM", and an Average column (mean over the columns). Without --published, the published rows are those
of the file and setting that every result's `published_as` names (none when they name different ones or none).
With published rows, each measured row is followed
by its difference to its own published row: the one its metrics.json names in `published_as` (written by test.py
from the options' `published.row`), or the one `--published-as LABEL=ROW` names for the run called LABEL
(`LABEL=` for none). A run with neither gets no difference row. A row the setting lacks, or a `published_as` of
another setting than --setting, is an error. Writes <out>.md, <out>.csv and <out>.json when --out is given.

Runs measured with different metric settings (metrics.json's `protocol`: e.g. PSNR on Y beside PSNR on RGB, another
crop_border) are refused in one line naming both files, since their figures are not comparable; --mixed-protocols
prints them anyway with each run's settings under the table. Runs that differ in another recorded choice (the
test-time padding val.pad, the weights entry scored, a test set's source) are printed with that choice of each run
under the table. When the files scored different degraded inputs the
input row is left out, and the table says so. Under a table with difference rows, the published rows' source and
protocol (options/published.yml: the setting's `table` and `protocol`) are printed beside each such run's metric
settings, since a difference to a row measured by other code mixes the two.
"""
from __future__ import annotations

import argparse
import json
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.files import atomic_write
from basicsr_tur.utils.tables import (
    INPUT_ROW,
    build_table,
    check_protocols,
    check_row,
    input_row,
    load_published,
    load_rows,
    metric_protocols,
    printed_average_notes,
    protocol_differences,
    published_protocol,
    to_csv,
    to_markdown,
)


def parse_published_as(entries: list[str], labels: list[str]) -> dict[str, str | None]:
    """{run name: published row, or None for no difference row} from --published-as LABEL=ROW entries.

    Raises ValueError for an entry without '=' or a LABEL that is not the name of one of the result files.
    """
    out = {}
    for entry in entries:
        if '=' not in entry:
            raise UserError(f"--published-as: expected LABEL=ROW, got '{entry}'")
        label, row = (s.strip() for s in entry.split('=', 1))
        if label not in labels:
            raise UserError(f"--published-as {entry}: no result file is named '{label}' "
                             f"(names: {', '.join(labels)})")
        out[label] = row or None
    return out


def references(sources: dict[str, dict], overrides: dict[str, str | None], published: dict, setting: str,
               file: str) -> dict[str, str]:
    """{run name: the published row its difference row is to}, each checked against the setting's rows.

    Raises ValueError naming the result file (or the --published-as entry), the row and the setting's rows.
    """
    where = f"setting '{setting}' of {file}"
    diff_to = {}
    for label, source in sources.items():
        if label in overrides:
            row, origin = overrides[label], f'--published-as {label}={overrides[label] or ""}'
        else:
            entry = source['published_as'] or {}
            row, origin = entry.get('row'), f"{source['path']}: published_as"
            if row is not None and entry.get('setting') not in (None, setting):
                raise UserError(f"{origin}: row '{row}' of setting '{entry['setting']}', not of '{setting}' "
                                 f'(--setting); choose one with --published-as {label}=ROW, or {label}= for none')
        if row is None:
            continue
        try:
            check_row(published, row, where)
        except ValueError as err:
            raise UserError(f'{origin}: {err}') from None
        diff_to[label] = row
    return diff_to


def common_published(sources: dict[str, dict]) -> tuple[str, str] | None:
    """(file, setting) that every result's `published_as` names, or None when one has none or they differ."""
    found = {(e['file'], e['setting']) if (e := source.get('published_as')) else None for source in sources.values()}
    return found.pop() if len(found) == 1 and None not in found else None


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) the joined table; errors print one line and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', nargs='+', help='metrics.json files written by test.py')
    parser.add_argument('--published', help='YAML of published figures (options/published.yml)')
    parser.add_argument('--setting', help='setting name inside --published')
    parser.add_argument('--published-as', action='append', default=[], metavar='LABEL=ROW',
                        help="compare run LABEL (its name) with published row ROW instead of its metrics.json's "
                             "published_as; 'LABEL=' for no difference row; repeatable")
    parser.add_argument('--out', help='write <out>.md, <out>.csv and <out>.json')
    parser.add_argument('--mixed-protocols', action='store_true',
                        help='print runs measured with different metric settings side by side, each marked')
    args = parser.parse_args(argv)
    if args.published and not args.setting:
        parser.error('--published needs --setting')
    try:
        measured, sources = load_rows(args.results)
        notes = check_protocols(sources, args.mixed_protocols)
        if notes:
            notes = ['', 'Metric settings differ between the runs (or are not recorded), each run:', *notes]
        if differences := protocol_differences(sources):  # marked, not refused: the figures are still PSNR/SSIM
            notes += ['', *differences]
        inputs = input_row(sources)
        if inputs is not None:  # every file scored the same degraded inputs: one row for them, first
            measured = {INPUT_ROW: inputs, **measured}
        elif len(sources) > 1 and all(source['input'] is not None for source in sources.values()):
            notes += ['', f"No '{INPUT_ROW}' row: the files scored different degraded inputs (other test sets, "
                          'other degradations of them, or other metric settings).']
        published, diff_to = {}, {}
        if not args.published and (common := common_published(sources)):
            args.published, args.setting = common
        if args.published_as and not args.published:
            raise UserError('--published-as needs published rows: --published and --setting, or result files '
                             'whose published_as all name the same file and setting')
        if args.published:
            published = load_published(args.published, args.setting)
            overrides = parse_published_as(args.published_as, list(measured))
            diff_to = references(sources, overrides, published, args.setting, args.published)
        names, rows = build_table(measured, published, diff_to)
        if args.published and (averages := printed_average_notes(args.published, args.setting, rows)):
            notes += ['', 'Averages the paper prints otherwise:', *averages]
        if diff_to and (note := published_protocol(args.published, args.setting)):
            ours = metric_protocols(sources)
            notes += ['', note, *(f'- {label} (Δ row): {ours[label]}' for label in diff_to)]
    except (OSError, UserError) as err:  # anything else is a bug: its traceback is shown
        print(f'error: {err}', file=sys.stderr)
        return 1
    text = to_markdown(names, rows) + ''.join(f'\n{line}' for line in notes)
    print(text)
    if args.out:
        try:
            atomic_write(args.out + '.md', text)
            atomic_write(args.out + '.csv', to_csv(names, rows))
            atomic_write(args.out + '.json', json.dumps(
                {'columns': names, 'rows': [{'method': r, 'cells': c} for r, c in rows],
                 'published': {'file': args.published, 'setting': args.setting} if args.published else None,
                 'published_as': {label: diff_to.get(label) for label in measured},
                 'protocols': {label: source.get('protocol') for label, source in sources.items()}}, indent=2))
        except OSError as err:
            print(f'error: {err}', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
