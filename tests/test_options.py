"""Options files: safe loading (unsafe tags refused, never executed) and early, named errors for typos."""
import pytest
from conftest import TASKS, assert_names, edit, make_options

from basicsr_tur.utils.option_file import OptionError, load_yaml
from basicsr_tur.utils.options import parse_options


def test_python_object_tag_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.yml'
    path.write_text(f'name: x\nrun: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(OptionError) as err:
        load_yaml(str(path))
    assert_names(err, path, 'line 2')
    assert not marker.exists()


def test_mapping_order_and_values_are_kept(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text('b: 1\na: !!float 1e-3\nc: [1, 2]\n')
    data = load_yaml(str(path))
    assert list(data) == ['b', 'a', 'c'] and data['a'] == 1e-3


NAMED_MISTAKES = {  # a mistake in an options file -> the names its one-line error holds
    'typo_in_a_key': (lambda o: o['train'].update(ema_decy=0.9), ("'train.ema_decy'", "'ema_decay'")),
    'typo_in_a_dataset_key': (lambda o: o['datasets']['train'].update(gt_sise=32),
                              ("'datasets.train.gt_sise'", "'gt_size'")),
    'unknown_arch': (lambda o: o['network_g'].update(type='SRResNte'),
                     ("'network_g.type'", "'SRResNte'", "'SRResNet'")),
    'unknown_arch_argument': (lambda o: o['network_g'].update(num_blocks=4),
                              ("'network_g.num_blocks'", "'num_block'")),
    'unknown_loss': (lambda o: o['train'].update(pixel_opt={'type': 'TURloss'}),
                     ("'train.pixel_opt.type'", "'TURloss'", "'TURLoss'")),
    'unknown_dataset_type': (lambda o: o['datasets']['val'].update(type='PairedTaskDatset'),
                             ("'datasets.val.type'", "'PairedTaskDatset'")),
    'non_boolean_switch_of_an_arch': (lambda o: o['network_g'].update(uncertainty_detach='maybe'),
                                      ("'network_g.uncertainty_detach'", "'maybe'")),
    'text_where_an_arch_takes_a_number': (lambda o: o['network_g'].update(num_feat='eight'),
                                          ("'network_g.num_feat'", "'eight'")),
    'unknown_tur_variant': (lambda o: o['train']['pixel_opt'].update(variant='cumulativ'),
                            ("'train.pixel_opt'", 'variant', 'per_task', 'cumulative', "'cumulativ'")),
    'negative_tur_eps': (lambda o: o['train']['pixel_opt'].update(eps=-1.0), ("'train.pixel_opt'", 'eps', '-1.0')),
    'text_tur_eps': (lambda o: o['train']['pixel_opt'].update(eps='abc'), ("'train.pixel_opt.eps'", "'abc'")),
    'airnet_switch_on_another_model': (lambda o: o['train'].update(fix_encoder=True),
                                       ("'train.fix_encoder'", 'AirNetModel', "'TURModel'")),
    'airnet_path_on_another_model': (lambda o: o['path'].update(pretrain_network_encoder='All.pth'),
                                     ("'path.pretrain_network_encoder'", 'AirNetModel')),
    'non_boolean_fix_encoder': (lambda o: o['train'].update(fix_encoder='maybe'),
                                ("'train.fix_encoder'", "'maybe'")),
    'detached_head_without_a_head': (lambda o: o['network_g'].update(uncertainty_head=False, uncertainty_detach=True),
                                     ("'network_g.uncertainty_detach: true'", "'network_g.uncertainty_head: true'")),
    # Issue 20: the step pools per task over the top-level list; a run that named its tasks in the datasets only
    # failed on its first batch (review finding).
    'training_without_a_tasks_list': (lambda o: (o.pop('tasks'), o['datasets']['train'].update(tasks=TASKS)),
                                      ("'tasks'",)),
}


@pytest.mark.parametrize('mistake', NAMED_MISTAKES)
def test_mistake_is_named(mistake, tmp_path, clean_root, paired_root):
    change, names = NAMED_MISTAKES[mistake]
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, change)
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, *names)


def test_force_yml_values_are_read_as_yaml_not_code(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'train:ema_decay=0.5',
                                                  'name=__import__("os")'])
    assert opt['train']['ema_decay'] == 0.5
    assert opt['name'] == '__import__("os")'
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'train:optim_g:lr=2e-3', 'name=1e'])
    assert opt['train']['optim_g']['lr'] == 2e-3 and opt['name'] == '1e'


def test_missing_file_is_named(tmp_path):
    with pytest.raises(OptionError) as err:
        load_yaml(str(tmp_path / 'nothere.yml'))
    assert_names(err, tmp_path / 'nothere.yml')


def test_force_yml_reaches_into_lists_by_index(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: o['datasets'].update(train={
        'name': 'mix', 'type': 'MixedTaskDataset', 'gt_size': 24, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
        'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root}]}))
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml',
                                                  'datasets:train:parts:0:synth_tasks=[noise]'])
    assert opt['datasets']['train']['parts'][0]['synth_tasks'] == ['noise']
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'datasets:train:parts:3:seed=1'])
    assert_names(err, "--force_yml 'datasets:train:parts:3:seed'", "'3'")


@pytest.mark.parametrize('key, value', [('prefetch_factor', 4), ('num_worker_per_gpu', 4), ('persistent_workers', True),
                                        ('batch_size_per_gpu', 8)])
def test_a_loader_option_in_a_part_is_refused_naming_where_it_belongs(key, value, tmp_path, clean_root, paired_root):
    # A MixedTaskDataset's parts are not loaded by themselves: their loader keys would be silently ignored.
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: o['datasets'].update(train={
        'name': 'mix', 'type': 'MixedTaskDataset', 'gt_size': 24, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
        'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root, key: value}]}))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, f"'datasets.train.parts[0].{key}'", "'datasets.train'")
