"""scripts/study.py: a seeded comparison of task-weighting methods (statistics, resumability, dry run, tiny grid)."""
import csv
import glob
import json
import math
from os import path as osp

import pytest
import yaml
from conftest import make_options, make_test_options

from basicsr_tur import study

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def write_config(tmp_path, train_opt: str, test_opt: str, **changes) -> str:
    """A study config of two methods (L1, TUR with its head) and two seeds over the given options files."""
    config = {'name': 'tiny', 'options': train_opt, 'test_options': test_opt,
              'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}},
                          'TUR': {'pixel_opt': {'type': 'TURLoss'}, 'network_g': {'uncertainty_head': True}}},
              'seeds': [0, 1], 'baseline': 'L1', **changes}
    path = tmp_path / 'study.yml'
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@pytest.fixture
def options(tmp_path, clean_root, paired_root):
    """(training options, test options) of the tiny setting, 3 iterations, tested on the cell's final weights."""
    train_opt = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', total_iter=3)
    test_opt = make_test_options(tmp_path, paired_root, weights='unused.pth')
    return train_opt, test_opt


def fake_metrics(root, name: str, psnr: dict[str, float], input_psnr: dict[str, float] | None = None) -> None:
    """A metrics.json as test.py writes it for one test set with the given per-task PSNR (and the inputs')."""
    result = {'model': {'tasks': {t: {'psnr': p, 'ssim': p / 100} for t, p in psnr.items()}}}
    if input_psnr:
        result['input'] = {'tasks': {t: {'psnr': p, 'ssim': p / 100} for t, p in input_psnr.items()}}
    path = osp.join(root, 'results', name, 'metrics.json')
    study.atomic_write(path, json.dumps({'name': name, 'results': {'set': result}}))


def test_mean_std_is_the_sample_standard_deviation():
    mean, std = study.mean_std([30.0, 31.0, 33.0])
    assert mean == pytest.approx(94 / 3)
    assert std == pytest.approx(math.sqrt(((30 - 94 / 3) ** 2 + (31 - 94 / 3) ** 2 + (33 - 94 / 3) ** 2) / 2))
    assert study.mean_std([30.0]) == (30.0, None)


def test_paired_difference_has_the_95_percent_t_interval():
    # differences 1, 2, 4: mean 7/3, sample std sqrt(7/3), t(0.975, 2 dof) = 4.302653
    diff = study.paired_difference([31.0, 32.0, 34.0], [30.0, 30.0, 30.0])
    half = 4.302653 * math.sqrt(7 / 3) / math.sqrt(3)
    assert diff['mean'] == pytest.approx(7 / 3)
    assert (diff['low'], diff['high']) == (pytest.approx(7 / 3 - half, abs=1e-5), pytest.approx(7 / 3 + half, abs=1e-5))


def test_paired_difference_of_one_seed_has_no_interval(tmp_path, options):
    diff = study.paired_difference([31.0], [30.0])
    assert diff == {'mean': 1.0, 'low': None, 'high': None, 'n': 1}
    config = study.load_config(write_config(tmp_path, *options), seeds=[0])
    for method in config['methods']:
        fake_metrics(str(tmp_path), study.cell_name(config, method, 0), {'noise': 30.0})
    text = study.results_markdown(config, study.summarize(str(tmp_path), config))
    assert '| L1 | 30.00 ± n/a | 30.00 ± n/a |' in text
    assert '| Δ TUR − L1 | +0.00 [n/a] | +0.00 [n/a] |' in text


def test_results_start_with_the_degraded_inputs_row_when_the_cells_scored_them(tmp_path, options):
    config = study.load_config(write_config(tmp_path, *options), seeds=[0])
    for method in config['methods']:
        fake_metrics(str(tmp_path), study.cell_name(config, method, 0), {'noise': 30.0, 'rain': 20.0},
                     input_psnr={'noise': 18.0, 'rain': 16.0})
    inputs = study.input_columns(str(tmp_path), config)
    assert inputs['Average'] == pytest.approx({'psnr': 17.0, 'ssim': 0.17})
    lines = study.results_markdown(config, study.summarize(str(tmp_path), config), inputs).splitlines()
    at = lines.index('| Input (degraded) | 18.00 | 16.00 | 17.00 |')
    assert lines[at + 1].startswith('| L1 | 30.00 ± n/a')


def test_summary_pairs_the_methods_by_seed(tmp_path, options):
    config = study.load_config(write_config(tmp_path, *options))
    # TUR - L1 per seed: noise +1, +3 and rain 0, 0: the pairing, not the spread of each method, sets the interval
    for seed, (l1, tur) in enumerate([((30.0, 20.0), (31.0, 20.0)), ((34.0, 24.0), (37.0, 24.0))]):
        fake_metrics(str(tmp_path), study.cell_name(config, 'L1', seed), dict(zip(('noise', 'rain'), l1)))
        fake_metrics(str(tmp_path), study.cell_name(config, 'TUR', seed), dict(zip(('noise', 'rain'), tur)))
    summary = study.summarize(str(tmp_path), config)
    noise = summary['TUR']['noise']['psnr']
    assert noise['values'] == [31.0, 37.0] and noise['mean'] == 34.0
    half = 12.706205 * math.sqrt(2) / math.sqrt(2)  # diffs 1, 3: std sqrt(2); t(0.975, 1 dof)
    assert noise['diff']['mean'] == 2.0
    assert noise['diff']['high'] == pytest.approx(2.0 + half, abs=1e-4)
    assert summary['TUR']['rain']['psnr']['diff'] == {'mean': 0.0, 'low': 0.0, 'high': 0.0, 'n': 2}
    assert summary['L1']['Average']['psnr']['values'] == [25.0, 29.0]
    rows = list(csv.DictReader(study.results_csv(summary).splitlines()))
    assert {'method': 'TUR', 'column': 'Average', 'metric': 'psnr', 'mean': '28.0', 'diff_mean': '1.0'}.items() \
        <= next(r for r in rows if r['method'] == 'TUR' and r['column'] == 'Average' and r['metric'] == 'psnr').items()


def test_finished_cell_is_not_rerun_and_unfinished_one_resumes(tmp_path, options):
    config = study.load_config(write_config(tmp_path, *options))
    calls, stop = [], [('TUR', 1)]

    def runner(root, config, method, seed, resume):
        calls.append((method, seed, resume))
        if (method, seed) in stop:
            raise KeyboardInterrupt  # the study is stopped during this cell
        fake_metrics(root, study.cell_name(config, method, seed), {'noise': 30.0})
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        study.run_grid(str(tmp_path), config, runner)
    assert calls == [('L1', 0, False), ('TUR', 0, False), ('L1', 1, False), ('TUR', 1, False)]  # seed-major
    calls.clear()
    stop.clear()
    study.run_grid(str(tmp_path), config, runner)
    assert calls == [('TUR', 1, True)]


def test_cell_is_rerun_from_scratch_when_its_method_changes(tmp_path, options):
    config = study.load_config(write_config(tmp_path, *options))
    for method, seed in study.cells(config):
        fake_metrics(str(tmp_path), study.cell_name(config, method, seed), {'noise': 30.0})
    study.run_grid(str(tmp_path), config, lambda *a: 1.0)
    config['methods']['TUR']['pixel_opt']['variant'] = 'cumulative'
    assert [study.cell_state(str(tmp_path), config, m, s) for m, s in study.cells(config)] == \
        ['done', 'new', 'done', 'new']


def test_dry_run_prints_the_grid_and_the_estimate_it_can_make(tmp_path, options, capsys):
    path = write_config(tmp_path, *options)
    assert study.main(['--config', path, '--dry-run', '--root', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'tiny_L1_s0' in out and 'tiny_TUR_s1' in out and '4 cells to run; estimated time unknown' in out
    path = write_config(tmp_path, *options, seconds_per_iter=2.0, total_iter=30)
    assert study.main(['--config', path, '--dry-run', '--root', str(tmp_path), '--seeds', '5']) == 0
    out = capsys.readouterr().out
    assert 'tiny_L1_s5' in out and 'tiny_L1_s0' not in out
    assert '2 cells to run: about 2.0 min of training at 2 s/it (configured' in out
    assert not osp.exists(osp.join(tmp_path, 'experiments'))


def test_method_train_keys_are_set_over_the_training_options(tmp_path, options):
    methods = {'fp32': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'mixed_precision': None}},
               'bf16': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'mixed_precision': 'bf16', 'ema_decay': 0.9}}}
    config = study.load_config(write_config(tmp_path, *options, methods=methods, baseline='fp32'))
    trained = {}
    for method in methods:
        opt = study.load_yaml(config['options'])
        for entry in study.train_overrides(config, method, 0):
            study.apply_force_yml(opt, entry)
        trained[method] = opt['train']
    base = study.load_yaml(config['options'])['train']
    assert trained['fp32']['mixed_precision'] is None and trained['bf16']['mixed_precision'] == 'bf16'
    assert trained['bf16']['ema_decay'] == 0.9 and trained['fp32'].get('ema_decay') == base.get('ema_decay')
    assert trained['bf16']['optim_g'] == base['optim_g']  # the keys a method does not name are the options'


def test_cell_is_rerun_from_scratch_when_its_train_keys_change(tmp_path, options):
    methods = {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'mixed_precision': 'bf16'}}}
    config = study.load_config(write_config(tmp_path, *options, methods=methods, baseline='L1'), seeds=[0])
    fake_metrics(str(tmp_path), study.cell_name(config, 'L1', 0), {'noise': 30.0})
    study.run_grid(str(tmp_path), config, lambda *a: 1.0)
    assert study.cell_state(str(tmp_path), config, 'L1', 0) == 'done'
    config['methods']['L1']['train']['mixed_precision'] = None
    assert study.cell_state(str(tmp_path), config, 'L1', 0) == 'new'


@pytest.mark.parametrize('change, message', [
    ({'method': {}}, "unknown key 'method'"),
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'netG': {}}}, 'baseline': 'L1'},
     "methods.L1: unknown key 'netG'"),
    ({'baseline': 'L2'}, "baseline 'L2' is not one of the methods"),
    ({'options': 'missing.yml'}, 'options: file missing.yml not found'),
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Los'}}}, 'baseline': 'L1'}, "methods.L1: "),  # checked upfront
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': 'bf16'}}, 'baseline': 'L1'},
     'methods.L1.train: '),
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'pixel_opt': {'type': 'L1Loss'}}}},
      'baseline': 'L1'}, 'methods.L1.train.pixel_opt: '),
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'total_iter': 5}}}, 'baseline': 'L1'},
     'methods.L1.train.total_iter: '),
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'mixed_precision': 'fp8'}}},
      'baseline': 'L1'}, 'mixed_precision'),  # checked upfront, as train.py checks it
    ({'methods': {'L1': {'pixel_opt': {'type': 'L1Loss'}, 'train': {'mixed_precison': 'bf16'}}},
      'baseline': 'L1'}, 'mixed_precison'),
])
def test_config_error_is_one_line_naming_the_key(tmp_path, options, capsys, change, message):
    path = write_config(tmp_path, *options, **change)
    assert study.main(['--config', path, '--dry-run', '--root', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and message in err and err.count('\n') == 1


def test_tiny_grid_writes_tables_and_figures(tmp_path, options, capsys):
    path = write_config(tmp_path, *options)
    assert study.main(['--config', path, '--root', str(tmp_path)]) == 0
    out = osp.join(tmp_path, 'study', 'tiny')
    table = open(osp.join(out, 'results.md')).read()
    assert '| Δ TUR − L1 |' in table and '## SSIM' in table
    summary = json.load(open(osp.join(out, 'results.json')))['summary']
    assert len(summary['TUR']['Average']['psnr']['values']) == 2
    assert summary['TUR']['Average']['psnr']['diff']['low'] is not None
    assert len(list(csv.reader(open(osp.join(out, 'results.csv'))))) > 1
    for png in ('psnr_bars.png', 'curves.png'):
        assert open(osp.join(out, png), 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    curves = study.mean_curves(str(tmp_path), study.load_config(path))
    assert any(tag.startswith('sigma/') for tag in curves['TUR']) and any(t.startswith('l1/') for t in curves['L1'])
    # the two seeds of a method saw different data
    results = {(m, s): json.load(open(osp.join(tmp_path, 'results', f'tiny_{m}_s{s}', 'metrics.json')))
               for m in ('L1', 'TUR') for s in (0, 1)}
    assert results[('L1', 0)] != results[('L1', 1)]
    for m, s in results:  # each run has its own log (basicsr's logger is set up once per process)
        assert glob.glob(osp.join(tmp_path, 'experiments', f'tiny_{m}_s{s}', f'train_tiny_{m}_s{s}_*.log'))
        assert glob.glob(osp.join(tmp_path, 'results', f'tiny_{m}_s{s}', f'test_tiny_{m}_s{s}_*.log'))


def test_shipped_demo_study_is_a_valid_grid_of_every_loss_space_method(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert study.main(['--config', 'options/study/demo.yml', '--dry-run', '--root', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for loss in ('L1Loss', 'TURLoss', 'KendallLoss', 'RLWLoss', 'DWALoss', 'FAMOLoss'):
        assert f'"type": "{loss}"' in out
    assert '"uncertainty_detach": true' in out and '"uncertainty_detach": false' in out  # both TUR heads
    assert '24 cells to run' in out and '"variant": "cumulative"' in out


def test_shipped_precision_study_compares_fp32_with_bf16_on_the_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert study.main(['--config', 'options/study/demo_precision.yml', '--dry-run', '--root', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '2 methods x 3 seeds, 600 iterations each (options/train/demo/Restormer_TUR.yml' in out
    assert 'train {"mixed_precision": null}' in out and 'train {"mixed_precision": "bf16"}' in out
    assert '6 cells to run' in out
    assert study.load_config('options/study/demo_precision.yml')['baseline'] == 'fp32'
