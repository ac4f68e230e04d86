"""Training pipeline: options -> datasets -> TURModel -> checkpoints, logs, tensorboard and validation.

Built from basicsr parts (dataset/dataloader/sampler builders, prefetchers, logger, schedulers) instead of
basicsr's `train_pipeline`, whose option loader runs arbitrary YAML tags and whose resume assumes CUDA.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from os import path as osp
from typing import Any

from basicsr.data import build_dataset
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_env_info, get_root_logger, get_time_str, init_tb_logger, set_random_seed
from basicsr.utils.options import dict2str
from tqdm import tqdm

from basicsr_tur.data.loaders import build_loader
from basicsr_tur.utils.checkpoint import load_torch_file
from basicsr_tur.utils.dist import barrier
from basicsr_tur.utils.errors import CheckpointError, DataError
from basicsr_tur.utils.files import atomic_write, remove_stale_temps
from basicsr_tur.utils.option_file import OptionError, dump_yaml
from basicsr_tur.utils.options import check_device, parse_options, set_backend_flags
from basicsr_tur.utils.registry import run_prepare_step
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


def state_weights_path(state_path: str, iteration: int) -> str:
    """The weights saved with a training state: `<exp>/models/net_g_<iter>.pth` beside its `<exp>/training_states/`."""
    experiment = osp.dirname(osp.dirname(osp.abspath(state_path)))
    return osp.join(experiment, 'models', f'net_g_{iteration}.pth')


def validated_marker(state_path: str) -> str:
    """The file whose presence says that the validation due at a state's iteration was run and logged."""
    return f'{state_path[:-len(".state")] if state_path.endswith(".state") else state_path}.validated'


def _plain(value: Any) -> Any:
    """Options as plain lists, dicts and scalars (what `torch.load(weights_only=True)` reads back)."""
    return json.loads(json.dumps(value, default=str))


def run_record(opt: dict) -> dict:
    """What a training state records about its run, to check a resume against (taken before the model is built).

    Refused when changed (check_resumed_options): the model type, the network (type and every argument), the tasks,
    the optimizer type and the number of processes. Applied and logged: the optimizer's other settings (lr ...),
    the scheduler, the loss (pixel_opt), the batch, num_gpu and accumulate_steps (the state counts the epoch's
    samples, not its batches).
    """
    train_opt, dataset_opt = opt['train'], opt['datasets']['train']
    return _plain({'model_type': opt.get('model_type'), 'network_g': opt.get('network_g'),
                   'tasks': opt.get('tasks'), 'world_size': opt['world_size'], 'num_gpu': opt['num_gpu'],
                   'optim_g': train_opt.get('optim_g'), 'scheduler': train_opt.get('scheduler'),
                   'pixel_opt': train_opt.get('pixel_opt'),
                   'batch_size_per_gpu': dataset_opt.get('batch_size_per_gpu'),
                   'accumulate_steps': int(train_opt.get('accumulate_steps', 1))})


def _differences(old: Any, new: Any, key: str) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs between two plain option trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in list(old) + [k for k in new if k not in old]
                for d in _differences(old.get(k, '<unset>'), new.get(k, '<unset>'), f'{key}.{k}')]
    return [] if old == new else [(key, old, new)]


def _is_fixed(key: str) -> bool:
    """Whether a resume refuses a change of this option (dotted key, as in run_record).

    With another network, task list, optimizer type or process count the saved weights, optimizer moments or data
    positions would be read as something they are not.
    """
    return key == 'optim_g.type' or key.split('.')[0] in ('model_type', 'network_g', 'tasks', 'world_size')


def check_resumed_options(record: dict, opt: dict, state_path: str, weights_path: str) -> list[str]:
    """Refuse a resume whose options change what must not change; return the changes that are applied.

    Raises ValueError (one line, naming the state, the key and both values, and how to start from the weights
    instead). Returns readable lines for the applied changes (lr, scheduler, batch, ...), which the run logs.
    """
    saved = {k: v for k, v in record.items() if k != 'train_set'}  # known once the dataset is built (resume_position)
    changes = [(key[len('run.'):], old, new) for key, old, new in _differences(saved, run_record(opt), 'run')]
    for key, old, new in changes:
        if _is_fixed(key):
            raise CheckpointError(f'{state_path} was saved with {key} {old}; the options ask for {new} (to train its '
                             f'weights under new settings, start a new run with '
                             f'--force_yml path:pretrain_network_g={weights_path})')
    return [f'{key}: {old} -> {new}' for key, old, new in changes]


def load_resume_state(opt: dict, state_path: str) -> dict:
    """Load a training state on the CPU, check the options against it and point net_g at the weights saved with it.

    The weights are those of the state's own experiment (`models/` beside its `training_states/`), so a state of
    another experiment forks that run under this run's name. Raises FileNotFoundError naming the weights' path when
    they are missing, ValueError for an unreadable state, one past train.total_iter, or options that change what must
    not change (check_resumed_options).
    """
    state = load_torch_file(state_path, 'training state')
    if not isinstance(state, dict) or not isinstance(state.get('iter'), int):
        raise CheckpointError(f'{state_path}: not a training state of basicsr-tur (no iteration recorded)')
    total_iter = (opt.get('train') or {}).get('total_iter')
    if total_iter is not None and state['iter'] > total_iter:
        raise CheckpointError(f"{state_path} is at iteration {state['iter']}, past train.total_iter "
                              f'{total_iter}: raise total_iter to train on, or test its weights')
    model_path = state_weights_path(state_path, state['iter'])
    if not osp.isfile(model_path):
        raise FileNotFoundError(f'{state_path}: the network saved with it is missing: {model_path} (a state\'s '
                                'weights are read from the models/ folder beside its training_states/ folder)')
    state['applied_changes'] = check_resumed_options(state['run'], opt, state_path, model_path) if 'run' in state \
        else []
    state['path'] = state_path
    opt['path']['pretrain_network_g'] = model_path
    opt['path']['param_key_g'] = 'params'
    opt['path']['strict_load_g'] = True
    # Those weights hold the encoder as training left it (AirNet's frozen encoder keeps updating its BatchNorm
    # statistics): reloading its source checkpoint would turn the clock back on them.
    opt['path'].pop('pretrain_network_encoder', None)
    return state


def create_dataloaders(opt: dict, logger: logging.Logger):
    """Train loader, its sampler, epochs/iterations, and the validation loaders."""
    train_loader, train_sampler, val_loaders, total_epochs, total_iters = None, None, [], 0, 0
    for phase, dataset_opt in opt['datasets'].items():
        if phase == 'train':
            enlarge = dataset_opt.get('dataset_enlarge_ratio', 1)
            train_set = build_dataset(dataset_opt)
            train_loader = build_loader(train_set, dataset_opt, opt)
            train_sampler = train_loader.sampler
            iters_per_epoch = len(train_loader)
            if iters_per_epoch == 0:
                raise DataError(f"datasets.train: {len(train_set)} samples is fewer than one batch of "
                                 f"{dataset_opt['batch_size_per_gpu']}")
            total_iters = int(opt['train']['total_iter'])
            # An iteration is one optimizer step over `accumulate_steps` batches.
            total_epochs = math.ceil(total_iters * int(opt['train'].get('accumulate_steps', 1)) / iters_per_epoch)
            logger.info(f'Training statistics: samples {len(train_set)} (enlarge ratio {enlarge}), batch '
                        f"{dataset_opt['batch_size_per_gpu']}, iters/epoch {iters_per_epoch}, "
                        f'total epochs {total_epochs}, iters {total_iters}')
        elif phase.split('_')[0] == 'val':
            val_set = build_dataset(dataset_opt)
            val_loaders.append(build_loader(val_set, dataset_opt, opt))  # each rank loads only its share
            logger.info(f"Validation set {dataset_opt['name']}: {len(val_set)} images")
        else:
            raise OptionError(f"{opt['opt_path']}: dataset phase '{phase}' is not 'train' or 'val*'")
    if train_loader is None:
        raise OptionError(f"{opt['opt_path']}: 'datasets.train' is missing")
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


def resume_position(state: dict, record: dict, batch_samples: int, logger: logging.Logger) -> int:
    """Samples of the state's epoch already used; logs the option changes a resume applies.

    States written before the sample count (`batch_in_epoch` only) are read with this run's batch, which they did
    not record.
    """
    for change in state.get('applied_changes', []):
        logger.info(f'Resume: changed since {state["path"]}: {change} (applied)')
    if 'run' not in state:
        logger.warning(f'{state["path"]}: written by an earlier version that recorded no options; changes of the '
                       'network, optimizer or batch since then are not checked')
    saved_set = (state.get('run') or {}).get('train_set')
    if saved_set and saved_set != record['train_set']:
        logger.warning(f"Resume: the training set was {saved_set['type']} of {saved_set['length']} samples, now "
                       f"{record['train_set']['type']} of {record['train_set']['length']}: the rest of the epoch "
                       'follows a new order')
    if 'samples_in_epoch' in state:
        return int(state['samples_in_epoch'])
    return int(state.get('batch_in_epoch', 0)) * batch_samples


def validate(model: BaseModel, val_loaders: list, current_iter: int, tb_logger, opt: dict) -> None:
    """Validate on every val loader, then mark the state of this iteration (if any) as validated (rank 0)."""
    for val_loader in val_loaders:
        model.validation(val_loader, current_iter, tb_logger, opt['val'].get('save_img', False))
    state_path = osp.join(opt['path']['training_states'], f'{current_iter}.state')
    if opt['rank'] == 0 and osp.exists(state_path):
        atomic_write(validated_marker(state_path), f'{get_time_str()}\n')


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
    set_backend_flags(opt)  # cudnn_benchmark, tf32
    exp_root = opt['path']['experiments_root']
    if opt['rank'] == 0 and osp.isdir(exp_root):
        # Temporary files of a run killed while saving (atomic_write's `*.tmp<pid>`): never resumable, never needed.
        notes += [f'removed {p}, left by a run killed while saving' for p in remove_stale_temps(exp_root)]
    state_path = find_resume_state(opt)
    record = run_record(opt)  # before the model is built (basicsr pops the scheduler's type)
    resume_state = load_resume_state(opt, state_path) if state_path else None
    # A state of another experiment forks that run: this run's folders are made as for a new run.
    forked = resume_state is not None and \
        osp.dirname(osp.dirname(osp.abspath(state_path))) != osp.abspath(exp_root)
    # A fresh start archives the folders of an earlier run of this name (experiments/ and tb_logger/, as basicsr
    # does); if the start fails, they are put back and only what this run made is removed.
    fresh = (resume_state is None or forked) and opt['rank'] == 0
    archive = [exp_root] + ([osp.join(root_path, 'tb_logger', opt['name'])] if _uses_tb_logger(opt) else [])
    with fresh_run_dirs(archive if fresh else [], output_dirs(opt['path'], 'experiments_root') if fresh else []) \
            as dir_notes:
        barrier()
        logger, tb_logger, loaders, model, start_epoch, current_iter = _set_up(opt, root_path, resume_state,
                                                                               notes + dir_notes)
    train_loader, train_sampler, val_loaders, _, total_iters = loaders
    train_set = train_loader.dataset
    record['train_set'] = {'type': type(train_set).__name__, 'length': len(train_set)}
    # Samples of the epoch's global stream one batch consumes (all ranks): the state counts samples, not batches.
    batch_samples = train_sampler.batch_size * train_sampler.num_replicas
    skip_samples = resume_position(resume_state, record, batch_samples, logger) if resume_state else 0
    if resume_state:
        logger.info(f'Resuming training from epoch {start_epoch}, iter {current_iter}, after {skip_samples} samples '
                    f"of the epoch ({state_path}{', forked into this experiment' if forked else ''})")
        if resume_state.get('validate') and not osp.exists(validated_marker(state_path)):
            # The run stopped before the validation of this state's iteration was logged: run it now. Validation
            # leaves every RNG as it found it, so this does not change the training that follows.
            logger.info(f'The validation at iter {current_iter} was not logged before the run stopped: running it')
            validate(model, val_loaders, current_iter, tb_logger, opt)

    prefetch_mode = opt['datasets']['train'].get('prefetch_mode')
    prefetcher = CUDAPrefetcher(train_loader, opt) if prefetch_mode == 'cuda' else CPUPrefetcher(train_loader)
    print_freq = opt['logger'].get('print_freq', 100)
    save_freq = opt['logger'].get('save_checkpoint_freq', 5000)
    val_freq = (opt.get('val') or {}).get('val_freq')
    warmup = opt['train'].get('warmup_iter', -1)

    accumulate, micro = int(opt['train'].get('accumulate_steps', 1)), 0
    logger.info(f'Start training from epoch {start_epoch}, iter {current_iter}')
    pbar = tqdm(total=total_iters, initial=current_iter, unit='it', desc=opt['name'], dynamic_ncols=True,
                disable=opt['rank'] != 0)
    start_time, iter_start = time.time(), current_iter
    # Epochs until total_iter, not a precomputed count: a resume with another batch size has epochs of another
    # length than those before it.
    for epoch in itertools.count(start_epoch):
        train_sampler.set_epoch(epoch)
        # A resumed run skips the samples its epoch had already used (same order: seed and epoch fix it).
        samples_in_epoch = skip_samples if epoch == start_epoch else 0
        train_sampler.set_start(samples_in_epoch)  # the dataset learns the epoch from the sampler's indices
        prefetcher.reset()
        train_data = prefetcher.next()
        while train_data is not None and current_iter < total_iters:
            samples_in_epoch += batch_samples
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
            validating = bool(val_freq and val_loaders) and (current_iter % val_freq == 0
                                                             or current_iter == total_iters)
            if current_iter % save_freq == 0 or current_iter == total_iters:
                # Saved before validating, so that a validation that fails loses no training; the state says a
                # validation follows, and a resume runs it unless its marker file says it was logged.
                logger.info('Saving models and training states.')
                model.save(epoch, current_iter, samples_in_epoch, validate=validating, run=record)
            if validating:
                validate(model, val_loaders, current_iter, tb_logger, opt)
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
