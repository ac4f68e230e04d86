"""A seeded comparison of task-weighting methods: every method trained and tested once per seed, then compared.

    python scripts/study.py --config options/study/demo.yml [--seeds 0 1 2] [--dry-run] [--root DIR]

The config (e.g. options/study/demo.yml) names one training options file (`options`), its test options file
(`test_options`), the methods (`methods: {name: {pixel_opt: {...}, network_g: {...}, train: {...}}}`, network_g
and train optional: keys set over the options' network_g and train, e.g. `train: {mixed_precision: null}`; train
may not set pixel_opt or total_iter), the seeds, the `baseline` method and optionally `total_iter` (every cell
trains that many iterations) and `seconds_per_iter` (for --dry-run's estimate before any cell has run).

Each cell (method x seed) is one training run `<study>_<method>_s<seed>` with manual_seed = the seed (the seed fixes
the sampler's order and the degradations, so that every method sees the same data in the same order), tested with
the test options on its final weights. Runs go to experiments/, tb_logger/ and results/ under the root (--root, by
default the working folder), as train.py and test.py write them. A cell whose results match its configuration is
never rerun; an unfinished one resumes (--auto_resume). Then study/<name>/ gets results.md, .csv and .json (per task
and on average, mean ± std over seeds of PSNR and SSIM, and each method's difference to the baseline paired by seed
with a 95 % t interval), psnr_bars.png and curves.png (per task, the training L1 and the weight or σ of each method,
averaged over seeds, from the tensorboard logs).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Callable
from os import path as osp
from pathlib import Path

from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.files import atomic_write
from basicsr_tur.utils.option_checks import check_options
from basicsr_tur.utils.option_file import apply_force_yml, load_yaml
from basicsr_tur.utils.tables import INPUT_ROW, METRICS, average, csv_table, markdown_table

CONFIG_KEYS = ('name', 'options', 'test_options', 'methods', 'seeds', 'baseline', 'total_iter', 'seconds_per_iter')
METHOD_KEYS = ('pixel_opt', 'network_g', 'train')
# train keys a method may not set: its pixel_opt says the loss, the config's total_iter the iterations
TRAIN_KEYS_ELSEWHERE = {'pixel_opt': "the method's pixel_opt", 'total_iter': "the config's total_iter"}
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


# ---------------------------------------------------------------------------------------------------------------
# Configuration


def load_config(path: str, seeds: list[int] | None = None) -> dict:
    """Read and check a study config; returns it with `seeds` replaced by --seeds when given.

    Raises ValueError (one line, naming the file and the key) for a missing or unknown key, a wrong value, a method
    without pixel_opt.type, a baseline that is not a method, or an options file that does not exist.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'--config {path}: file not found')
    config = load_yaml(path)
    if not isinstance(config, dict):
        raise UserError(f'{path}: expected a mapping of {", ".join(CONFIG_KEYS)}')
    for key in config:
        if key not in CONFIG_KEYS:
            raise UserError(f'{path}: unknown key {key!r} (known: {", ".join(CONFIG_KEYS)})')
    for key in ('name', 'options', 'test_options', 'methods', 'baseline'):
        if config.get(key) is None:
            raise UserError(f'{path}: key {key!r} is missing')
    if not isinstance(config['name'], str) or not _NAME.fullmatch(config['name']):
        raise UserError(f'{path}: name {config["name"]!r} must be letters, digits, _ . - (it names folders)')
    for key in ('options', 'test_options'):
        if not osp.isfile(str(config[key])):
            raise FileNotFoundError(f'{path}: {key}: file {config[key]} not found')
    methods = config['methods']
    if not isinstance(methods, dict) or not methods:
        raise UserError(f'{path}: methods must be a non-empty mapping of name -> {{pixel_opt: {{type: ...}}}}')
    for name, spec in methods.items():
        where = f'{path}: methods.{name}'
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError(f'{where}: a method name must be letters, digits, _ . - (it names runs)')
        if not isinstance(spec, dict):
            raise UserError(f'{where}: expected a mapping with pixel_opt (and optionally network_g, train)')
        for key in spec:
            if key not in METHOD_KEYS:
                raise UserError(f'{where}: unknown key {key!r} (known: {", ".join(METHOD_KEYS)})')
        pixel = spec.get('pixel_opt')
        if not isinstance(pixel, dict) or not isinstance(pixel.get('type'), str):
            raise UserError(f'{where}.pixel_opt: expected a mapping with a type, e.g. {{type: L1Loss}}')
        if not isinstance(spec.get('network_g', {}), dict):
            raise UserError(f'{where}.network_g: expected a mapping of network_g keys to set')
        if not isinstance(spec.get('train', {}), dict):
            raise UserError(f'{where}.train: expected a mapping of train keys to set, e.g. {{mixed_precision: null}}')
        for key in spec.get('train', {}):
            if key in TRAIN_KEYS_ELSEWHERE:
                raise UserError(f'{where}.train.{key}: set by {TRAIN_KEYS_ELSEWHERE[key]}, not here')
    if config['baseline'] not in methods:
        raise UserError(f'{path}: baseline {config["baseline"]!r} is not one of the methods ({", ".join(methods)})')
    config['seeds'] = list(seeds) if seeds is not None else config.get('seeds', [0])
    if not isinstance(config['seeds'], list) or not config['seeds'] or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in config['seeds']) or \
            len(set(config['seeds'])) != len(config['seeds']):
        raise UserError(f'{path}: seeds must be a non-empty list of distinct integers >= 0, got {config["seeds"]!r}')
    for key in ('total_iter', 'seconds_per_iter'):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or
                                  (key == 'total_iter' and not isinstance(value, int))):
            raise UserError(f'{path}: {key} must be a positive {"integer" if key == "total_iter" else "number"}, '
                             f'got {value!r}')
    config['path'] = path
    return config


def cell_name(config: dict, method: str, seed: int) -> str:
    """The run name of one cell: <study>_<method>_s<seed>."""
    return f"{config['name']}_{method}_s{seed}"


def cells(config: dict) -> list[tuple[str, int]]:
    """(method, seed) of every cell, seed-major: a study stopped part-way holds every method for its first seeds."""
    return [(method, seed) for seed in config['seeds'] for method in config['methods']]


def total_iter(config: dict) -> int:
    """The iterations every cell trains: the config's total_iter, else the training options'."""
    return int(config.get('total_iter') or load_yaml(config['options'])['train']['total_iter'])


def _yaml_value(value) -> str:
    """A --force_yml value: JSON is YAML, and quotes every string, so that nothing is read as another type."""
    return json.dumps(value)


def train_overrides(config: dict, method: str, seed: int) -> list[str]:
    """The --force_yml entries of one cell's training: its name, seed, pixel loss, network_g and train keys and
    iterations.

    Raises ValueError naming the config's total_iter when the options' scheduler has several periods that do not
    add up to it (a single period is set to total_iter).
    """
    spec = config['methods'][method]
    entries = [f'name={_yaml_value(cell_name(config, method, seed))}', f'manual_seed={seed}',
               f"train:pixel_opt={_yaml_value(spec['pixel_opt'])}"]
    entries += [f'{part}:{key}={_yaml_value(value)}' for part in ('network_g', 'train')
                for key, value in (spec.get(part) or {}).items()]
    opt = load_yaml(config['options'])
    if 'seed' in (opt.get('datasets') or {}).get('train', {}):  # a fixed data seed would ignore the cell's seed
        entries.append(f'datasets:train:seed={seed}')
    if config.get('total_iter'):
        n = config['total_iter']
        entries.append(f'train:total_iter={n}')
        periods = (opt['train'].get('scheduler') or {}).get('periods')
        if periods is not None and sum(periods) != n:
            if len(periods) != 1:
                raise UserError(f"{config['path']}: total_iter {n}: the scheduler of {config['options']} has periods "
                                 f'{list(periods)}; set total_iter there, or use one period')
            entries.append(f'train:scheduler:periods=[{n}]')
    return entries


def check_cells(config: dict) -> None:
    """Check every cell's training options (the options file with the cell's overrides) as train.py would, so that
    a bad method fails before the first cell runs; raises ValueError naming the method and what is wrong."""
    for method in config['methods']:
        opt = load_yaml(config['options'])
        for entry in train_overrides(config, method, config['seeds'][0]):
            apply_force_yml(opt, entry)
        try:
            check_options(opt, config['options'], [], True)
        except UserError as err:
            from basicsr_tur.utils.cli import error_message
            raise UserError(f"{config['path']}: methods.{method}: {error_message(err)}") from None


def fingerprint(config: dict, method: str, seed: int) -> dict:
    """What a cell's results depend on: the options files' contents, the method, the seed and the iterations."""
    return {'options': Path(config['options']).read_text(), 'test_options': Path(config['test_options']).read_text(),
            'method': config['methods'][method], 'seed': seed, 'total_iter': config.get('total_iter')}


# ---------------------------------------------------------------------------------------------------------------
# Running the cells


def cell_paths(root: str, config: dict, method: str, seed: int) -> dict[str, str]:
    """The files of one cell under the root: its record (study/), weights, metrics and tensorboard folder."""
    name = cell_name(config, method, seed)
    return {'record': osp.join(root, 'study', config['name'], 'cells', f'{name}.json'),
            'weights': osp.join(root, 'experiments', name, 'models', 'net_g_latest.pth'),
            'metrics': osp.join(root, 'results', name, 'metrics.json'),
            'tb': osp.join(root, 'tb_logger', name)}


def _read_json(path: str) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable (a cell then counts as not finished)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cell_state(root: str, config: dict, method: str, seed: int) -> str:
    """'done' (results match the config), 'partial' (started with this config: resume) or 'new' (start afresh)."""
    paths = cell_paths(root, config, method, seed)
    record = _read_json(paths['record'])
    if record is None or record.get('fingerprint') != fingerprint(config, method, seed):
        return 'new'
    return 'done' if record.get('done') and osp.isfile(paths['metrics']) else 'partial'


def _fresh_basicsr_logger() -> None:
    """Make basicsr's logger start afresh at the next get_root_logger call: it is set up once per process, so that
    without this only the first run of the study would get its own log file (train_<name>_<time>.log)."""
    import logging

    from basicsr.utils import logger as basicsr_logger

    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    basicsr_logger.initialized_logger.pop('basicsr', None)


def run_cell(root: str, config: dict, method: str, seed: int, resume: bool) -> float:
    """Train (or resume) and test one cell in this process; returns the training's wall seconds."""
    from basicsr_tur.test import run_test
    from basicsr_tur.train import train_pipeline

    paths = cell_paths(root, config, method, seed)
    argv = ['-opt', config['options'], '--root', root, '--force_yml', *train_overrides(config, method, seed)]
    start = time.time()
    _fresh_basicsr_logger()
    train_pipeline(root, argv + (['--auto_resume'] if resume else []))
    seconds = time.time() - start
    _fresh_basicsr_logger()
    run_test(root, ['-opt', config['test_options'], '--root', root, '--force_yml',
                         f'name={_yaml_value(cell_name(config, method, seed))}',
                         f"path:pretrain_network_g={_yaml_value(paths['weights'])}"])
    return seconds


def run_grid(root: str, config: dict, runner: Callable[[str, dict, str, int, bool], float] = run_cell) -> dict:
    """Run every cell not yet done (a tqdm bar over cells); returns {cell name: state before this call}."""
    from tqdm import tqdm

    before = {}
    todo = cells(config)
    with tqdm(total=len(todo), unit='cell', desc=config['name']) as bar:
        for method, seed in todo:
            state = before[cell_name(config, method, seed)] = cell_state(root, config, method, seed)
            bar.set_postfix_str(f'{method} seed {seed}')
            if state != 'done':
                paths = cell_paths(root, config, method, seed)
                record = {'fingerprint': fingerprint(config, method, seed), 'done': False}
                atomic_write(paths['record'], json.dumps(record, indent=1))
                seconds = runner(root, config, method, seed, state == 'partial')
                record.update(done=True, train_seconds=seconds, iterations=total_iter(config))
                atomic_write(paths['record'], json.dumps(record, indent=1))
            bar.update(1)
    return before


def seconds_per_iter(root: str, config: dict) -> tuple[float | None, str]:
    """(seconds per iteration, where it comes from): measured on this study's finished cells, else the config's."""
    rates = []
    for method, seed in cells(config):
        record = _read_json(cell_paths(root, config, method, seed)['record'])
        if record and record.get('done') and record.get('train_seconds') and record.get('iterations'):
            rates.append(record['train_seconds'] / record['iterations'])
    if rates:
        return sum(rates) / len(rates), f'measured on {len(rates)} finished cell(s) of this study'
    if config.get('seconds_per_iter'):
        return float(config['seconds_per_iter']), f"configured (seconds_per_iter in {config['path']})"
    return None, f"unknown: no cell has finished yet; set seconds_per_iter in {config['path']} for an estimate"


def dry_run(root: str, config: dict) -> str:
    """The grid (each cell's run name and state) and the estimated training time of the cells left to run."""
    iters = total_iter(config)
    lines = [f"Study {config['name']}: {len(config['methods'])} methods x {len(config['seeds'])} seeds, "
             f"{iters} iterations each ({config['options']}; test: {config['test_options']})"]
    left = 0
    for method, seed in cells(config):
        state = cell_state(root, config, method, seed)
        left += state != 'done'
        spec = config['methods'][method]
        extra = ''.join(f', {part} {json.dumps(spec[part])}' for part in ('network_g', 'train') if spec.get(part))
        lines.append(f"  {cell_name(config, method, seed):40s} {state:8s} pixel_opt {json.dumps(spec['pixel_opt'])}"
                     f'{extra}')
    rate, source = seconds_per_iter(root, config)
    if rate is None:
        lines.append(f'{left} cells to run; estimated time {source}')
    else:
        lines.append(f'{left} cells to run: about {left * iters * rate / 60:.1f} min of training at {rate:.3g} s/it '
                     f'({source}; testing not counted)')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1) of values; the std is None for a single value."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def paired_difference(values: list[float], baseline: list[float], level: float = 0.95) -> dict:
    """Mean of values - baseline (paired by position, i.e. by seed) with its `level` t interval (Student's t with
    n - 1 degrees of freedom); low/high are None with fewer than two pairs."""
    from scipy.stats import t as student_t

    diffs = [v - b for v, b in zip(values, baseline)]
    mean, std = mean_std(diffs)
    if std is None:
        return {'mean': mean, 'low': None, 'high': None, 'n': len(diffs)}
    half = student_t.ppf(0.5 + level / 2, len(diffs) - 1) * std / math.sqrt(len(diffs))
    return {'mean': mean, 'low': mean - half, 'high': mean + half, 'n': len(diffs)}


def cell_columns(metrics: dict, source: str = 'model') -> dict[str, dict[str, float]]:
    """{column: {metric: value}} of one metrics.json: one column per task (`<test set>/<task>` when there are
    several test sets) and 'Average', the mean over the columns; source 'input' for the degraded inputs."""
    results = metrics['results']
    columns = {}
    for dataset, result in results.items():
        for task, values in result[source]['tasks'].items():
            columns[task if len(results) == 1 else f'{dataset}/{task}'] = {m: values[m] for m in METRICS
                                                                            if m in values}
    columns['Average'] = average(columns, list(columns))
    return columns


def input_columns(root: str, config: dict) -> dict[str, dict[str, float]] | None:
    """The degraded inputs' columns (cell_columns) as the baseline's first cell scored them, or None when its
    metrics.json holds none (test options with `val.input_row: false`); every cell scores the same test set."""
    data = _read_json(cell_paths(root, config, config['baseline'], config['seeds'][0])['metrics'])
    if data is None or not all('input' in r for r in data['results'].values()):
        return None
    return cell_columns(data, 'input')


def summarize(root: str, config: dict) -> dict:
    """Per method, column and metric: the values by seed, mean, std and the paired difference to the baseline."""
    values = {}
    for method, seed in cells(config):
        path = cell_paths(root, config, method, seed)['metrics']
        data = _read_json(path)
        if data is None:
            raise FileNotFoundError(f'{path}: results of cell {cell_name(config, method, seed)} not found or not JSON')
        for column, metrics in cell_columns(data).items():
            for metric, value in metrics.items():
                values.setdefault(method, {}).setdefault(column, {}).setdefault(metric, []).append(value)
    base = values[config['baseline']]
    summary = {}
    for method, by_column in values.items():
        for column, by_metric in by_column.items():
            for metric, vals in by_metric.items():
                mean, std = mean_std(vals)
                entry = {'values': vals, 'mean': mean, 'std': std}
                if method != config['baseline']:
                    entry['diff'] = paired_difference(vals, base[column][metric])
                summary.setdefault(method, {}).setdefault(column, {})[metric] = entry
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Tables and figures


def _columns(summary: dict) -> list[str]:
    first = next(iter(summary.values()))
    return list(first)


def _mean_std_text(entry: dict, digits: int) -> str:
    std = 'n/a' if entry['std'] is None else f"{entry['std']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {std}"


def _diff_text(diff: dict, digits: int) -> str:
    if diff['low'] is None:
        return f"{diff['mean']:+.{digits}f} [n/a]"
    return f"{diff['mean']:+.{digits}f} [{diff['low']:+.{digits}f}, {diff['high']:+.{digits}f}]"


def results_markdown(config: dict, summary: dict, inputs: dict | None = None) -> str:
    """results.md: for PSNR and SSIM, a table of mean ± std over seeds (after the degraded inputs' row when `inputs`,
    input_columns' dict, is given), then the differences to the baseline."""
    columns = _columns(summary)
    seeds = ', '.join(str(s) for s in config['seeds'])
    text = [f"# Study {config['name']}\n",
            f"Training options {config['options']} ({total_iter(config)} iterations), test options "
            f"{config['test_options']}; seeds {seeds}. Mean ± sample std over seeds; Δ: the method minus "
            f"{config['baseline']}, paired by seed, with its 95 % t interval (n/a with one seed).\n"]
    for metric, digits in (('psnr', 2), ('ssim', 4)):
        if not all(metric in summary[m][c] for m in summary for c in columns):
            continue
        rows = [[INPUT_ROW] + [f'{inputs[c][metric]:.{digits}f}' for c in columns]] \
            if inputs and all(metric in inputs.get(c, {}) for c in columns) else []
        rows += [[m] + [_mean_std_text(summary[m][c][metric], digits) for c in columns] for m in summary]
        rows += [[f"Δ {m} − {config['baseline']}"] + [_diff_text(summary[m][c][metric]['diff'], digits)
                                                       for c in columns]
                 for m in summary if m != config['baseline']]
        text.append(f'## {metric.upper()}\n\n' + markdown_table(['Method'] + columns, rows))
    return '\n'.join(text)


def results_csv(summary: dict) -> str:
    """results.csv: one row per method, column and metric with the mean, std, n and the difference to the baseline."""
    rows = []
    for method, by_column in summary.items():
        for column, by_metric in by_column.items():
            for metric, e in by_metric.items():
                diff = e.get('diff') or {}
                rows.append([method, column, metric, e['mean'], e['std'], len(e['values']), diff.get('mean', ''),
                             diff.get('low'), diff.get('high')])
    return csv_table(['method', 'column', 'metric', 'mean', 'std', 'n', 'diff_mean', 'diff_low', 'diff_high'], rows)


def psnr_bars(summary: dict, path: str) -> None:
    """psnr_bars.png: per column (task, Average), one bar per method, mean PSNR over seeds with ± std error bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    columns, methods = _columns(summary), list(summary)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(columns) * max(1, len(methods) / 3)), 4))
    x = np.arange(len(columns))
    for i, method in enumerate(methods):
        means = [summary[method][c]['psnr']['mean'] for c in columns]
        stds = [summary[method][c]['psnr']['std'] or 0.0 for c in columns]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=method)
    ax.set_xticks(x, columns)
    ax.set_ylabel('PSNR (dB), mean ± std over seeds')
    low = min(summary[m][c]['psnr']['mean'] for m in methods for c in columns)
    ax.set_ylim(bottom=max(0.0, low - 3))
    ax.legend(fontsize='small', ncol=min(len(methods), 4))
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=120))
    finally:
        plt.close(fig)


def read_curves(tb_dir: str) -> dict[str, tuple[list[int], list[float]]]:
    """{tag: (steps, values)} of the per-task training scalars (l1/, weight/, sigma/ <task>) of one run's logs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(tb_dir, size_guidance={'scalars': 0})
    acc.Reload()
    curves = {}
    for tag in acc.Tags().get('scalars', []):
        name = tag.removeprefix('train/')
        if name.split('/')[0] in ('l1', 'weight', 'sigma') and name.count('/') == 1:
            events = acc.Scalars(tag)
            curves[name] = ([e.step for e in events], [e.value for e in events])
    return curves


def mean_curves(root: str, config: dict) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """{method: {tag: (steps, mean over seeds)}}, over the steps that every seed of the method logged."""
    out = {}
    for method in config['methods']:
        runs = [read_curves(cell_paths(root, config, method, seed)['tb']) for seed in config['seeds']]
        for tag in set.intersection(*(set(r) for r in runs)):
            steps = sorted(set.intersection(*(set(r[tag][0]) for r in runs)))
            by_step = [dict(zip(*r[tag])) for r in runs]
            out.setdefault(method, {})[tag] = (steps, [sum(s[k] for s in by_step) / len(by_step) for k in steps])
    return out


def curves_figure(curves: dict, tasks: list[str], path: str) -> None:
    """curves.png: one column per task; top row the training L1 of each method, bottom row its weight (weighting
    losses) or σ (TUR), each averaged over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(tasks), figsize=(3 * len(tasks), 5.5), squeeze=False)
    for j, task in enumerate(tasks):
        for method, tags in curves.items():
            if f'l1/{task}' in tags:
                axes[0, j].plot(*tags[f'l1/{task}'], marker='.', label=method)
            for kind, style in (('weight', '-'), ('sigma', '--')):
                if f'{kind}/{task}' in tags:
                    axes[1, j].plot(*tags[f'{kind}/{task}'], style, marker='.', label=f'{method} ({kind})')
        axes[0, j].set_title(task)
        axes[1, j].set_xlabel('iteration')
    axes[0, 0].set_ylabel('training L1')
    axes[1, 0].set_ylabel('weight (—) or σ (--)')
    for row in range(2):
        handles, labels = axes[row, 0].get_legend_handles_labels()
        if handles:
            axes[row, 0].legend(fontsize='x-small')
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=110))
    finally:
        plt.close(fig)


def write_outputs(root: str, config: dict) -> str:
    """Write study/<name>/results.md|csv|json, psnr_bars.png and curves.png; returns the folder."""
    out = osp.join(root, 'study', config['name'])
    summary = summarize(root, config)
    inputs = input_columns(root, config)
    atomic_write(osp.join(out, 'results.md'), results_markdown(config, summary, inputs))
    atomic_write(osp.join(out, 'results.csv'), results_csv(summary))
    atomic_write(osp.join(out, 'results.json'),
                 json.dumps({'name': config['name'], 'options': config['options'],
                             'test_options': config['test_options'], 'total_iter': total_iter(config),
                             'seeds': config['seeds'], 'baseline': config['baseline'], 'methods': config['methods'],
                             'input': inputs, 'summary': summary}, indent=1))
    psnr_bars(summary, osp.join(out, 'psnr_bars.png'))
    tasks = [c for c in _columns(summary) if c != 'Average']
    curves_figure(mean_curves(root, config), [t.split('/')[-1] for t in tasks], osp.join(out, 'curves.png'))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run (or with --dry-run, describe) the study; errors print one line and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', required=True, help='study config YAML (e.g. options/study/demo.yml)')
    parser.add_argument('--seeds', type=int, nargs='+', default=None, help="seeds to run (default: the config's)")
    parser.add_argument('--dry-run', action='store_true', help='print the grid and its estimated time, run nothing')
    parser.add_argument('--root', default='.', help='folder of experiments/, tb_logger/, results/ and study/')
    args = parser.parse_args(argv)
    try:
        root = osp.abspath(args.root)
        if not osp.isdir(root):
            raise FileNotFoundError(f'--root {args.root}: folder not found')
        config = load_config(args.config, args.seeds)
        check_cells(config)
        if args.dry_run:
            print(dry_run(root, config))
            return 0
        run_grid(root, config)
        out = write_outputs(root, config)
    except (UserError, OSError) as err:  # anything else is a bug: its traceback is shown
        from basicsr_tur.utils.cli import error_message
        print(f'error: {error_message(err)}', file=sys.stderr)
        return 1
    print(open(osp.join(out, 'results.md')).read())
    print(f'Written to {out}/ (results.md, .csv, .json, psnr_bars.png, curves.png)')
    return 0
