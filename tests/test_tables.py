"""utils/tables.py's one Markdown and CSV writer, shared by test.py, scripts/compare.py and scripts/study.py."""
import csv
from os import path as osp

from basicsr_tur import study
from basicsr_tur import test as test_py
from basicsr_tur.utils.tables import build_table, csv_table, markdown_table, to_csv

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

RESULTS = {'model': {'tasks': {'a|b': {'psnr': 30.0, 'ssim': 0.9}}, 'average': {'psnr': 30.0, 'ssim': 0.9}},
           'counts': {'a|b': 2}, 'uncertainty': {'a|b': {'mean_sigma': 0.01, 'spearman': None}}}


def test_markdown_table_is_header_rule_and_one_line_per_row():
    assert markdown_table(['Method', 'x'], [['L1', 1.5], ['TUR', '-']]) == \
        '| Method | x |\n|---|---|\n| L1 | 1.5 |\n| TUR | - |\n'


def test_a_bar_in_a_cell_is_escaped_so_the_row_keeps_its_columns():
    for text in (test_py.metrics_tables('run', 'set', RESULTS), test_py.uncertainty_table('set', RESULTS)):
        rows = [line for line in text.splitlines() if line.startswith('| a')]
        assert rows and all(row.startswith('| a\\|b | ') for row in rows)
        header = next(line for line in text.splitlines() if line.startswith('| Task'))
        assert all(row.replace('\\|', '').count('|') == header.replace('\\|', '').count('|') for row in rows)


def test_csv_table_writes_none_empty_floats_in_full_and_newline_line_ends():
    text = csv_table(['a', 'b', 'c'], [['x,y', None, 0.1 + 0.2]])
    assert text == 'a,b,c\n"x,y",,0.30000000000000004\n'
    assert list(csv.reader(text.splitlines())) == [['a', 'b', 'c'], ['x,y', '', '0.30000000000000004']]


def test_every_results_csv_ends_its_lines_alike():
    names, rows = build_table({'run': {'set': {'psnr': 30.0, 'ssim': 0.9}}}, {})
    summary = {'L1': {'set': {'psnr': {'values': [30.0], 'mean': 30.0, 'std': None}}}}
    for text in (test_py.metrics_csv('run', {'set': RESULTS}), to_csv(names, rows), study.results_csv(summary)):
        assert '\r' not in text and text.endswith('\n') and text.count('\n') > 1
