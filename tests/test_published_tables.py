"""options/published.yml holds the paper's five tables, every row, and says how they were measured.

The tables are written out here a second time, in the paper's own layout (its row order and column order, cells as
printed), so that a cell moved to the wrong column or row of the YAML fails; the printed Average column checks both
transcriptions against the cells.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import assert_names

from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.tables import load_published, published_protocol, published_setting

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / 'options' / 'published.yml'

# The paper's tables (Aitical/TUR gh-pages images/results/table1-4.png, f596231): row label as published.yml names
# it, then the cells in the paper's column order, the printed Average last.
PAPER = {
    'mio7': (
        ['mio7_indis/sr', 'mio7_indis/blur', 'mio7_indis/noise', 'mio7_indis/jpeg', 'mio7_indis/rain',
         'mio7_indis/haze', 'mio7_indis/dark'],
        """
        SRResNet        | 25.52 | 30.01 | 30.49 | 32.46 | 32.38 | 25.57 | 30.20 | 29.52
        SRResNet-S      | 25.72 | 30.49 | 30.67 | 32.73 | 32.81 | 25.78 | 30.45 | 29.84
        SRResNet + TUR  | 25.55 | 30.65 | 30.65 | 32.92 | 35.20 | 26.16 | 32.04 | 30.45
        Uformer         | 25.80 | 30.53 | 30.84 | 33.13 | 33.39 | 27.93 | 33.27 | 30.70
        Uformer-S       | 26.07 | 31.11 | 30.96 | 33.27 | 35.96 | 28.29 | 32.80 | 31.21
        Uformer + TUR   | 26.11 | 31.51 | 31.20 | 33.46 | 38.13 | 30.91 | 38.24 | 32.79
        """),
    'aio3': (
        ['sots_outdoor', 'rain100l', 'bsd68/denoise_15', 'bsd68/denoise_25', 'bsd68/denoise_50'],
        """
        BRDNet          | 23.23/0.895 | 27.42/0.895 | 32.26/0.898 | 29.76/0.836 | 26.34/0.693 | 27.80/0.843
        LPNet           | 20.84/0.828 | 24.88/0.784 | 26.47/0.778 | 24.77/0.748 | 21.26/0.552 | 23.64/0.738
        FDGAN           | 24.71/0.929 | 29.89/0.933 | 30.25/0.910 | 28.81/0.868 | 26.43/0.776 | 28.02/0.883
        MPRNet          | 25.28/0.955 | 33.57/0.954 | 33.54/0.927 | 30.89/0.880 | 27.56/0.779 | 30.17/0.899
        DL              | 26.92/0.931 | 32.62/0.931 | 33.05/0.914 | 30.41/0.861 | 26.90/0.740 | 29.98/0.876
        AirNet          | 27.94/0.962 | 34.90/0.968 | 33.92/0.933 | 31.26/0.888 | 28.00/0.797 | 31.20/0.910
        AirNet + TUR    | 30.41/0.976 | 38.04/0.983 | 33.97/0.931 | 31.32/0.886 | 28.05/0.795 | 32.36/0.914
        PromptIR        | 30.58/0.974 | 36.37/0.972 | 33.98/0.933 | 31.31/0.888 | 28.06/0.799 | 32.06/0.913
        PromptIR + TUR  | 31.17/0.978 | 38.57/0.984 | 34.06/0.932 | 31.40/0.887 | 28.13/0.797 | 32.67/0.916
        """),
    'aio5': (
        ['sots_outdoor', 'rain100l', 'bsd68', 'gopro', 'lol'],
        """
        NAFNet             | 25.23/0.939 | 35.56/0.967 | 31.02/0.883 | 26.53/0.808 | 20.49/0.809 | 27.76/0.881
        MPRNet             | 24.27/0.937 | 38.16/0.981 | 31.35/0.889 | 26.87/0.823 | 20.84/0.824 | 28.27/0.890
        SwinIR             | 21.50/0.891 | 30.78/0.923 | 30.59/0.868 | 24.52/0.773 | 17.81/0.723 | 25.04/0.835
        DL                 | 20.54/0.826 | 21.96/0.762 | 23.09/0.745 | 19.86/0.672 | 19.83/0.712 | 21.05/0.743
        TAPE               | 22.16/0.861 | 29.67/0.904 | 30.18/0.855 | 24.47/0.763 | 18.97/0.621 | 25.09/0.801
        IDR                | 25.24/0.943 | 35.63/0.965 | 31.60/0.887 | 27.87/0.846 | 21.34/0.826 | 28.34/0.893
        TransWeather       | 21.32/0.885 | 29.43/0.905 | 29.00/0.841 | 25.12/0.757 | 21.21/0.792 | 25.22/0.836
        TransWeather + TUR | 29.68/0.966 | 33.09/0.952 | 30.40/0.869 | 26.63/0.815 | 23.02/0.838 | 28.56/0.888
        AirNet             | 21.04/0.884 | 32.98/0.951 | 30.91/0.882 | 24.35/0.781 | 18.18/0.735 | 25.49/0.846
        AirNet + TUR       | 27.59/0.954 | 33.95/0.962 | 30.93/0.875 | 26.13/0.801 | 17.88/0.772 | 27.30/0.873
        """),
    # Tables 4 and 5 list methods per test set; written here as one row per method ('-' where the paper has none).
    'allweather': (
        ['test1', 'snow100k_l', 'raindrop_a'],
        """
        All-in-One         | 24.71/0.8980 | 28.33/0.8820 | 31.12/0.9268 | 27.12/0.8933
        WeatherDiff128     | 29.72/0.9216 | 29.58/0.8941 | 29.66/0.9225 | 29.65/0.9127
        DDMSNet            | -            | 28.85/0.8772 | -            | -
        TransWeather       | 28.83/0.9000 | 29.31/0.8879 | 30.17/0.9157 | 29.44/0.9012
        TransWeather + TUR | 29.75/0.9073 | 30.62/0.9086 | 31.61/0.9330 | 30.66/0.9163
        """),
    'realweather': (
        ['spa_plus', 'realsnow', 'revide'],
        """
        Chen et al.        | 37.32/0.97 | 29.37/0.88 | 20.10/0.85 | 28.93/0.90
        WGWS-Net           | 38.94/0.98 | 29.46/0.85 | 20.44/0.87 | 29.61/0.90
        TransWeather       | 33.64/0.93 | 29.16/0.82 | 17.33/0.82 | 26.71/0.86
        TransWeather + TUR | 39.78/0.98 | 29.72/0.91 | 20.38/0.88 | 29.96/0.92
        """),
}

# Printed averages that are not the mean of their row's printed cells (kept as printed, with a comment in the YAML).
INCONSISTENT_AVERAGES = {('mio7', 'SRResNet-S'), ('aio5', 'MPRNet'), ('allweather', 'All-in-One')}


def parse_cell(text: str) -> list[float] | None:
    """'30.41/0.976' -> [30.41, 0.976]; '25.52' -> [25.52]; '-' -> None."""
    text = text.strip()
    return None if text == '-' else [float(v) for v in text.split('/')]


def paper_rows(setting: str) -> dict[str, tuple[dict[str, list[float]], list[float] | None]]:
    """{label: ({column: cell}, printed average)} of one table as written above."""
    columns, text = PAPER[setting]
    out = {}
    for line in text.strip().splitlines():
        label, *cells = (part.strip() for part in line.split('|'))
        assert len(cells) == len(columns) + 1, f'{setting} {label}: {len(cells)} cells'
        values = {col: parse_cell(c) for col, c in zip(columns, cells[:-1]) if parse_cell(c) is not None}
        out[label] = (values, parse_cell(cells[-1]))
    return out


def yaml_setting(setting: str) -> dict:
    return yaml.safe_load(PUBLISHED.read_text(encoding='utf-8'))[setting]


def test_published_yml_holds_the_five_tables_of_the_paper():
    assert list(yaml.safe_load(PUBLISHED.read_text(encoding='utf-8'))) == list(PAPER)


@pytest.mark.parametrize('setting', list(PAPER))
def test_every_row_and_cell_of_the_paper_is_in_published_yml(setting):
    rows = yaml_setting(setting)['rows']
    paper = paper_rows(setting)
    assert list(rows) == list(paper)  # every row, in the paper's order, and no other
    for label, (cells, _) in paper.items():
        assert rows[label] == cells, label


@pytest.mark.parametrize('setting', list(PAPER))
def test_printed_averages_are_the_papers_and_match_the_cells(setting):
    printed = yaml_setting(setting)['printed_average']
    paper = paper_rows(setting)
    assert printed == {label: average for label, (_, average) in paper.items() if average is not None}
    for label, average in printed.items():
        cells = list(paper[label][0].values())
        means = [sum(c[i] for c in cells) / len(cells) for i in range(len(average))]
        # the printed figure is the mean rounded to its digits (PSNR 0.01, SSIM 0.001 or 0.0001), give or take one
        close = all(abs(m - a) <= 1.5 * 10 ** -len(f'{a}'.split('.')[1]) + 1e-9 for m, a in zip(means, average))
        assert close == ((setting, label) not in INCONSISTENT_AVERAGES), (setting, label, means, average)


@pytest.mark.parametrize('setting', list(PAPER))
def test_each_setting_says_which_table_and_protocol(setting):
    entry = published_setting(str(PUBLISHED), setting)
    assert entry['table'].startswith(f"Table {list(PAPER).index(setting) + 1} ")
    assert entry['protocol']
    note = published_protocol(str(PUBLISHED), setting)
    assert entry['protocol'] in note and setting in note


def test_load_published_reads_rows_only(tmp_path):
    rows = load_published(str(PUBLISHED), 'aio3')
    assert rows['AirNet + TUR']['sots_outdoor'] == {'psnr': 30.41, 'ssim': 0.976}
    assert 'printed_average' not in rows


def test_an_unknown_key_of_a_setting_is_refused_naming_it(tmp_path):
    path = tmp_path / 'published.yml'
    path.write_text('tiny:\n  rows:\n    Paper: {sr: [30.0]}\n  protocl: typo\n', encoding='utf-8')
    with pytest.raises(UserError) as err:
        load_published(str(path), 'tiny')
    assert_names(err, path, "'tiny.protocl'")


def test_tables_say_where_the_paper_prints_another_average(tmp_path):
    from basicsr_tur.utils.tables import build_table, printed_average_notes
    rows = load_published(str(PUBLISHED), 'allweather')
    names, table = build_table({}, rows)
    notes = printed_average_notes(str(PUBLISHED), 'allweather', table)
    flagged = {note.split(' (published)')[0].lstrip('- ') for note in notes}
    # All-in-One's printed 27.12/0.8933 is not its cells' mean; DDMSNet has one column only, the paper no average
    assert flagged == {'All-in-One'} and '27.12/0.8933' in notes[0]
    for setting in ('mio7', 'aio5'):
        names, table = build_table({}, load_published(str(PUBLISHED), setting))
        flagged = {n.split(' (published)')[0].lstrip('- ') for n in
                   printed_average_notes(str(PUBLISHED), setting, table)}
        assert flagged == {label for s, label in INCONSISTENT_AVERAGES if s == setting}
