"""scripts/compare.py: result files side by side with published rows and differences."""
import importlib.util
import json
from os import path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('compare', osp.join(REPO, 'scripts', 'compare.py'))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def write_result(tmp_path, name, psnr):
    """A metrics.json as test.py writes it: two single-task test sets."""
    results = {s: {'counts': {t: 1}, 'model': {'tasks': {t: {'psnr': p, 'ssim': 0.9}}, 'average': {}}}
               for (s, t), p in zip([('rain100l', 'derain'), ('sots', 'dehaze')], psnr)}
    path = tmp_path / f'{name}.json'
    path.write_text(json.dumps({'name': name, 'results': results}))
    return str(path)


def test_rows_columns_average_and_difference_to_published(tmp_path, capsys):
    a = write_result(tmp_path, 'L1', [30.0, 28.0])
    b = write_result(tmp_path, 'TUR', [31.0, 29.0])
    published = tmp_path / 'published.yml'
    published.write_text('aio3:\n  rows:\n    PromptIR: {rain100l: [36.37, 0.972], sots: [30.59, 0.974]}\n')
    out = str(tmp_path / 'cmp')
    assert compare.main([a, b, '--published', str(published), '--setting', 'aio3', '--out', out]) == 0
    table = open(out + '.md').read()
    assert '| Method | rain100l | sots | Average |' in table
    assert '| TUR | 31.00/0.9000 | 29.00/0.9000 | 30.00/0.9000 |' in table
    assert '| PromptIR (published) | 36.37/0.9720 | 30.59/0.9740 | 33.48/0.9730 |' in table
    assert '| Δ TUR − PromptIR (published) | -5.37/-0.0720 | -1.59/-0.0740 | -3.48/-0.0730 |' in table
    assert json.load(open(out + '.json'))['columns'] == ['rain100l', 'sots', 'Average']


def test_missing_result_file_is_named(tmp_path, capsys):
    assert compare.main([str(tmp_path / 'nope.json')]) == 1
    assert 'nope.json' in capsys.readouterr().err


def test_unknown_setting_is_named(tmp_path, capsys):
    published = tmp_path / 'p.yml'
    published.write_text('aio3: {rows: {}}\n')
    assert compare.main([write_result(tmp_path, 'x', [1, 2]), '--published', str(published),
                         '--setting', 'aio5']) == 1
    assert "no setting 'aio5'" in capsys.readouterr().err


@pytest.mark.parametrize('bad', ['{}', '{"name": "x"}'])
def test_non_result_json_is_refused(tmp_path, bad, capsys):
    path = tmp_path / 'bad.json'
    path.write_text(bad)
    assert compare.main([str(path)]) == 1
