"""Each option key is declared once with a description; docs/options.md and options/schema.json
are generated from the declarations, stay in step with them, and a standard JSON-schema validator
accepts every shipped options file and refuses a misspelt key or a value of the wrong type."""
import copy
import glob
import json
from os import path as osp

import pytest
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY
from jsonschema import Draft202012Validator

from basicsr_tur.utils.option_checks import (
    CORE_KEYS,
    DATASET_COMMON,
    LOADER_KINDS,
    TEST_KEYS,
    Kind,
)
from basicsr_tur.utils.option_file import load_yaml
from basicsr_tur.utils.option_schema import (
    REFERENCE_FILE,
    REGENERATE,
    SCHEMA_FILE,
    reference_text,
    schema_text,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHIPPED = sorted(glob.glob(osp.join(ROOT, 'options', 'train', '**', '*.yml'), recursive=True)
                 + glob.glob(osp.join(ROOT, 'options', 'test', '**', '*.yml'), recursive=True))


def _declarations():
    yield from (('CORE_KEYS', k, v) for k, v in CORE_KEYS.items())
    yield from (('TEST_KEYS', k, v) for k, v in TEST_KEYS.items())
    yield from (('DATASET_COMMON', k, v) for k, v in DATASET_COMMON.items())
    yield from (('LOADER_KINDS', k, v) for k, v in LOADER_KINDS.items())
    for registry in (MODEL_REGISTRY, DATASET_REGISTRY):
        for name, component in registry:
            if component.__module__.startswith('basicsr_tur.'):
                yield from ((name, k, v) for k, v in component.OPTION_KEYS.items())


@pytest.fixture(scope='module')
def validator():
    with open(osp.join(ROOT, SCHEMA_FILE), encoding='utf-8') as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_declared_key_has_a_description():
    missing = [f'{where}: {key}' for where, key, kind in _declarations()
               if kind is None or not kind.description.strip()]
    assert not missing, f'declare these keys with Kind.doc(description): {missing}'


def test_every_datasets_key_has_a_kind():
    for name, dataset in DATASET_REGISTRY:
        if dataset.__module__.startswith('basicsr_tur.'):
            kinds = dataset.OPTION_KEYS
            assert all(isinstance(kind, Kind) for kind in kinds.values()), name


@pytest.mark.parametrize('file, text', [(SCHEMA_FILE, schema_text),
                                        (REFERENCE_FILE, reference_text)])
def test_generated_file_is_up_to_date(file, text):
    with open(osp.join(ROOT, file), encoding='utf-8') as f:
        committed = f.read()
    assert committed == text(), f'{file} is out of date: run `{REGENERATE}` and commit it'


def test_there_are_shipped_options_files():
    assert len(SHIPPED) > 20


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: osp.relpath(p, ROOT))
def test_shipped_options_file_validates_against_the_schema(validator, path):
    errors = [f'{"/".join(map(str, e.absolute_path))}: {e.message}'
              for e in validator.iter_errors(load_yaml(path))]
    assert not errors


@pytest.fixture(scope='module')
def shipped_opt():
    return load_yaml(osp.join(ROOT, 'options', 'train', 'demo', 'SRResNet_TUR.yml'))


def _refused(validator, opt, key):
    """The schema errors of opt whose path or message names key."""
    return [e for e in validator.iter_errors(opt)
            if key in '/'.join(map(str, e.absolute_path)) or key in e.message]


def test_a_misspelt_top_level_key_fails_validation(validator, shipped_opt):
    opt = copy.deepcopy(shipped_opt)
    opt['manual_sed'] = 0
    assert _refused(validator, opt, 'manual_sed')


def test_a_misspelt_section_key_fails_validation(validator, shipped_opt):
    opt = copy.deepcopy(shipped_opt)
    opt['train']['ema_decy'] = 0.999
    assert _refused(validator, opt, 'ema_decy')


@pytest.mark.parametrize('section, key, value', [
    (None, 'num_gpu', 'two'), ('train', 'total_iter', 'many'), ('train', 'mixed_precision', 'fp8'),
    ('val', 'save_img', 'yes')])
def test_a_value_of_the_wrong_type_fails_validation(validator, shipped_opt, section, key, value):
    opt = copy.deepcopy(shipped_opt)
    (opt if section is None else opt.setdefault(section, {}))[key] = value
    assert _refused(validator, opt, key)


def test_an_unknown_dataset_key_fails_validation(validator, shipped_opt):
    opt = copy.deepcopy(shipped_opt)
    next(iter(opt['datasets'].values()))['gt_sise'] = 64
    assert _refused(validator, opt, 'gt_sise')


def test_an_arch_argument_of_the_wrong_type_fails_validation(validator, shipped_opt):
    opt = copy.deepcopy(shipped_opt)
    opt['network_g']['uncertainty_head'] = 'maybe'
    assert _refused(validator, opt, 'uncertainty_head')


def test_an_unknown_arch_argument_fails_validation(validator, shipped_opt):
    opt = copy.deepcopy(shipped_opt)
    opt['network_g']['num_feet'] = 8
    assert _refused(validator, opt, 'num_feet')
