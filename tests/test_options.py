"""Options files: safe loading (unsafe tags refused, never executed) and early, named errors for typos."""
import pytest
from conftest import TASKS, edit, make_options

from basicsr_tur.utils.option_file import OptionError, load_yaml
from basicsr_tur.utils.options import parse_options


def test_python_object_tag_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.yml'
    path.write_text(f'name: x\nrun: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(OptionError, match=r'evil.yml: line 2: refused unsafe'):
        load_yaml(str(path))
    assert not marker.exists()


def test_mapping_order_and_values_are_kept(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text('b: 1\na: !!float 1e-3\nc: [1, 2]\n')
    data = load_yaml(str(path))
    assert list(data) == ['b', 'a', 'c'] and data['a'] == 1e-3


NAMED_MISTAKES = {  # a mistake in an options file -> the one-line error that names it
    'typo_in_a_key': (lambda o: o['train'].update(ema_decy=0.9),
                      r"unknown key 'train.ema_decy'; did you mean 'ema_decay'"),
    'typo_in_a_dataset_key': (lambda o: o['datasets']['train'].update(gt_sise=32),
                              r"'datasets.train.gt_sise'; did you mean 'gt_size'"),
    'unknown_arch': (lambda o: o['network_g'].update(type='SRResNte'),
                     r"network_g.type': unknown arch 'SRResNte'; did you mean 'SRResNet'"),
    'unknown_arch_argument': (lambda o: o['network_g'].update(num_blocks=4),
                              r"'network_g.num_blocks'; did you mean 'num_block'"),
    'unknown_loss': (lambda o: o['train'].update(pixel_opt={'type': 'TURloss'}),
                     r"unknown loss 'TURloss'; did you mean 'TURLoss'"),
    'unknown_dataset_type': (lambda o: o['datasets']['val'].update(type='PairedTaskDatset'),
                             r"unknown dataset 'PairedTaskDatset'"),
    'non_boolean_switch_of_an_arch': (lambda o: o['network_g'].update(uncertainty_detach='maybe'),
                                      r"'network_g.uncertainty_detach' must be true or false, got 'maybe'"),
    'text_where_an_arch_takes_a_number': (lambda o: o['network_g'].update(num_feat='eight'),
                                          r"'network_g.num_feat' must be an integer, got 'eight'"),
    'unknown_tur_variant': (lambda o: o['train']['pixel_opt'].update(variant='cumulativ'),
                            r"'train.pixel_opt': TURLoss: variant must be one of per_task, cumulative"),
    'negative_tur_eps': (lambda o: o['train']['pixel_opt'].update(eps=-1.0),
                         r"'train.pixel_opt': TURLoss: eps must be >= 0, got -1.0"),
    'text_tur_eps': (lambda o: o['train']['pixel_opt'].update(eps='abc'),
                     r"'train.pixel_opt.eps' must be a number or null, got 'abc'"),
    'airnet_switch_on_another_model': (lambda o: o['train'].update(fix_encoder=True),
                                       r"'train.fix_encoder' is read by model_type AirNetModel only, not 'TURModel'"),
    'airnet_path_on_another_model': (lambda o: o['path'].update(pretrain_network_encoder='All.pth'),
                                     r"'path.pretrain_network_encoder' is read by model_type AirNetModel only"),
    'non_boolean_fix_encoder': (lambda o: o['train'].update(fix_encoder='maybe'),
                                r"'train.fix_encoder' must be true or false or null, got 'maybe'"),
    'detached_head_without_a_head': (lambda o: o['network_g'].update(uncertainty_head=False, uncertainty_detach=True),
                                     r"'network_g.uncertainty_detach: true' does nothing without"),
    # Issue 20: the step pools per task over the top-level list; a run that named its tasks in the datasets only
    # failed on its first batch (review finding).
    'training_without_a_tasks_list': (lambda o: (o.pop('tasks'), o['datasets']['train'].update(tasks=TASKS)),
                                      r"required key 'tasks' is missing"),
}


@pytest.mark.parametrize('mistake', NAMED_MISTAKES)
def test_mistake_is_named(mistake, tmp_path, clean_root, paired_root):
    change, message = NAMED_MISTAKES[mistake]
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, change)
    with pytest.raises(OptionError, match=message):
        parse_options(str(tmp_path), True, ['-opt', path])


def test_force_yml_values_are_read_as_yaml_not_code(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'train:ema_decay=0.5',
                                                  'name=__import__("os")'])
    assert opt['train']['ema_decay'] == 0.5
    assert opt['name'] == '__import__("os")'
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'train:optim_g:lr=2e-3', 'name=1e'])
    assert opt['train']['optim_g']['lr'] == 2e-3 and opt['name'] == '1e'


def test_missing_file_is_named(tmp_path):
    with pytest.raises(OptionError, match='nothere.yml'):
        load_yaml(str(tmp_path / 'nothere.yml'))


def test_force_yml_reaches_into_lists_by_index(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: o['datasets'].update(train={
        'name': 'mix', 'type': 'MixedTaskDataset', 'gt_size': 24, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
        'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root}]}))
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml',
                                                  'datasets:train:parts:0:synth_tasks=[noise]'])
    assert opt['datasets']['train']['parts'][0]['synth_tasks'] == ['noise']
    with pytest.raises(OptionError, match=r"'3' is not an index of a list of 1 items"):
        parse_options(str(tmp_path), True, ['-opt', path, '--force_yml', 'datasets:train:parts:3:seed=1'])


@pytest.mark.parametrize('key, value', [('prefetch_factor', 4), ('num_worker_per_gpu', 4), ('persistent_workers', True),
                                        ('batch_size_per_gpu', 8)])
def test_a_loader_option_in_a_part_is_refused_naming_where_it_belongs(key, value, tmp_path, clean_root, paired_root):
    # A MixedTaskDataset's parts are not loaded by themselves: their loader keys would be silently ignored.
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: o['datasets'].update(train={
        'name': 'mix', 'type': 'MixedTaskDataset', 'gt_size': 24, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
        'parts': [{'type': 'SyntheticTaskDataset', 'dataroot_gt': clean_root, key: value}]}))
    with pytest.raises(OptionError, match=rf"'datasets.train.parts\[0\].{key}': a loader option, read from "
                                          r"'datasets.train' only"):
        parse_options(str(tmp_path), True, ['-opt', path])
