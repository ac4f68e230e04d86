"""Test pipeline: options -> test sets -> restored images -> per-task PSNR/SSIM tables (Markdown, JSON, CSV)."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
from os import path as osp

import cv2
import numpy as np
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils import get_env_info, get_root_logger, get_time_str
from basicsr.utils.options import dict2str

from basicsr_tur.data.loaders import build_loader
from basicsr_tur.metrics import IMAGE_KINDS, image_kind
from basicsr_tur.models.tur_model import PSNR_CAP
from basicsr_tur.utils.files import atomic_write, write_image
from basicsr_tur.utils.options import check_device, parse_options, set_backend_flags
from basicsr_tur.utils.registry import run_prepare_step
from basicsr_tur.utils.runs import fresh_run_dirs, output_dirs, run_lock
from basicsr_tur.utils.tables import (
    INPUT_ROW,
    build_table,
    columns_of,
    csv_table,
    full_metric_settings,
    load_published,
    markdown_table,
    printed_average_notes,
    published_protocol,
    to_markdown,
)


def _fmt(values: dict, metric: str, digits: int) -> str:
    value = values.get(metric)
    return '-' if value is None else f'{value:.{digits}f}'


def metrics_tables(name: str, dataset_name: str, results: dict) -> str:
    """Markdown table of one test set: one row per task (input vs model, with Δ) and an average row."""
    model, inp = results['model'], results.get('input')
    metrics = list(model['average'])
    psnr = next((m for m in metrics if 'psnr' in m.lower()), None)
    header = ['Task', 'Images'] + [f'Input {m.upper()}' for m in metrics if inp] + [f'{name} {m.upper()}'
                                                                                    for m in metrics]
    if inp and psnr:
        header.append(f'Δ{psnr.upper()}')
    rows = []
    tasks = list(model['tasks'])
    for task in tasks + ['Average']:
        values = model['tasks'][task] if task != 'Average' else model['average']
        in_values = (inp['tasks'][task] if task != 'Average' else inp['average']) if inp else {}
        n = str(results['counts'][task]) if task != 'Average' else str(sum(results['counts'].values()))
        row = [task if task != 'Average' else '**Average**', n]
        row += [_fmt(in_values, m, 2 if 'psnr' in m.lower() else 4) for m in metrics if inp]
        row += [_fmt(values, m, 2 if 'psnr' in m.lower() else 4) for m in metrics]
        if inp and psnr:
            row.append(f'{values[psnr] - in_values[psnr]:+.2f}')
        rows.append(row)
    return f'### {dataset_name}: per task (average = mean over tasks)\n\n' + markdown_table(header, rows)


def metrics_csv(name: str, all_results: dict) -> str:
    """One CSV line per (test set, source, task, metric)."""
    rows = []
    for dataset_name, results in all_results.items():
        for source in ('input', 'model'):
            if source not in results:
                continue
            per_task = dict(results[source]['tasks'], average=results[source]['average'])
            for task, values in per_task.items():
                n = results['counts'].get(task, sum(results['counts'].values()))
                rows += [[name, dataset_name, source, task, metric, f'{value:.6f}', n]
                         for metric, value in values.items()]
        for task, values in (results.get('uncertainty') or {}).items():  # val.uncertainty; an undefined value empty
            for metric in ('mean_sigma', 'spearman'):
                value = '' if values[metric] is None else f'{values[metric]:.6f}'
                rows.append([name, dataset_name, 'uncertainty', task, metric, value, results['counts'].get(task)])
    return csv_table(['name', 'dataset', 'source', 'task', 'metric', 'value', 'images'], rows)


def uncertainty_table(dataset_name: str, results: dict) -> str:
    """Markdown table of the uncertainty figures of one test set (val.uncertainty): per task, mean σ, the Spearman
    correlation between σ and |error| per pixel, and the number of images; '' without them."""
    figures = results.get('uncertainty')
    if not figures:
        return ''
    rows = [[task, f"{values['mean_sigma']:.4f}", '-' if values['spearman'] is None else f"{values['spearman']:.4f}",
             results['counts'].get(task, 0)] for task, values in figures.items()]
    return (f'### {dataset_name}: uncertainty of the TUR head (σ and |error| on the [0, 1] intensity scale; Spearman '
            'pooled over each task\'s sampled pixels)\n\n'
            + markdown_table(['Task', 'mean σ', 'Spearman(σ, |err|)', 'images'], rows))


def calibration_figure(path: str, dataset_name: str, figures: dict) -> None:
    """Write the calibration figure of one test set to `path` (PNG): for each task, the mean |error| of the pixels
    in each σ decile against the decile's mean σ (utils/calibration.py), one line per task."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed, and none is touched
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    try:
        for task, values in figures.items():
            rho = 'undefined' if values['spearman'] is None else f"{values['spearman']:.2f}"
            ax.plot(values['deciles'], values['decile_error'], marker='o', label=f'{task} (Spearman {rho})')
        sigmas = [v for values in figures.values() for v in values['deciles'] if v > 0]
        if sigmas and max(sigmas) > 10 * min(sigmas):  # deciles spanning decades (a trained head): a log axis
            ax.set_xscale('log')
        else:
            ax.ticklabel_format(axis='x', useOffset=False)  # the deciles of a near-constant σ: full values, no offset
        ax.set_xlabel('mean σ of the σ decile ([0, 1] intensity scale)')
        ax.set_ylabel('mean |restored − GT| ([0, 1] intensity scale)')
        ax.set_title(f'{dataset_name}: σ deciles against the error')
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format='png')
    finally:
        plt.close(fig)
    atomic_write(path, buf.getvalue())


def setting_table(label: str, all_results: dict, published: dict | None) -> str:
    """The paper's layout over all test sets: input and model rows, and the published rows with the model's difference
    to the one `published.row` names (none without a `row`)."""
    measured = {label: columns_of(all_results)}
    if all('input' in r for r in all_results.values()):
        measured = {INPUT_ROW: columns_of(all_results, 'input'), **measured}
    rows = load_published(published['file'], published['setting']) if published else {}
    row = (published or {}).get('row')
    names, table = build_table(measured, rows, diff_to={label: row} if row is not None else None)
    title = '### All test sets: paper layout (PSNR/SSIM, average = mean over columns)'
    if published:
        title += f" with published rows of '{published['setting']}' ({published['file']})"
        if row is None:
            title += '; no Δ row: the options name no published row for this run (published.row)'
    note = published_protocol(published['file'], published['setting']) if published and row is not None else ''
    # The Δ row sets this run beside a row measured by other code: say how that row was measured.
    note = f'\n{note} This run: as its Metrics line says.\n' if note else ''
    averages = printed_average_notes(published['file'], published['setting'], table) if published else []
    if averages:
        note += '\nAverages the paper prints otherwise:\n' + '\n'.join(averages) + '\n'
    return f'{title}\n\n' + to_markdown(names, table) + note


def comparison_figure(examples: dict, height: int = 160) -> np.ndarray:
    """One row per task: degraded input | restored | ground truth (8-bit BGR), each scaled to `height`."""
    rows = []
    for task, images in examples.items():
        tiles = [cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height),
                            interpolation=cv2.INTER_AREA) for img in images]
        row = np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1)
        label = np.full((height, 90, 3), 255, np.uint8)
        cv2.putText(label, task, (4, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = np.full((24, width, 3), 255, np.uint8)
    tile_w = (rows[0].shape[1] - 90) // 3
    for i, text in enumerate(('input', 'restored', 'ground truth')):
        cv2.putText(header, text, (90 + i * tile_w + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([header] + rows, axis=0)


def capped_note(all_results: dict) -> str:
    """The sentence saying which images had an infinite PSNR (identical to their GT) counted as PSNR_CAP dB, or ''."""
    parts = [f'{dataset}/{task} {source}: {max(metrics.values())}' for dataset, results in all_results.items()
             for source, per_task in (results.get('capped') or {}).items() for task, metrics in per_task.items()]
    if not parts:
        return ''
    return (f' PSNR of an image identical to its GT is infinite; such images are counted as {PSNR_CAP:g} dB in the '
            f"means, as pyiqa and video-coding tools do ({', '.join(parts)} images).")


def results_json(results: dict) -> str:
    """Strict JSON of a results dict: a NaN or Inf anywhere raises a ValueError instead of writing invalid JSON."""
    try:
        return json.dumps(results, indent=2, allow_nan=False)
    except ValueError as err:
        raise ValueError(f'results are not valid JSON ({err}); a metric is not finite') from None


def metric_images(metrics: dict) -> dict[str, str]:
    """{metric name: the images it scored, '8-bit' or 'float clipped to [0, 1]'} of val.metrics
    (metrics/__init__.py image_kind)."""
    return {name: IMAGE_KINDS[image_kind(settings['type'])]
            for name, settings in sorted(metrics.items())}


def measurement_protocol(opt: dict, loaders: list, model=None) -> dict:
    """How a run's figures were measured, as metrics.json records it: each metric's settings (val.metrics, with
    the defaults of its function filled in: tables.full_metric_settings), the images each metric scored ({metric:
    '8-bit' or 'float clipped to [0, 1]'}; files written before float metrics existed hold a bare '8-bit'), the
    tiling (val.tile size and overlap; null: whole images), each test set's source (the meta file's `# source:`
    lines: released or re-synthesised, resized or cropped), the weights scored and the model's test-time padding
    (val.pad; null: none). scripts/compare.py refuses to set runs measured with different metric settings side by
    side and marks runs that differ in the rest.

    weights: the file and its entry that the model read (TURModel.loaded_weights:
    `path.param_key_g`, or the entry read in its place when the file lacks it; null: the file is the
    tensor dict itself), and `requested_key`, the options' path.param_key_g (default 'params', as
    load_pretrained's); a model that records none gets the requested key as its key.
    """
    path = opt.get('path') or {}
    requested = path.get('param_key_g', 'params')
    weights = getattr(model, 'loaded_weights', None) or {'file': path.get('pretrain_network_g'),
                                                         'key': requested}
    padding = getattr(model, 'input_padding', None)  # utils/padding.py InputPadding, None when none
    val_opt = opt.get('val') or {}
    metrics = val_opt.get('metrics') or {}
    tile = val_opt.get('tile')  # its batch does not change a figure (tests/test_restore.py), size and overlap do
    return {'metrics': {name: full_metric_settings(settings) for name, settings in sorted(metrics.items())},
            'images': metric_images(metrics),
            'tile': {'size': tile['size'], 'overlap': tile.get('overlap', 32)} if tile else None,
            'test_sets': {loader.dataset.opt['name']: getattr(loader.dataset, 'source', '') for loader in loaders},
            'weights': {**weights, 'requested_key': requested},
            'pad': dataclasses.asdict(padding) if padding is not None else None}


def run_test(root_path: str, argv: list[str] | None = None) -> dict:
    """Evaluate the model of `-opt` on its test sets; print and write the tables; return all results."""
    opt, args = parse_options(root_path, is_train=False, argv=argv)
    root_path = opt['path']['root']  # root_path, or the folder --root names
    check_device(opt)
    # One run per name: a second test run with this name is refused before it renames or writes anything.
    with run_lock(opt['path']['results_root'], enabled=opt['rank'] == 0) as notes:
        return _evaluate(opt, root_path, [f'Options: {note}' for note in args.notes] + notes)


def _evaluate(opt: dict, root_path: str, notes: list[str]) -> dict:
    """Test the model of `opt` (its results folder locked); print and write the tables; return all results."""
    set_backend_flags(opt)  # cudnn_benchmark, tf32
    run_prepare_step(opt, root_path)
    # An earlier results/<name> is archived; if the start fails, it is put back and what this run made removed.
    fresh = opt['rank'] == 0
    with fresh_run_dirs([opt['path']['results_root']] if fresh else [],
                        output_dirs(opt['path'], 'results_root') if fresh else []) as dir_notes:
        log_file = osp.join(opt['path']['log'], f"test_{opt['name']}_{get_time_str()}.log")
        logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=log_file)
        logger.info(get_env_info())
        logger.info(f'Root folder: {root_path} (relative paths in the options and results/ are under it)')
        for note in notes + dir_notes:  # written before this logger existed
            logger.info(note)
        logger.info(dict2str(opt))
        loaders = []
        for _, dataset_opt in sorted(opt['datasets'].items()):
            test_set = build_dataset(dataset_opt)
            loaders.append(build_loader(test_set, dataset_opt, opt))  # each rank loads only its share
            logger.info(f"Test set {dataset_opt['name']}: {len(test_set)} images")
        model = build_model(opt)
    val_opt = opt.get('val') or {}
    all_results = {}
    for loader in loaders:
        name = loader.dataset.opt['name']
        all_results[name] = model.validation(loader, current_iter=opt['name'], tb_logger=None,
                                             save_img=val_opt.get('save_img', False))
        if val_opt.get('save_img', False) and model.examples:
            write_image(osp.join(opt['path']['results_root'], f'comparison_{name}.png'),
                        comparison_figure(model.examples))
        if all_results[name].get('uncertainty') and opt['rank'] == 0:
            figure = osp.join(opt['path']['results_root'], f'calibration_{name}.png')
            calibration_figure(figure, name, all_results[name]['uncertainty'])
            logger.info(f'Calibration figure (σ deciles against |error|) written to {figure}')

    label = opt['name']
    tables = '\n'.join(metrics_tables(label, d, r) + ('\n' + uncertainty_table(d, r) if 'uncertainty' in r else '')
                       for d, r in all_results.items())
    published = opt.get('published')  # its file resolved and its row checked by parse_options
    tables += '\n' + setting_table(label, all_results, published)
    metrics = val_opt.get('metrics') or {}
    images = metric_images(metrics)
    metric_notes = ', '.join(f"{k}: {v.get('type')} (crop_border {v.get('crop_border', 0)}, "
                             f"{'Y channel' if v.get('test_y_channel') else 'RGB'}, "
                             f'images: {images[k]})' for k, v in metrics.items())
    sources = '; '.join(f'{loader.dataset.opt["name"]}: {loader.dataset.source}' for loader in loaders
                        if getattr(loader.dataset, 'source', ''))
    data_note = f'Test data (from the meta files): {sources}.\n\n' if sources else ''
    text = (f'## {label}\n\nMetrics: {metric_notes}.{capped_note(all_results)}\n\n'
            f'{data_note}{tables}')
    results_root = opt['path']['results_root']
    atomic_write(osp.join(results_root, 'metrics.md'), text)
    atomic_write(osp.join(results_root, 'metrics.json'),
               results_json({'name': label, 'options': opt['opt_path'], 'results': all_results,
                             'protocol': measurement_protocol(opt, loaders, model),
                             # an absolute file, so that compare.py finds it from any folder
                             'published_as': dict(published, file=osp.abspath(published['file']),
                                                  row=published.get('row')) if published else None}))
    atomic_write(osp.join(results_root, 'metrics.csv'), metrics_csv(label, all_results))
    print(text, flush=True)
    logger.info(f"Tables written to {osp.join(results_root, 'metrics.md')} (.json, .csv)")
    return all_results
