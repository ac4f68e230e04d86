"""Options files: safe loading (unsafe tags refused, never executed) and early, named errors for typos."""
import pytest
import yaml
from conftest import make_options

from basicsr_tur.utils.options import OptionError, load_yaml, parse_options


def edit(path, change):
    """Load an options file, apply change(opt) and write it back."""
    with open(path) as f:
        opt = yaml.safe_load(f)
    change(opt)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)


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
