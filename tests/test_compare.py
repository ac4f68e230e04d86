"""scripts/compare.py: result files side by side with published rows and differences."""
import importlib.util
import json
from os import path as osp

import pytest
from conftest import assert_error_line

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('compare', osp.join(REPO, 'scripts', 'compare.py'))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


AIO3 = ('aio3:\n  rows:\n'
        '    AirNet: {rain100l: [34.90, 0.968], sots: [27.94, 0.962]}\n'
        '    AirNet + TUR: {rain100l: [38.70, 0.984], sots: [33.49, 0.976]}\n'
        '    PromptIR: {rain100l: [36.37, 0.972], sots: [30.58, 0.974]}\n'
        '    PromptIR + TUR: {rain100l: [38.57, 0.984], sots: [31.17, 0.978]}\n')


def write_result(tmp_path, name, psnr, row=None, setting='aio3', file='options/published.yml', input_psnr=None,
                 metrics=None):
    """A metrics.json as test.py writes it: two single-task test sets, compared with published row `row`, with the
    degraded inputs' PSNR when input_psnr is given and the metric settings `metrics` in its protocol (none: a file
    written before protocols were recorded)."""
    results = {s: {'counts': {t: 1}, 'model': {'tasks': {t: {'psnr': p, 'ssim': 0.9}}, 'average': {}}}
               for (s, t), p in zip([('rain100l', 'derain'), ('sots', 'dehaze')], psnr)}
    for (s, t), p in zip([('rain100l', 'derain'), ('sots', 'dehaze')], input_psnr or []):
        results[s]['input'] = {'tasks': {t: {'psnr': p, 'ssim': 0.5}}, 'average': {}}
    published_as = {'file': file, 'setting': setting, 'row': row} if row else None
    path = tmp_path / f'{name}.json'
    data = {'name': name, 'results': results, 'published_as': published_as}
    if metrics is not None:
        data['protocol'] = {'metrics': metrics, 'images': '8-bit', 'test_sets': {}, 'weights': {}}
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def aio3(tmp_path):
    """A published-figures file whose setting has four rows, as aio3's."""
    path = tmp_path / 'published.yml'
    path.write_text(AIO3)
    return str(path)


def test_rows_columns_average_and_difference_to_published(tmp_path, capsys):
    a = write_result(tmp_path, 'L1', [30.0, 28.0])
    b = write_result(tmp_path, 'TUR', [31.0, 29.0], row='PromptIR')
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


def test_each_result_is_compared_with_its_own_published_row(tmp_path, aio3):
    l1 = write_result(tmp_path, 'PromptIR_L1', [36.0, 30.05], row='PromptIR')
    tur = write_result(tmp_path, 'PromptIR_TUR', [38.0, 31.0], row='PromptIR + TUR')
    out = str(tmp_path / 'cmp')
    assert compare.main([l1, tur, '--published', aio3, '--setting', 'aio3', '--out', out]) == 0
    table = open(out + '.md').read()
    assert '| Δ PromptIR_L1 − PromptIR (published) | -0.37/-0.0720 | -0.53/-0.0740 | -0.45/-0.0730 |' in table
    assert '| Δ PromptIR_TUR − PromptIR + TUR (published) | -0.57/-0.0840 | -0.17/-0.0780 | -0.37/-0.0810 |' in table
    assert json.load(open(out + '.json'))['published_as'] == {'PromptIR_L1': 'PromptIR',
                                                             'PromptIR_TUR': 'PromptIR + TUR'}
    assert 'Δ PromptIR_TUR − PromptIR + TUR (published),sots,psnr,-0.170000' in open(out + '.csv').read()


def test_result_without_published_row_gets_no_difference_row(tmp_path, aio3, capsys):
    plain = write_result(tmp_path, 'plain', [36.0, 30.0])
    assert compare.main([plain, '--published', aio3, '--setting', 'aio3']) == 0
    table = capsys.readouterr().out
    assert '| PromptIR + TUR (published) |' in table and '| plain |' in table
    assert 'Δ' not in table


def test_published_as_option_overrides_the_result_files_row(tmp_path, aio3, capsys):
    l1 = write_result(tmp_path, 'L1', [36.0, 30.0], row='PromptIR')
    tur = write_result(tmp_path, 'TUR', [38.0, 31.0], row='PromptIR + TUR')
    assert compare.main([l1, tur, '--published', aio3, '--setting', 'aio3',
                         '--published-as', 'TUR=AirNet + TUR', '--published-as', 'L1=']) == 0
    table = capsys.readouterr().out
    assert '| Δ TUR − AirNet + TUR (published) | -0.70/-0.0840 | -2.49/-0.0760 | -1.59/-0.0800 |' in table
    assert 'Δ L1' not in table


def test_unknown_published_row_is_named_with_the_rows_of_the_setting(tmp_path, aio3, capsys):
    tur = write_result(tmp_path, 'TUR', [38.0, 31.0], row='PromptIR+TUR')
    assert compare.main([tur, '--published', aio3, '--setting', 'aio3']) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tur}: published_as: no published row 'PromptIR+TUR' in setting 'aio3' of {aio3}; "
                   "did you mean 'PromptIR + TUR'? (rows: 'AirNet', 'AirNet + TUR', 'PromptIR', 'PromptIR + TUR')")


def test_published_row_of_another_setting_is_refused(tmp_path, aio3, capsys):
    tur = write_result(tmp_path, 'TUR', [38.0, 31.0], row='AirNet + TUR', setting='aio5')
    assert compare.main([tur, '--published', aio3, '--setting', 'aio3']) == 1
    assert "row 'AirNet + TUR' of setting 'aio5', not of 'aio3'" in capsys.readouterr().err


def test_published_as_option_for_an_unknown_run_is_named(tmp_path, aio3, capsys):
    tur = write_result(tmp_path, 'TUR', [38.0, 31.0])
    assert compare.main([tur, '--published', aio3, '--setting', 'aio3', '--published-as', 'L1=PromptIR']) == 1
    assert "no result file is named 'L1' (names: TUR)" in capsys.readouterr().err


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


def test_published_rows_default_to_the_file_and_setting_the_results_name(tmp_path, aio3):
    l1 = write_result(tmp_path, 'PromptIR_L1', [36.0, 30.05], row='PromptIR', file=aio3)
    tur = write_result(tmp_path, 'PromptIR_TUR', [38.0, 31.0], row='PromptIR + TUR', file=aio3)
    out = str(tmp_path / 'cmp')
    assert compare.main([l1, tur, '--out', out]) == 0
    table = open(out + '.md').read()
    assert '| AirNet (published) |' in table
    assert '| Δ PromptIR_TUR − PromptIR + TUR (published) |' in table
    # A result without published_as: no common published rows, so none are shown.
    plain = write_result(tmp_path, 'other', [30.0, 28.0])
    assert compare.main([l1, plain, '--out', out]) == 0
    assert '(published)' not in open(out + '.md').read()


def test_published_as_option_alone_uses_the_results_published_file(tmp_path, aio3):
    l1 = write_result(tmp_path, 'PromptIR_L1', [36.0, 30.05], row='PromptIR', file=aio3)
    out = str(tmp_path / 'cmp')
    assert compare.main([l1, '--published-as', 'PromptIR_L1=PromptIR + TUR', '--out', out]) == 0
    assert '| Δ PromptIR_L1 − PromptIR + TUR (published) |' in open(out + '.md').read()


def test_missing_published_file_is_named_as_such(tmp_path, capsys):
    l1 = write_result(tmp_path, 'L1', [36.0, 30.05], row='PromptIR', file=str(tmp_path / 'gone.yml'))
    assert compare.main([l1]) == 1
    assert_error_line(capsys.readouterr().err, tmp_path / 'gone.yml')


def test_input_row_comes_first_when_every_file_scored_the_same_inputs(tmp_path, capsys):
    l1 = write_result(tmp_path, 'L1', [30.0, 28.0], input_psnr=[20.0, 10.0])
    tur = write_result(tmp_path, 'TUR', [31.0, 29.0], input_psnr=[20.0, 10.0])
    assert compare.main([l1, tur]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == '| Input (degraded) | 20.00/0.5000 | 10.00/0.5000 | 15.00/0.5000 |'
    assert lines[3].startswith('| L1 |') and lines[4].startswith('| TUR |')


@pytest.mark.parametrize('other_input', [None, [20.0, 11.0]], ids=['one file without inputs', 'other inputs'])
def test_no_input_row_when_the_files_inputs_are_missing_or_differ(tmp_path, capsys, other_input):
    l1 = write_result(tmp_path, 'L1', [30.0, 28.0], input_psnr=[20.0, 10.0])
    tur = write_result(tmp_path, 'TUR', [31.0, 29.0], input_psnr=other_input)
    assert compare.main([l1, tur]) == 0
    assert '| Input (degraded) |' not in capsys.readouterr().out  # no row (a note says why when inputs differ)


RGB = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}
Y = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True}}
FLOAT = {'psnr': {'type': 'calculate_psnr_skimage', 'crop_border': 0}}  # AirNet/PromptIR's PSNR


def test_runs_measured_with_other_metric_settings_are_refused_naming_both(tmp_path, capsys):
    rgb = write_result(tmp_path, 'rgb', [30.0, 28.0], metrics=RGB, input_psnr=[20.0, 18.0])
    y = write_result(tmp_path, 'y', [32.0, 30.0], metrics=Y, input_psnr=[22.0, 20.0])
    assert compare.main([rgb, y]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and rgb in err[0] and y in err[0] and 'test_y_channel' in err[0]


def test_runs_scored_on_float_and_on_8bit_images_are_refused_as_mixed(tmp_path, capsys):
    basicsr = write_result(tmp_path, 'basicsr', [30.0, 28.0], metrics=RGB)
    skimage = write_result(tmp_path, 'skimage', [30.1, 28.1], metrics=FLOAT)
    assert compare.main([basicsr, skimage]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and basicsr in err[0] and skimage in err[0]
    assert 'calculate_psnr_skimage' in err[0]
    assert compare.main([basicsr, skimage, '--mixed-protocols']) == 0
    assert '- skimage: psnr: calculate_psnr_skimage, crop_border 0' in capsys.readouterr().out


def test_mixed_protocols_are_printed_marked_and_the_missing_input_row_explained(tmp_path, capsys):
    rgb = write_result(tmp_path, 'rgb', [30.0, 28.0], metrics=RGB, input_psnr=[20.0, 18.0])
    y = write_result(tmp_path, 'y', [32.0, 30.0], metrics=Y, input_psnr=[22.0, 20.0])
    assert compare.main([rgb, y, '--mixed-protocols']) == 0
    out = capsys.readouterr().out
    lines = {line.split(':')[0]: line for line in out.splitlines() if line.startswith('- ')}
    assert 'test_y_channel false' in lines['- rgb'] and 'test_y_channel true' in lines['- y']
    assert "No 'Input (degraded)' row" in out


def test_runs_measured_alike_print_no_protocol_notes(tmp_path, capsys):
    # the same metric settings, padding, tiling, weights entry and test data: nothing to mark
    a = write_result(tmp_path, 'a', [30.0, 28.0], metrics=RGB)
    b = write_result(tmp_path, 'b', [31.0, 29.0], metrics=RGB)
    assert compare.main([a, b]) == 0
    out = capsys.readouterr().out
    assert 'Metric settings differ' not in out and 'Runs differ' not in out


def edit_protocol(path: str, **fields) -> None:
    """Set fields of a written metrics.json's protocol, as a run measured otherwise would record them."""
    data = json.load(open(path))
    data['protocol'].update(fields)
    open(path, 'w').write(json.dumps(data))


def test_difference_rows_print_the_published_protocol_beside_the_runs(tmp_path, capsys):
    published = tmp_path / 'published.yml'
    published.write_text(AIO3 + "  table: 'Table 2'\n  protocol: skimage SSIM on float outputs\n")
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}
    tur = write_result(tmp_path, 'TUR', [38.0, 31.0], row='PromptIR + TUR', metrics=metrics)
    assert compare.main([tur, '--published', str(published), '--setting', 'aio3']) == 0
    out = capsys.readouterr().out
    assert 'skimage SSIM on float outputs' in out and 'Table 2' in out
    assert '- TUR (Δ row): psnr: calculate_psnr, crop_border 0' in out


def test_no_difference_row_prints_no_protocol_note(tmp_path, capsys):
    published = tmp_path / 'published.yml'
    published.write_text(AIO3 + '  protocol: skimage SSIM on float outputs\n')
    plain = write_result(tmp_path, 'plain', [36.0, 30.0])
    assert compare.main([plain, '--published', str(published), '--setting', 'aio3']) == 0
    assert 'skimage' not in capsys.readouterr().out


@pytest.mark.parametrize('field, value_a, value_b, shown', [
    ('pad', None, {'multiple': 128, 'square': True, 'mode': 'reflect'}, '"multiple": 128'),
    ('weights', {'file': 'a.pth', 'key': 'params'}, {'file': 'b.pth', 'key': 'params_ema'}, '"params_ema"'),
    ('test_sets', {'sots': 'linked'}, {'sots': 'resized as WGWS-Net'}, 'sots: resized as WGWS-Net')])
def test_runs_differing_in_padding_weights_or_test_data_are_marked(tmp_path, capsys, field, value_a, value_b, shown):
    paths = []
    for name, value in (('a', value_a), ('b', value_b)):
        paths.append(write_result(tmp_path, name, [30.0, 28.0], metrics=RGB))
        edit_protocol(paths[-1], **{field: value})
    assert compare.main(paths) == 0
    out = capsys.readouterr().out
    assert 'Runs differ in' in out and shown in out and '- a: ' in out


def test_metric_settings_spelled_with_or_without_their_defaults_are_one_protocol(tmp_path, capsys):
    implicit = write_result(tmp_path, 'implicit', [30.0, 28.0], metrics={'psnr': {'type': 'calculate_psnr',
                                                                                  'crop_border': 0}})
    explicit = write_result(tmp_path, 'explicit', [31.0, 29.0], metrics=RGB)
    assert compare.main([implicit, explicit]) == 0
    assert 'Metric settings differ' not in capsys.readouterr().out


def test_a_run_recorded_before_padding_was_recorded_counts_as_unpadded(tmp_path, capsys):
    old = write_result(tmp_path, 'old', [30.0, 28.0], metrics=RGB)  # its protocol has no 'pad' key
    new = write_result(tmp_path, 'new', [31.0, 29.0], metrics=RGB)
    edit_protocol(new, pad={'multiple': 64, 'square': False, 'mode': 'reflect'},
                  tile={'size': 256, 'overlap': 32})
    assert compare.main([old, new]) == 0
    out = capsys.readouterr().out
    assert '- old: null' in out and '"multiple": 64' in out and '"size": 256' in out


@pytest.mark.parametrize('content', ['{bad', '{"results": {"demo_test": {"noise": {"psnr": 30}}}}', '[1, 2]'])
def test_a_file_that_is_not_a_metrics_json_is_one_line_naming_it(tmp_path, capsys, content):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    assert compare.main([str(path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and err[0].startswith('error: ') and str(path) in err[0]
