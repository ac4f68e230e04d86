"""Training pipeline: options -> datasets -> TURModel -> checkpoints, logs, tensorboard and validation.

Built from basicsr parts (dataset/dataloader/sampler builders, prefetchers, logger, schedulers) instead of
basicsr's `train_pipeline`, whose option loader runs arbitrary YAML tags and whose resume assumes CUDA.
"""
from __future__ import annotations

import logging
import math
import os
import time
from os import path as osp

import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_env_info, get_root_logger, get_time_str, init_tb_logger, set_random_seed
from basicsr.utils.options import dict2str
from tqdm import tqdm

from basicsr_tur.data.samplers import ShuffledSampler, TaskBalancedSampler
from basicsr_tur.utils.dist import barrier
from basicsr_tur.utils.files import atomic_write, remove_stale_temps
from basicsr_tur.utils.options import check_device, dump_yaml, parse_options, run_prepare_step
from basicsr_tur.utils.runs import fresh_run_dirs, output_dirs, run_lock


def find_resume_state(opt: dict) -> str | None:
    """Path of the training state to resume: `path.resume_state`, or with --auto_resume the latest one."""
    state_path = opt['path'].get('resume_state')
    if opt['auto_resume'] and state_path is None:
        state_dir = opt['path']['training_states']
        if osp.isdir(state_dir):
            iters = [int(f[:-len('.state')]) for f in os.listdir(state_dir)
                     if f.endswith('.state') and f[:-len('.state')].isdigit()]
            if iters:
                state_path = osp.join(state_dir, f'{max(iters)}.state')
    if state_path is not None and not osp.isfile(state_path):
        raise FileNotFoundError(f'resume state not found: {state_path}')
    return state_path


def load_resume_state(opt: dict, state_path: str) -> dict:
    """Load a training state on the CPU and point net_g at the weights saved with it."""
    state = torch.load(state_path, map_location='cpu', weights_only=True)
    model_path = osp.join(opt['path']['models'], f"net_g_{state['iter']}.pth")
    if not osp.isfile(model_path):
        raise FileNotFoundError(f'{state_path}: the network saved with it is missing: {model_path}')
    opt['path']['pretrain_network_g'] = model_path
    opt['path']['param_key_g'] = 'params'
    opt['path']['strict_load_g'] = True
    # Those weights hold the encoder as training left it (AirNet's frozen encoder keeps updating its BatchNorm
    # statistics): reloading its source checkpoint would turn the clock back on them.
    opt['path'].pop('pretrain_network_encoder', None)
    return state


def build_sampler(train_set, dataset_opt: dict, opt: dict) -> ShuffledSampler | TaskBalancedSampler:
    """The train sampler of `datasets.train.sampler`: `shuffle` (default) or `balanced` (every task in every batch)."""
    # basicsr's loader multiplies the batch by the GPU count under DataParallel; the sampler must cut the same batch.
    batch = dataset_opt['batch_size_per_gpu'] * (1 if opt['dist'] else max(opt['num_gpu'], 1))
    kind = dataset_opt.get('sampler', 'shuffle')
    args = (batch, opt['world_size'], opt['rank'], opt['manual_seed'])
    if kind == 'shuffle':
        return ShuffledSampler(len(train_set), *args)
    if kind == 'balanced':
        if not hasattr(train_set, 'item_tasks'):
            raise ValueError(f"datasets.train.sampler: 'balanced' needs a task-labelled dataset, not "
                             f'{type(train_set).__name__}')
        return TaskBalancedSampler(train_set.item_tasks(), *args)
    raise ValueError(f"datasets.train.sampler: expected 'shuffle' or 'balanced', got '{kind}'")


def create_dataloaders(opt: dict, logger: logging.Logger):
    """Train loader, its sampler, epochs/iterations, and the validation loaders."""
    train_loader, train_sampler, val_loaders, total_epochs, total_iters = None, None, [], 0, 0
    for phase, dataset_opt in opt['datasets'].items():
        if phase == 'train':
            enlarge = dataset_opt.get('dataset_enlarge_ratio', 1)
            train_set = build_dataset(dataset_opt)
            train_sampler = build_sampler(train_set, dataset_opt, opt)
            train_loader = build_dataloader(train_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                            sampler=train_sampler, seed=opt['manual_seed'])
            # The loader's own generator, so that making an iterator does not draw from the global torch RNG
            # (which dropout uses): a resumed run then consumes the global RNG exactly as an uninterrupted one.
            train_loader.generator = torch.Generator().manual_seed(opt['manual_seed'])
            iters_per_epoch = len(train_loader)
            if iters_per_epoch == 0:
                raise ValueError(f"datasets.train: {len(train_set)} samples is fewer than one batch of "
                                 f"{dataset_opt['batch_size_per_gpu']}")
            total_iters = int(opt['train']['total_iter'])
            # An iteration is one optimizer step over `accumulate_steps` batches.
            total_epochs = math.ceil(total_iters * int(opt['train'].get('accumulate_steps', 1)) / iters_per_epoch)
            logger.info(f'Training statistics: samples {len(train_set)} (enlarge ratio {enlarge}), batch '
                        f"{dataset_opt['batch_size_per_gpu']}, iters/epoch {iters_per_epoch}, "
                        f'total epochs {total_epochs}, iters {total_iters}')
        elif phase.split('_')[0] == 'val':
            val_set = build_dataset(dataset_opt)
            val_loaders.append(build_dataloader(val_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                                sampler=None, seed=opt['manual_seed']))
            logger.info(f"Validation set {dataset_opt['name']}: {len(val_set)} images")
        else:
            raise ValueError(f"{opt['opt_path']}: dataset phase '{phase}' is not 'train' or 'val*'")
    if train_loader is None:
        raise ValueError(f"{opt['opt_path']}: 'datasets.train' is missing")
    return train_loader, train_sampler, val_loaders, total_epochs, total_iters


def write_options_copy(opt: dict) -> None:
    """Keep the options this run used beside its outputs (rank 0 writes it)."""
    if opt['rank'] != 0:
        return
    path = osp.join(opt['path']['experiments_root'], osp.basename(opt['opt_path']))
    atomic_write(path, f'# {get_time_str()}\n' + dump_yaml(opt))


def _uses_tb_logger(opt: dict) -> bool:
    """Whether this run writes tb_logger/<name> (basicsr's rule: on unless disabled or a 'debug' run)."""
    return bool(opt['logger'].get('use_tb_logger', True)) and 'debug' not in opt['name']


def _set_up(opt: dict, root_path: str, resume_state: dict | None, notes: list[str]):
    """Logger, tensorboard, data, model and start position of a run (anything here may fail on bad input).

    notes: lines about the start-up (option values converted, lock taken over, folders archived, stale files
    removed) for the log.
    """
    write_options_copy(opt)
    log_file = osp.join(opt['path']['log'], f"train_{opt['name']}_{get_time_str()}.log")
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=log_file)
    logger.info(get_env_info())
    logger.info(f'Root folder: {root_path} (relative paths in the options, experiments/ and tb_logger/ are under it)')
    for note in notes:  # written before this logger existed
        logger.info(note)
    logger.info(dict2str(opt))
    if opt['rank'] == 0:
        run_prepare_step(opt, root_path)
    barrier()
    set_random_seed(opt['manual_seed'])
    loaders = create_dataloaders(opt, logger)
    model = build_model(opt)
    start_epoch, current_iter = 0, 0
    if resume_state:
        model.resume_training(resume_state)
        start_epoch, current_iter = resume_state['epoch'], resume_state['iter']
    tb_logger = None
    if _uses_tb_logger(opt):
        tb_logger = init_tb_logger(log_dir=osp.join(root_path, 'tb_logger', opt['name']))
    return logger, tb_logger, loaders, model, start_epoch, current_iter


def train_pipeline(root_path: str, argv: list[str] | None = None) -> BaseModel:
    """Run a training from `-opt`; returns the trained model (its files are in experiments/<name>/ under the root:
    root_path, or the folder `--root` names)."""
    opt, args = parse_options(root_path, is_train=True, argv=argv)
    root_path = opt['path']['root']
    check_device(opt)
    # One run per name: a second run with this name is refused before it renames or writes anything (rank 0 locks).
    with run_lock(opt['path']['experiments_root'], enabled=opt['rank'] == 0) as notes:
        return _train(opt, root_path, [f'Options: {note}' for note in args.notes] + notes)


def _train(opt: dict, root_path: str, notes: list[str]) -> BaseModel:
    """Start or resume the run of `opt` (its lock held) and train it."""
    # Off by default: autotuned convolution algorithms may change the numerics from run to run.
    torch.backends.cudnn.benchmark = bool(opt.get('cudnn_benchmark', False))
    exp_root = opt['path']['experiments_root']
    if opt['rank'] == 0 and osp.isdir(exp_root):
        # Temporary files of a run killed while saving (atomic_write's `*.tmp<pid>`): never resumable, never needed.
        notes += [f'removed {p}, left by a run killed while saving' for p in remove_stale_temps(exp_root)]
    state_path = find_resume_state(opt)
    resume_state = load_resume_state(opt, state_path) if state_path else None
    # A fresh start archives the folders of an earlier run of this name (experiments/ and tb_logger/, as basicsr
    # does); if the start fails, they are put back and only what this run made is removed.
    fresh = resume_state is None and opt['rank'] == 0
    archive = [exp_root] + ([osp.join(root_path, 'tb_logger', opt['name'])] if _uses_tb_logger(opt) else [])
    with fresh_run_dirs(archive if fresh else [], output_dirs(opt['path'], 'experiments_root') if fresh else []) \
            as dir_notes:
        barrier()
        logger, tb_logger, loaders, model, start_epoch, current_iter = _set_up(opt, root_path, resume_state,
                                                                               notes + dir_notes)
    train_loader, train_sampler, val_loaders, total_epochs, total_iters = loaders
    skip_batches = resume_state.get('batch_in_epoch', 0) if resume_state else 0
    if resume_state:
        logger.info(f'Resuming training from epoch {start_epoch}, iter {current_iter}, batch {skip_batches} of '
                    f'the epoch ({state_path})')

    prefetch_mode = opt['datasets']['train'].get('prefetch_mode')
    prefetcher = CUDAPrefetcher(train_loader, opt) if prefetch_mode == 'cuda' else CPUPrefetcher(train_loader)
    print_freq = opt['logger'].get('print_freq', 100)
    save_freq = opt['logger'].get('save_checkpoint_freq', 5000)
    val_freq = (opt.get('val') or {}).get('val_freq')
    warmup = opt['train'].get('warmup_iter', -1)
    train_set = train_loader.dataset

    accumulate, micro = int(opt['train'].get('accumulate_steps', 1)), 0
    logger.info(f'Start training from epoch {start_epoch}, iter {current_iter}')
    pbar = tqdm(total=total_iters, initial=current_iter, unit='it', desc=opt['name'], dynamic_ncols=True,
                disable=opt['rank'] != 0)
    start_time, iter_start = time.time(), current_iter
    for epoch in range(start_epoch, total_epochs + 1):
        train_sampler.set_epoch(epoch)
        # A resumed run skips the batches its epoch had already used (same order: seed and epoch fix it).
        batch_in_epoch = skip_batches if epoch == start_epoch else 0
        train_sampler.set_start(batch_in_epoch)
        if hasattr(train_set, 'set_epoch'):
            train_set.set_epoch(epoch)
        prefetcher.reset()
        train_data = prefetcher.next()
        while train_data is not None and current_iter < total_iters:
            batch_in_epoch += 1
            micro = (micro + 1) % accumulate
            step = micro == 0  # an iteration is one optimizer step: `accumulate` batches
            model.feed_data(train_data)
            if not step:
                model.optimize_parameters(current_iter + 1, step=False)
                train_data = prefetcher.next()
                continue
            current_iter += 1
            model.update_learning_rate(current_iter, warmup_iter=warmup)
            model.optimize_parameters(current_iter, step=True)
            pbar.update(1)
            if current_iter % print_freq == 0 or current_iter == total_iters:
                log = model.get_current_log()
                if 'l_pix' in log:
                    pbar.set_postfix(loss=f"{log['l_pix']:.4f}")
                elapsed = time.time() - start_time
                rate = (current_iter - iter_start) / max(elapsed, 1e-9)
                lrs = ','.join(f'{lr:.3e}' for lr in model.get_current_learning_rate())
                figures = ' '.join(f'{k}: {v:.4e}' for k, v in log.items())
                logger.info(f'[epoch:{epoch:3d}, iter:{current_iter:8,d}, lr:({lrs})] [{rate:.2f} it/s] {figures}')
                if tb_logger:
                    for key, value in log.items():
                        tb_logger.add_scalar(f'losses/{key}' if key.startswith('l_') else f'train/{key}', value,
                                             current_iter)
            if current_iter % save_freq == 0 or current_iter == total_iters:
                logger.info('Saving models and training states.')
                model.save(epoch, current_iter, batch_in_epoch)
            if val_freq and (current_iter % val_freq == 0 or current_iter == total_iters):
                for val_loader in val_loaders:
                    model.validation(val_loader, current_iter, tb_logger, opt['val'].get('save_img', False))
            train_data = prefetcher.next()
        if current_iter >= total_iters:
            break
    pbar.close()
    model.save_weights('latest')
    skipped = getattr(model, 'skipped_steps', 0)
    logger.info(f'End of training: {current_iter} iterations in {time.time() - start_time:.1f}s'
                + (f'; {skipped} non-finite steps skipped (warnings above)' if skipped else ''))
    if tb_logger:
        tb_logger.close()
    return model
