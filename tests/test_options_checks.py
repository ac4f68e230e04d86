"""Every mistake in an options file or a --force_yml is one named line at parse time, before anything is written:
sub-options passed as keyword arguments, value types (numeric strings read as numbers, with a note), --force_yml
syntax, duplicate keys, dataset types and schedule lengths; and relative paths and outputs are under one root."""
import glob
import os
import subprocess
import sys
from os import path as osp

import pytest
from conftest import assert_names, edit, make_options, make_test_options

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
SUB_OPTIONS = {  # key, value, the names the one line must hold (the key at fault, a suggestion)
    'optimizer_key': ('train.optim_g', {'type': 'Adam', 'lr': 1e-3, 'weight_decy': 0.1},
                      ('train.optim_g.weight_decy', 'weight_decay')),
    'optimizer_key_without_a_close_match': ('train.optim_g', {'type': 'Adam', 'lerning_rate': 2e-3},
                                            ('train.optim_g.lerning_rate', 'amsgrad', 'betas')),
    'optimizer_without_lr': ('train.optim_g', {'type': 'SGD', 'momentum': 0.9}, ('train.optim_g.lr',)),
    'optimizer_type': ('train.optim_g', {'type': 'AdamWW', 'lr': 1e-3}, ('train.optim_g.type', 'AdamWW', 'AdamW')),
    'scheduler_key': ('train.scheduler', {'type': 'MultiStepLR', 'milstones': [1000], 'gamma': 0.5},
                      ('train.scheduler.milstones', 'milestones')),
    'scheduler_type': ('train.scheduler', {'type': 'StepLR', 'milestones': [10]},
                       ('train.scheduler.type', 'StepLR', 'MultiStepLR', 'MultiStepRestartLR',
                        'CosineAnnealingRestartLR')),
    'scheduler_without_periods': ('train.scheduler', {'type': 'CosineAnnealingRestartLR', 'eta_min': 0.0},
                                  ('train.scheduler.periods',)),
    'disk_backend_argument': ('datasets.train.io_backend', {'type': 'disk', 'db_path': 'x'},
                              ('datasets.train.io_backend.db_path',)),
    'backend_type': ('datasets.val.io_backend', {'type': 'lmbd'}, ('datasets.val.io_backend.type', 'lmbd', 'lmdb')),
    'lmdb_backend_flag': ('datasets.train.io_backend', {'type': 'lmdb', 'readahed': False},
                          ('datasets.train.io_backend.readahed', 'readahead')),
    'metric_key': ('val.metrics.psnr', {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_chanel': True},
                   ('val.metrics.psnr.test_y_chanel', 'test_y_channel')),
    'metric_crop_key': ('val.metrics.psnr', {'type': 'calculate_psnr', 'crop_boarder': 4},
                        ('val.metrics.psnr.crop_boarder', 'crop_border')),
    'metric_key_the_metric_does_not_take': ('val.metrics.psnr',
                                            {'type': 'calculate_psnr_skimage', 'crop_border': 0,
                                             'input_order': 'HWC'},
                                            ('val.metrics.psnr.input_order',)),
    'metric_type': ('val.metrics.psnr', {'type': 'calc_psnr', 'crop_border': 0},
                    ('val.metrics.psnr.type', 'calc_psnr', 'calculate_psnr')),
    'metric_without_crop_border': ('val.metrics.ssim', {'type': 'calculate_ssim'}, ('val.metrics.ssim.crop_border',)),
    'compile_argument': ('train.compile', {'mode': 'default', 'fullgrap': True},
                         ('train.compile.fullgrap', 'fullgraph')),
    'dist_params_key': ('dist_params', {'backend': 'gloo', 'prot': 29500}, ('dist_params.prot', 'port')),
    'wandb_project': ('logger.wandb', {'project': 'mine'}, ('logger.wandb.project', 'wandb')),
}


@pytest.mark.parametrize('case', SUB_OPTIONS)
def test_sub_options_are_checked_against_what_they_are_passed_to(case, tmp_path, clean_root, paired_root):
    key, value, names = SUB_OPTIONS[case]
    path = tiny(tmp_path, clean_root, paired_root, set_key(key, value))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    assert_names(err, path, *names)
    assert sorted(os.listdir(tmp_path)) == sorted(['clean', 'paired', osp.basename(path)])  # nothing written


def test_metric_typo_in_test_options_is_refused_not_scored_as_rgb(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'val:metrics:psnr:test_y_chanel=true', is_train=False)
    assert_names(err, path, 'val.metrics.psnr.test_y_chanel', 'test_y_channel')


@pytest.mark.parametrize('metric', ['calculate_psnr_pt', 'calculate_ssim_pt'])
def test_basicsr_tensor_metrics_are_refused_naming_the_key(metric, tmp_path, paired_root):
    # They score torch tensors; validation gives numpy images (AttributeError at the first image).
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, f'val:metrics:ssim={{type: {metric}, crop_border: 0}}',
              is_train=False)
    assert_names(err, path, "'val.metrics.ssim.type'", metric)


def test_force_yml_typo_in_an_optimizer_is_named(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'train:optim_g:lerning_rate=1e-3')
    assert_names(err, path, 'train.optim_g.lerning_rate')


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


WRONG_VALUES = [  # key, value: the one line names the file, the key and the value
    ('train.optim_g.lr', 'fast'),
    ('num_gpu', 'zero'),
    ('manual_seed', 'abc'),
    ('datasets.train.num_worker_per_gpu', 'two'),
    ('datasets.train.batch_size_per_gpu', 2.5),
    ('datasets.val.use_rot', 'yes please'),
    ('logger.print_freq', 0),
    ('path.strict_load_g', 1),
    ('train.optim_g.betas', [0.9, 'fast']),
    ('train.scheduler.gamma', 'half'),
    ('train.pixel_opt.eps', 'tiny'),
    ('val.metrics.psnr.test_y_channel', 'yes'),
    ('train.mixed_precision', 'fp32'),
    ('datasets.train.sampler', 'balance'),
    ('train.optim_g.lr', 'nan'),
]


@pytest.mark.parametrize('key, value', WRONG_VALUES, ids=[f'{k}={v}' for k, v in WRONG_VALUES])
def test_wrong_value_type_is_named(key, value, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key(key, value))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    if isinstance(value, list):  # the list's item at fault
        key, value = f'{key}[1]', value[1]
    assert_names(err, path, f"'{key}'", value)


@pytest.mark.parametrize('entry, key, value', [('num_gpu=two', 'num_gpu', 'two'),
                                              ('train:optim_g:lr=fast', 'train.optim_g.lr', 'fast')])
def test_wrong_value_from_force_yml_is_named_like_one_in_the_file(entry, key, value, tmp_path, clean_root,
                                                                  paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, entry)
    assert_names(err, path, f"'{key}'", value)


def test_wrong_num_gpu_in_test_options_is_named(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    edit(path, set_key('num_gpu', 'zero'))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, is_train=False)
    assert_names(err, path, "'num_gpu'", 'zero')


# R6: a malformed --force_yml is one line; a YAML tag is refused and never constructed.
@pytest.mark.parametrize('entry, names', [
    ('train:scheduler:milestones=[1000', ("--force_yml 'train:scheduler:milestones=[1000'",)),
    ('network_g:type:foo=1', ("--force_yml 'network_g:type:foo'", "'network_g.type'")),
    ('datasets:train:gt_size:0=1', ("--force_yml 'datasets:train:gt_size:0'", "'datasets.train.gt_size'")),
    ('total_iter', ("--force_yml 'total_iter'", 'KEY=VALUE')),
    ('train::total_iter=3', ("--force_yml 'train::total_iter=3'",)),
    ('train:optim_g={type: Adam, lr: 1, lr: 2}', ("--force_yml 'train:optim_g={type: Adam, lr: 1, lr: 2}'", "'lr'")),
])
def test_malformed_force_yml_is_one_line(entry, names, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, entry)
    assert_names(err, *names)


@pytest.mark.parametrize('value', ["!!python/object/apply:os.system ['touch {marker}']", '!!str name',
                                   "[1, !!python/name:os.system '']"])
def test_force_yml_tag_is_refused_and_never_run(value, tmp_path, clean_root, paired_root):
    marker = tmp_path / 'marker'
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'name=' + value.format(marker=marker))
    assert_names(err, "--force_yml 'name'").startswith('--force_yml')
    assert not marker.exists()


# R18: a key named twice in one mapping, at any depth.
def test_duplicate_top_level_key_is_refused(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    lines = open(path).read().splitlines()
    with open(path, 'a') as f:
        f.write('name: other\n')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    assert_names(err, path, f'line {len(lines) + 1}', "'name'", 'line 1')


def test_duplicate_nested_key_is_refused(tmp_path):
    path = tmp_path / 'dup.yml'
    path.write_text('name: x\ntrain:\n  total_iter: 10\n  optim_g: {type: Adam, lr: 1.0e-3}\n  total_iter: 20\n')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, str(path))
    assert_names(err, path, 'line 5', "'total_iter'", 'line 3')


def test_merge_key_may_override_what_it_merges(tmp_path):
    from basicsr_tur.utils.option_file import load_yaml
    path = tmp_path / 'merge.yml'
    path.write_text('base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 5\n')
    assert load_yaml(str(path))['d'] == {'x': 5, 'y': 2}


# R17: only task-labelled datasets (TURModel needs each sample's task id).
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_basicsr_dataset_without_task_ids_is_refused(phase, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key(f'datasets.{phase}.type', 'PairedImageDataset'))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    assert_names(err, path, f"'datasets.{phase}.type'", 'PairedImageDataset', 'PairedTaskDataset')


def test_basicsr_dataset_in_test_options_is_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'w.pth')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'datasets:test:type=PairedImageDataset', is_train=False)
    assert_names(err, path, "'datasets.test.type'", 'PairedImageDataset', 'PairedTaskDataset')


# F11 and the schedulers' other preconditions.
COSINE = {'type': 'CosineAnnealingRestartLR', 'periods': [4], 'restart_weights': [1], 'eta_min': 1.0e-7}


def test_cosine_periods_shorter_than_total_iter_are_refused(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key('train.scheduler', dict(COSINE, periods=[5, 5],
                                                                                       restart_weights=[1, 0.5])))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    assert_names(err, path, "'train.scheduler.periods' [5, 5]", "'train.total_iter' 20", 'periods=[5, 15]')


@pytest.mark.parametrize('scheduler, names', [
    (dict(COSINE, periods=[10, 10]), ("'train.scheduler'", 'periods [10, 10]', 'restart_weights [1]')),
    ({'type': 'MultiStepRestartLR', 'milestones': [5], 'restarts': [0, 10]},
     ("'train.scheduler'", 'restarts [0, 10]', 'restart_weights [1]')),
    (dict(COSINE, periods=[0, 20], restart_weights=[1, 1]), ("'train.scheduler.periods[0]'", '0')),
])
def test_scheduler_preconditions_are_checked(scheduler, names, tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root, set_key('train.scheduler', scheduler))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path)
    assert_names(err, path, *names)


def test_extending_a_finished_cosine_run_past_its_periods_is_refused_before_resuming(tmp_path, clean_root,
                                                                                   paired_root):
    path = tiny(tmp_path, clean_root, paired_root, lambda o: (
        o['train'].update(scheduler=COSINE, total_iter=4), o['logger'].update(save_checkpoint_freq=4),
        o['val'].update(val_freq=4), o['logger'].update(use_tb_logger=False)))
    run_train(str(tmp_path), ['-opt', path])
    states = osp.join(tmp_path, 'experiments', 'tiny', 'training_states')
    with pytest.raises(OptionError) as err:
        run_train(str(tmp_path), ['-opt', path, '--auto_resume', '--force_yml', 'train:total_iter=8'])
    assert_names(err, "'train.scheduler.periods' [4]", "'train.total_iter' 8")
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
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path, '--root', str(tmp_path / 'nothere')])
    assert_names(err, f"--root {tmp_path / 'nothere'}")


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
    with pytest.raises(OptionError) as err:
        run_train(str(tmp_path), ['-opt', path, '--force_yml', f'name={name!r}'])
    assert_names(err, path, "'name'", repr(name))
    assert victim.is_dir() and not list(tmp_path.parent.glob('victim_archived_*'))
    assert not (tmp_path / 'experiments').exists()


def test_test_set_name_that_is_not_one_folder_name_is_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'net.pth')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'datasets:test:name=../escape', is_train=False)
    assert_names(err, path, "'datasets.test.name'", '../escape')


def test_two_test_sets_with_one_name_are_refused(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, 'net.pth')
    edit(path, lambda o: o['datasets'].update(test_2=dict(o['datasets']['test'])))
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, is_train=False)
    assert_names(err, path, "'datasets.test_2.name'", 'tiny_test_set', "'datasets.test'")


@pytest.mark.parametrize('force, names', [  # torch's own words name the argument and the value
    ('train:optim_g:lr=-1', ('learning rate', '-1')),
    ('train:optim_g:betas=[2, 3]', ('beta', '2')),
    ('train:optim_g:weight_decay=-1', ('weight_decay', '-1'))])
def test_optimizer_value_torch_refuses_is_named_with_its_key_at_parse_time(tmp_path, clean_root, paired_root, force,
                                                                          names):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, force)
    assert_names(err, path, "'train.optim_g'", *names)


def test_options_file_that_is_not_utf8_text_is_named(tmp_path):
    path = tmp_path / 'bin.yml'
    path.write_bytes(b'name: tiny\n\xff\xfe\n')
    with pytest.raises(OptionError) as err:
        parse(tmp_path, str(path))
    assert_names(err, f'{path} line 2')


def test_bad_check_images_value_is_refused_at_parse_time(tmp_path, clean_root, paired_root):
    path = tiny(tmp_path, clean_root, paired_root)
    with pytest.raises(OptionError) as err:
        parse(tmp_path, path, 'datasets:val:check_images=all')
    assert_names(err, path, "'datasets.val.check_images'", "'paths'", "'headers'", "'all'")
