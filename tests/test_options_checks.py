"""Every mistake in an options file or a --force_yml is one named line at parse time, before anything is written:
sub-options passed as keyword arguments, value types (numeric strings read as numbers, with a note), --force_yml
syntax, duplicate keys, dataset types and schedule lengths; and relative paths and outputs are under one root."""
import glob
import os
import re
import subprocess
import sys
from os import path as osp

import pytest
from conftest import edit, make_options, make_test_options

from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny(tmp_path, clean_root, paired_root, change=None):
    path = make_options(tmp_path, clean_root, paired_root)
    if change is not None:
        edit(path, change)
    return path


def parse(tmp_path, path, *force, is_train=True):
    argv = ['-opt', path] + (['--force_yml', *force] if force else [])
    return parse_options(str(tmp_path), is_train, argv)


def set_key(dotted, value):
    """change(opt) that sets opt['a']['b']... = value (creating mappings on the way)."""
    def change(opt):
        *parents, last = dotted.split('.')
        node = opt
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


# R4: each sub-options dict against what it is passed to, named with a did-you-mean hint.
SUB_OPTIONS = {
    'optimizer_key': ('train.optim_g', {'type': 'Adam', 'lr': 1e-3, 'weight_decy': 0.1},
                      r"unknown key 'train.optim_g.weight_decy'; did you mean 'weight_decay'"),
    'optimizer_key_without_a_close_match': ('train.optim_g', {'type': 'Adam', 'lerning_rate': 2e-3},
                                            r"unknown key 'train.optim_g.lerning_rate'; allowed: amsgrad, betas"),
    'optimizer_without_lr': ('train.optim_g', {'type': 'SGD', 'momentum': 0.9}, r"'train.optim_g.lr' is missing"),
    'optimizer_type': ('train.optim_g', {'type': 'AdamWW', 'lr': 1e-3},
                       r"'train.optim_g.type': unknown optimizer 'AdamWW'; did you mean 'AdamW'"),
    'scheduler_key': ('train.scheduler', {'type': 'MultiStepLR', 'milstones': [1000], 'gamma': 0.5},
                      r"unknown key 'train.scheduler.milstones'; did you mean 'milestones'"),
    'scheduler_type': ('train.scheduler', {'type': 'StepLR', 'milestones': [10]},
                       r"'train.scheduler.type': unknown scheduler 'StepLR'.* \(the model builds MultiStepLR, "
                       r'MultiStepRestartLR, CosineAnnealingRestartLR\)$'),
    'scheduler_without_periods': ('train.scheduler', {'type': 'CosineAnnealingRestartLR', 'eta_min': 0.0},
                                  r"'train.scheduler.periods' is missing"),
    'disk_backend_argument': ('datasets.train.io_backend', {'type': 'disk', 'db_path': 'x'},
                              r"unknown key 'datasets.train.io_backend.db_path'; it takes no options"),
    'backend_type': ('datasets.val.io_backend', {'type': 'lmbd'},
                     r"'datasets.val.io_backend.type': unknown io backend 'lmbd'; did you mean 'lmdb'"),
    'lmdb_backend_flag': ('datasets.train.io_backend', {'type': 'lmdb', 'readahed': False},
                          r"unknown key 'datasets.train.io_backend.readahed'; did you mean 'readahead'"),
    'metric_key': ('val.metrics.psnr', {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_chanel': True},
                   r"unknown key 'val.metrics.psnr.test_y_chanel'; did you mean 'test_y_channel'"),
    'metric_crop_key': ('val.metrics.psnr', {'type': 'calculate_psnr', 'crop_boarder': 4},
                        r"unknown key 'val.metrics.psnr.crop_boarder'; did you mean 'crop_border'"),
    'metric_key_the_metric_does_not_take': ('val.metrics.psnr',
                                            {'type': 'calculate_psnr_skimage', 'crop_border': 0,
                                             'input_order': 'HWC'},
                                            r"unknown key 'val.metrics.psnr.input_order'"),
    'metric_type': ('val.metrics.psnr', {'type': 'calc_psnr', 'crop_border': 0},
                    r"'val.metrics.psnr.type': unknown metric 'calc_psnr'; did you mean 'calculate_psnr'"),
    'metric_without_crop_border': ('val.metrics.ssim', {'type': 'calculate_ssim'},
                                   r"'val.metrics.ssim.crop_border' is missing"),
    'compile_argument': ('train.compile', {'mode': 'default', 'fullgrap': True},
                         r"unknown key 'train.compile.fullgrap'; did you mean 'fullgraph'"),
    'dist_params_key': ('dist_params', {'backend': 'gloo', 'prot': 29500},
                        r"unknown key 'dist_params.prot'; did you mean 'port'"),
    'wandb_project': ('logger.wandb', {'project': 'mine'},
                      r"'logger.wandb.project': basicsr-tur does not log to wandb"),
}


@pytest.mark.parametrize('case', SUB_OPTIONS)
def test_sub_options_are_checked_against_what_they_are_passed_to(case, tmp_path, clean_root, paired_root):
    key, value, message = SUB_OPTIONS[case]
    path = tiny(tmp_path, clean_root, paired_root, set_key(key, value))
    with pytest.raises(OptionError, match=message):
        parse(tmp_path, path)
    assert sorted(os.listdir(tmp_path)) == sorted(['clean', 'paired', osp.basename(path)])  # nothing written


def test_metric_typo_in_test_options_is_refused_not_scored_as_rgb(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError, match=r"'val.metrics.psnr.test_y_chanel'; did you mean 'test_y_channel'"):
        parse(tmp_path, path, 'val:metrics:psnr:test_y_chanel=true', is_train=False)


@pytest.mark.parametrize('metric', ['calculate_psnr_pt', 'calculate_ssim_pt'])
def test_basicsr_tensor_metrics_are_refused_naming_the_key(metric, tmp_path, paired_root):
    # They score torch tensors; validation gives numpy images (AttributeError at the first image).
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, f'val:metrics:ssim={{type: {metric}, crop_border: 0}}',
              is_train=False)
    assert "'val.metrics.ssim.type'" in str(err.value) and metric in str(err.value)


def test_force_yml_typo_in_an_optimizer_is_named(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError, match=r"unknown key 'train.optim_g.lerning_rate'"):
        parse(tmp_path, path, 'train:optim_g:lerning_rate=1e-3')


def test_well_formed_sub_options_pass(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, lambda o: (
        o['train'].update(optim_g={'type': 'AdamW', 'lr': 1e-3, 'betas': [0.9, 0.99], 'weight_decay': 0.01},
                          compile={'mode': 'max-autotune'}),
        o['datasets']['train'].update(io_backend={'type': 'disk'}),
        o['val']['metrics'].update(ssim={'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True,
                                         'input_order': 'HWC'})))
    opt, args = parse(tmp_path, path)
    assert opt['train']['optim_g']['betas'] == [0.9, 0.99] and args.notes == []


# R5: a numeric string (YAML 1.1 reads 2e-3 as one) is read as the number, with a note naming the key.
NUMERIC_STRINGS = {
    'train.optim_g.lr': ('2e-3', 0.002),
    'datasets.train.batch_size_per_gpu': ('6', 6),
    'train.ema_decay': ('0.999', 0.999),
    'val.val_freq': ('5', 5),
    'network_g.num_feat': ('8', 8),
    'val.metrics.psnr.crop_border': ('4', 4),
    'train.total_iter': ('2e1', 20),
    'train.optim_g.eps': ('1e-8', 1e-8),
}


@pytest.mark.parametrize('key', NUMERIC_STRINGS)
def test_numeric_string_is_read_as_the_number_with_a_note(key, tmp_path, clean_root, paired_root):
    text, number = NUMERIC_STRINGS[key]
    path = tiny(tmp_path, clean_root, paired_root, set_key(key, text))
    opt, args = parse(tmp_path, path)
    node = opt
    for part in key.split('.'):
        node = node[part]
    assert node == number and type(node) is type(number)
    assert [n for n in args.notes if f"'{key}': read the string '{text}' as the number" in n]


def test_yaml_1_1_exponent_from_force_yml_is_a_number(tmp_path, clean_root, paired_root):
    opt, args = parse(tmp_path, tiny(tmp_path, clean_root, paired_root), 'train:optim_g:lr=2e-3',
                      'train:scheduler:milestones=[1e3, 2e3]')
    assert opt['train']['optim_g']['lr'] == 0.002 and opt['train']['scheduler']['milestones'] == [1000, 2000]
    assert len(args.notes) == 3


WRONG_VALUES = [  # key, value, the one line
    ('train.optim_g.lr', 'fast', r"'train.optim_g.lr' must be a number, got 'fast'"),
    ('num_gpu', 'zero', r"'num_gpu' must be an integer or 'auto', got 'zero'"),
    ('manual_seed', 'abc', r"'manual_seed' must be an integer or null, got 'abc'"),
    ('datasets.train.num_worker_per_gpu', 'two', r"'datasets.train.num_worker_per_gpu' must be an integer, got 'two'"),
    ('datasets.train.batch_size_per_gpu', 2.5, r"'datasets.train.batch_size_per_gpu' must be an integer, got 2.5"),
    ('datasets.val.use_rot', 'yes please', r"'datasets.val.use_rot' must be true or false"),
    ('logger.print_freq', 0, r"'logger.print_freq' must be >= 1, got 0"),
    ('path.strict_load_g', 1, r"'path.strict_load_g' must be true or false, got 1"),
    ('train.optim_g.betas', [0.9, 'fast'], r"'train.optim_g.betas\[1\]' must be a number, got 'fast'"),
    ('train.scheduler.gamma', 'half', r"'train.scheduler.gamma' must be a number, got 'half'"),
    ('train.pixel_opt.eps', 'tiny', r"'train.pixel_opt.eps' must be a number or null, got 'tiny'"),
    ('val.metrics.psnr.test_y_channel', 'yes', r"'val.metrics.psnr.test_y_channel' must be true or false"),
    ('train.mixed_precision', 'fp32', r"'train.mixed_precision' must be 'bf16' or 'fp16' or null, got 'fp32'"),
    ('datasets.train.sampler', 'balance', r"'datasets.train.sampler' must be 'shuffle' or 'balanced'"),
    ('train.optim_g.lr', 'nan', r"'train.optim_g.lr' must be a number, got 'nan'"),
]


@pytest.mark.parametrize('key, value, message', WRONG_VALUES, ids=[f'{k}={v}' for k, v, _ in WRONG_VALUES])
def test_wrong_value_type_is_named(key, value, message, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key(key, value))
    with pytest.raises(OptionError, match=f'^{path}: {message}'):
        parse(tmp_path, path)


@pytest.mark.parametrize('entry, message', [('num_gpu=two', r"'num_gpu' must be an integer or 'auto', got 'two'"),
                                            ('train:optim_g:lr=fast', r"'train.optim_g.lr' must be a number")])
def test_wrong_value_from_force_yml_is_named_like_one_in_the_file(entry, message, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError, match=f'^{path}: {message}'):
        parse(tmp_path, path, entry)


def test_wrong_num_gpu_in_test_options_is_named(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    edit(path, set_key('num_gpu', 'zero'))
    with pytest.raises(OptionError, match=r"'num_gpu' must be an integer or 'auto', got 'zero'"):
        parse(tmp_path, path, is_train=False)


# R6: a malformed --force_yml is one line; a YAML tag is refused and never constructed.
@pytest.mark.parametrize('entry, message', [
    ('train:scheduler:milestones=[1000',
     r"^--force_yml 'train:scheduler:milestones=\[1000': value is not valid YAML \(.*expected ',' or '\]'"),
    ('network_g:type:foo=1', r"^--force_yml 'network_g:type:foo': 'network_g.type' is not a mapping$"),
    ('datasets:train:gt_size:0=1', r"^--force_yml 'datasets:train:gt_size:0': 'datasets.train.gt_size' is not a "),
    ('total_iter', r"^--force_yml 'total_iter': expected KEY=VALUE"),
    ('train::total_iter=3', r"^--force_yml 'train::total_iter=3': empty key name"),
    ('train:optim_g={type: Adam, lr: 1, lr: 2}', r"value is not valid YAML \(duplicate key 'lr'"),
])
def test_malformed_force_yml_is_one_line(entry, message, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError, match=message):
        parse(tmp_path, path, entry)


@pytest.mark.parametrize('value', ["!!python/object/apply:os.system ['touch {marker}']", '!!str name',
                                   "[1, !!python/name:os.system '']"])
def test_force_yml_tag_is_refused_and_never_run(value, tmp_path, clean_root, paired_root):
    marker = tmp_path / 'marker'
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError, match=r"^--force_yml 'name': YAML tags are not allowed$"):
        parse(tmp_path, path, 'name=' + value.format(marker=marker))
    assert not marker.exists()


# R18: a key named twice in one mapping, at any depth.
def test_duplicate_top_level_key_is_refused(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    lines = open(path).read().splitlines()
    with open(path, 'a') as f:
        f.write('name: other\n')
    message = rf"^{path}: line {len(lines) + 1}: duplicate key 'name' \(first at line 1\)$"
    with pytest.raises(OptionError, match=message):
        parse(tmp_path, path)


def test_duplicate_nested_key_is_refused(tmp_path):
    path = tmp_path / 'dup.yml'
    path.write_text('name: x\ntrain:\n  total_iter: 10\n  optim_g: {type: Adam, lr: 1.0e-3}\n  total_iter: 20\n')
    with pytest.raises(OptionError, match=r"dup.yml: line 5: duplicate key 'total_iter' \(first at line 3\)"):
        parse(tmp_path, str(path))


def test_merge_key_may_override_what_it_merges(tmp_path):
    from basicsr_tur.utils.option_file import load_yaml
    path = tmp_path / 'merge.yml'
    path.write_text('base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 5\n')
    assert load_yaml(str(path))['d'] == {'x': 5, 'y': 2}


# R17: only task-labelled datasets (TURModel needs each sample's task id).
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_basicsr_dataset_without_task_ids_is_refused(phase, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key(f'datasets.{phase}.type', 'PairedImageDataset'))
    with pytest.raises(OptionError, match=rf"'datasets.{phase}.type': PairedImageDataset is not a task-labelled "
                                          r'dataset \(use PairedTaskDataset\)'):
        parse(tmp_path, path)


def test_basicsr_dataset_in_test_options_is_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError, match=r"'datasets.test.type': PairedImageDataset is not a task-labelled"):
        parse(tmp_path, path, 'datasets:test:type=PairedImageDataset', is_train=False)


# F11 and the schedulers' other preconditions.
COSINE = {'type': 'CosineAnnealingRestartLR', 'periods': [4], 'restart_weights': [1], 'eta_min': 1.0e-7}


def test_cosine_periods_shorter_than_total_iter_are_refused(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key('train.scheduler', dict(COSINE, periods=[5, 5],
                                                                                       restart_weights=[1, 0.5])))
    with pytest.raises(OptionError, match=r"'train.scheduler.periods' \[5, 5\] add up to 10, fewer than "
                                          r"'train.total_iter' 20: .*periods=\[5, 15\]\), or lower total_iter$"):
        parse(tmp_path, path)


@pytest.mark.parametrize('scheduler, message', [
    (dict(COSINE, periods=[10, 10]), r'periods \[10, 10\] and restart_weights \[1\] must have the same length'),
    ({'type': 'MultiStepRestartLR', 'milestones': [5], 'restarts': [0, 10]},
     r'restarts \[0, 10\] and restart_weights \[1\] must have the same length'),
    (dict(COSINE, periods=[0, 20], restart_weights=[1, 1]), r"'train.scheduler.periods\[0\]' must be >= 1, got 0"),
])
def test_scheduler_preconditions_are_checked(scheduler, message, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key('train.scheduler', scheduler))
    with pytest.raises(OptionError, match=message):
        parse(tmp_path, path)


def test_extending_a_finished_cosine_run_past_its_periods_is_refused_before_resuming(tmp_path, clean_root,
                                                                                   paired_root):
    path = tiny(tmp_path, clean_root, paired_root, lambda o: (
        o['train'].update(scheduler=COSINE, total_iter=4), o['logger'].update(save_checkpoint_freq=4),
        o['val'].update(val_freq=4), o['logger'].update(use_tb_logger=False)))
    run_train(str(tmp_path), ['-opt', path])
    states = osp.join(tmp_path, 'experiments', 'tiny', 'training_states')
    with pytest.raises(OptionError, match=r"\[4\] add up to 4, fewer than 'train.total_iter' 8"):
        run_train(str(tmp_path), ['-opt', path, '--auto_resume', '--force_yml', 'train:total_iter=8'])
    assert sorted(os.listdir(states)) == ['4.state', '4.validated']  # nothing written by the refused resume


# Item 6: one root for relative paths and outputs: the working folder (the entry points), or --root.
def relative_options(tmp_path, clean_root, paired_root):
    """tiny.yml with its data, and the weights of a test, named relative to tmp_path."""
    val = {'dataroot_lq': 'paired/lq', 'dataroot_gt': 'paired/gt', 'meta_file': 'paired/meta.txt'}
    return tiny(tmp_path, clean_root, paired_root, lambda o: (
        o['datasets']['train'].update(dataroot_gt=osp.relpath(clean_root, tmp_path)), o['datasets']['val'].update(val),
        o['path'].update(pretrain_network_g='weights/w.pth')))


def test_relative_paths_and_outputs_are_under_the_root(tmp_path, clean_root, paired_root):
    path = relative_options(tmp_path, clean_root, paired_root)
    opt, _ = parse(tmp_path, path)
    root = str(tmp_path)
    assert opt['path']['root'] == root
    assert opt['datasets']['train']['dataroot_gt'] == clean_root
    assert opt['datasets']['val']['meta_file'] == osp.join(paired_root, 'meta.txt')
    assert opt['path']['pretrain_network_g'] == osp.join(root, 'weights', 'w.pth')
    assert opt['path']['experiments_root'] == osp.join(root, 'experiments', 'tiny')


def test_root_option_moves_relative_paths_and_outputs(tmp_path, clean_root, paired_root):
    path = relative_options(tmp_path, clean_root, paired_root)
    other = tmp_path / 'other'
    other.mkdir()
    opt, _ = parse_options('/nonexistent', True, ['-opt', path, '--root', str(other)])
    assert opt['path']['root'] == str(other)
    assert opt['datasets']['val']['dataroot_lq'] == str(other / 'paired' / 'lq')
    assert opt['path']['experiments_root'] == str(other / 'experiments' / 'tiny')
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path, '--root', str(other)])
    assert opt['path']['results_root'] == str(other / 'results' / 'tiny')
    with pytest.raises(OptionError, match=r'^--root .*nothere: folder not found$'):
        parse_options(str(tmp_path), True, ['-opt', path, '--root', str(tmp_path / 'nothere')])


def test_scripts_run_from_another_folder_read_and_write_there(tmp_path, clean_root, paired_root):
    # `python /path/to/train.py` from the data's folder: data, outputs and the trained weights all under it.
    path = relative_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: (o['train'].update(total_iter=2), o['val'].update(val_freq=2),
                          o['logger'].update(use_tb_logger=True), o['path'].pop('pretrain_network_g')))
    env = dict(os.environ, PYTHONPATH=REPO)
    repo_outputs = {d: sorted(os.listdir(osp.join(REPO, d))) for d in ('experiments', 'results', 'tb_logger')
                    if osp.isdir(osp.join(REPO, d))}
    proc = subprocess.run([sys.executable, osp.join(REPO, 'train.py'), '-opt', path, '--force_yml',
                           'train:optim_g:lr=2e-3'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert osp.isfile(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    assert glob.glob(str(tmp_path / 'tb_logger' / 'tiny' / 'events.*'))
    log = open(glob.glob(str(tmp_path / 'experiments' / 'tiny' / 'train_tiny_*.log'))[0]).read()
    assert f'Root folder: {tmp_path}' in log and "'train.optim_g.lr': read the string '2e-3'" in log
    test_path = make_test_options(tmp_path, 'paired', 'experiments/tiny/models/net_g_latest.pth')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'test.py'), '-opt', test_path, '--force_yml',
                           'val:save_img=false'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert osp.isfile(tmp_path / 'results' / 'tiny_test' / 'metrics.json')
    assert repo_outputs == {d: sorted(os.listdir(osp.join(REPO, d))) for d in ('experiments', 'results', 'tb_logger')
                            if osp.isdir(osp.join(REPO, d))}  # nothing beside train.py


@pytest.mark.parametrize('name', ['../../victim', '..', '.', '/tmp/abs', 'a/b', ''])
def test_run_name_that_is_not_one_folder_name_is_refused_before_anything_is_touched(tmp_path, clean_root, paired_root,
                                                                                   name):
    victim = tmp_path.parent / 'victim'
    victim.mkdir(exist_ok=True)
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError, match=r"'name' must be a plain name \(no '/', not '.' or '..'\)"):
        run_train(str(tmp_path), ['-opt', path, '--force_yml', f'name={name!r}'])
    assert victim.is_dir() and not list(tmp_path.parent.glob('victim_archived_*'))
    assert not (tmp_path / 'experiments').exists()


def test_test_set_name_that_is_not_one_folder_name_is_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'net.pth')
    with pytest.raises(OptionError, match=r"'datasets.test.name' must be a plain name"):
        parse(tmp_path, path, 'datasets:test:name=../escape', is_train=False)


def test_two_test_sets_with_one_name_are_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'net.pth')
    edit(path, lambda o: o['datasets'].update(test_2=dict(o['datasets']['test'])))
    with pytest.raises(OptionError, match=r"'datasets.test_2.name': 'tiny_test_set' is also the name of "
                                          r"'datasets.test'"):
        parse(tmp_path, path, is_train=False)


@pytest.mark.parametrize('force, message', [
    ('train:optim_g:lr=-1', 'Invalid learning rate: -1'),
    ('train:optim_g:betas=[2, 3]', 'Invalid beta parameter at index 0: 2'),
    ('train:optim_g:weight_decay=-1', 'Invalid weight_decay value: -1')])
def test_optimizer_value_torch_refuses_is_named_with_its_key_at_parse_time(tmp_path, clean_root, paired_root, force,
                                                                          message):
    with pytest.raises(OptionError, match=rf"'train.optim_g': {re.escape(message)}"):
        parse(tmp_path, tiny(tmp_path, clean_root, paired_root), force)


def test_options_file_that_is_not_utf8_text_is_named(tmp_path):
    path = tmp_path / 'bin.yml'
    path.write_bytes(b'name: tiny\n\xff\xfe\n')
    with pytest.raises(OptionError, match=rf'{re.escape(str(path))} line 2'):
        parse(tmp_path, str(path))


def test_bad_check_images_value_is_refused_at_parse_time(tmp_path, clean_root, paired_root):
    with pytest.raises(OptionError, match=r"'datasets.val.check_images' must be 'paths' or 'headers', got 'all'"):
        parse(tmp_path, tiny(tmp_path, clean_root, paired_root), 'datasets:val:check_images=all')
