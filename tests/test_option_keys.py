"""Each component declares the option keys it reads: a model's OPTION_KEYS are accepted for that model only, a
test run's keys (`published`) outside training only, and a model that declares none is refused."""
from os import path as osp

import pytest
from basicsr.utils.registry import MODEL_REGISTRY
from conftest import assert_names, edit, make_options, make_test_options

from basicsr_tur.models.tur_model import TURModel
from basicsr_tur.utils.option_checks import BOOL, PATH
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options


class KeyedModel(TURModel):
    """A TURModel that reads two keys of its own (never built: only its options are checked)."""

    OPTION_KEYS = {**TURModel.OPTION_KEYS, 'train.keyed_switch': BOOL, 'path.pretrain_keyed': PATH}


@pytest.fixture(scope='module', autouse=True)
def keyed_model():
    MODEL_REGISTRY.register(KeyedModel)
    yield
    MODEL_REGISTRY._obj_map.pop('KeyedModel')  # basicsr's Registry has no unregister


def options(tmp_path, clean_root, paired_root, model_type, **sets):
    """The tiny training options for model_type, with `section.key=value` pairs of sets (dots as '__')."""
    path = make_options(tmp_path, clean_root, paired_root, model_type=model_type)

    def change(opt):
        for dotted, value in sets.items():
            section, key = dotted.split('__')
            opt.setdefault(section, {})[key] = value
    edit(path, change)
    return path


def test_a_models_declared_key_is_accepted_for_that_model(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'KeyedModel', train__keyed_switch=True)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    assert opt['train']['keyed_switch'] is True


def test_a_models_declared_key_is_refused_for_another_model_naming_its_reader(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'TURModel', train__keyed_switch=True)
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'train.keyed_switch'", 'KeyedModel', "'TURModel'")


def test_a_models_declared_key_takes_the_kind_it_declares(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'KeyedModel', train__keyed_switch='maybe')
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'train.keyed_switch'", "'maybe'")


def test_a_models_declared_path_is_made_absolute_under_the_root(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'KeyedModel', path__pretrain_keyed='weights/k.pth')
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    assert opt['path']['pretrain_keyed'] == osp.join(str(tmp_path), 'weights/k.pth')


def test_a_misspelt_key_of_a_model_gets_a_did_you_mean_from_its_declared_keys(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'KeyedModel', train__keyed_swich=True)
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'train.keyed_swich'", "'keyed_switch'")


def test_a_model_that_declares_no_option_keys_is_refused(tmp_path, clean_root, paired_root):
    path = options(tmp_path, clean_root, paired_root, 'SRModel')  # basicsr's, registered beside ours
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'model_type'", 'SRModel', 'OPTION_KEYS', 'AirNetModel, KeyedModel, TURModel')


def test_published_is_read_by_the_test_pipeline_only(tmp_path, paired_root):
    path = make_test_options(tmp_path, paired_root, str(tmp_path / 'w.pth'))
    (tmp_path / 'published.yml').write_text('tiny:\n  rows:\n    Paper: {sr: [30.0, 0.9]}\n')
    edit(path, lambda o: o.update(published={'file': 'published.yml', 'setting': 'tiny'}))
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path])
    assert opt['published']['file'] == osp.join(str(tmp_path), 'published.yml')
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'published'", 'test.py')


def test_an_unknown_top_level_key_lists_the_keys_a_person_writes_not_those_parse_options_sets(tmp_path, clean_root,
                                                                                              paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda o: o.update(zzz_unknown=1))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'zzz_unknown'", 'allowed: ')
    listed = str(err.value).split('allowed: ')[1].split(', ')
    assert 'model_type' in listed and 'datasets' in listed
    assert not {'is_train', 'dist', 'rank', 'world_size', 'auto_resume', 'opt_path'} & set(listed)
