"""Presets of published weights: their table is consistent with our archs and published rows, a file in the authors'
layout is found and accepted, and a wrong file fails in one line naming the preset and the keys it expects.

The real files cannot be downloaded here: each test file is written with the preset's exact keys and shapes (the
network built on the meta device, every tensor a zero-stride view of one zero, so a 50M-parameter file is a few
hundred kB), laid out as its authors save it.
"""
from __future__ import annotations

import functools
import inspect
from pathlib import Path

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import assert_names

from basicsr_tur.archs.transweather_arch import TUR_ABSENT_MODULES
from basicsr_tur.archs.uncertainty import HEAD_PREFIX, HEAD_SPECS
from basicsr_tur.presets import PRESETS, check_preset_keys, find_weights, get_preset, presets_table
from basicsr_tur.utils.checkpoint import load_checkpoint, read_state_dict
from basicsr_tur.utils.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]

# How each published file is laid out (module docstring of basicsr_tur/presets.py gives the sources):
# tur: basicsr's save_network of the authors' TUR model: {'params': ..., 'params_ema': ...}, head under the authors'
#      var_conv prefix, and (Transweather) without the two modules TUR's copy comments out;
# plain: torch.save(net.state_dict()) (AirNet); lightning: {'state_dict': {'net.<key>': ...}, 'epoch': ...} (PromptIR);
# params: {'params': ...} (Restormer).
LAYOUT = {
    'uformer_tur_mio7': 'tur', 'airnet_tur_aio3': 'tur', 'transweather_tur_aio5': 'tur',
    'transweather_tur_allweather': 'tur', 'transweather_tur_realweather': 'tur',
    'airnet_aio3': 'plain', 'airnet_denoise': 'plain', 'airnet_derain': 'plain', 'airnet_dehaze': 'plain',
    'promptir_aio3': 'lightning',
    'restormer_deraining': 'params', 'restormer_motion_deblurring': 'params', 'restormer_defocus_deblurring': 'params',
    'restormer_real_denoising': 'params', 'restormer_gaussian_color_denoising_blind': 'params',
    'restormer_gaussian_gray_denoising_blind': 'params',
}


def shaped_state(name: str, **arch_opt) -> dict[str, torch.Tensor]:
    """Our state dict of preset `name` (arch_opt overriding its own), as zero-stride zeros of the right shapes."""
    return dict(_shaped_state(name, tuple(sorted(arch_opt.items()))))


@functools.lru_cache
def _shaped_state(name: str, arch_opt: tuple) -> dict[str, torch.Tensor]:
    preset = PRESETS[name]
    with torch.device('meta'):
        net = build_network({'type': preset.arch, **preset.arch_opt, **dict(arch_opt)})
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in net.state_dict().items()}


def authors_checkpoint(name: str, state: dict[str, torch.Tensor]) -> dict:
    """`state` (our keys) laid out as the authors of preset `name` save their file."""
    layout, arch = LAYOUT[name], PRESETS[name].arch
    if layout == 'tur':
        prefix = HEAD_SPECS[arch].authors_key
        state = {(prefix + k[len(HEAD_PREFIX):] if k.startswith(HEAD_PREFIX) else k): v for k, v in state.items()
                 if arch != 'Transweather' or not k.startswith(TUR_ABSENT_MODULES)}
        return {'params': state, 'params_ema': state}
    if layout == 'plain':
        return state
    if layout == 'lightning':
        return {'epoch': 149, 'global_step': 1000, 'pytorch-lightning_version': '2.0.0',
                'state_dict': {f'net.{k}': v for k, v in state.items()}}
    return {'params': state}


def write(path: Path, checkpoint: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return str(path)


@pytest.mark.parametrize('name', PRESETS)
def test_arch_is_registered_and_takes_the_preset_arguments(name):
    preset = PRESETS[name]
    inspect.signature(ARCH_REGISTRY.get(preset.arch)).bind(**preset.arch_opt)


@pytest.mark.parametrize('name', PRESETS)
def test_published_row_is_a_row_of_published_yml_for_its_setting(name):
    preset = PRESETS[name]
    if preset.published_row is None:
        return
    published = yaml.safe_load((ROOT / 'options' / 'published.yml').read_text())
    assert preset.published_row in published[preset.setting]['rows']


@pytest.mark.parametrize('name', PRESETS)
def test_file_in_the_authors_layout_is_found_and_accepted(tmp_path, name):
    preset = PRESETS[name]
    saved = write(tmp_path / 'weights' / preset.file_name, authors_checkpoint(name, shaped_state(name)))
    path = find_weights(preset, search_dirs=[str(tmp_path / 'cache'), str(tmp_path / 'weights')])
    assert path == saved
    check_preset_keys(preset, read_state_dict(path, preset.param_key), path)


@pytest.mark.parametrize('name', ['airnet_tur_aio3', 'promptir_aio3'])
def test_accepted_file_loads_strictly_into_the_preset_network(tmp_path, name):
    preset = PRESETS[name]
    path = write(tmp_path / preset.file_name, authors_checkpoint(name, shaped_state(name)))
    net = build_network({'type': preset.arch, **preset.arch_opt})
    load_checkpoint(net, path, preset.param_key, strict=True)
    assert all(not v.any() for v in net.state_dict().values() if v.is_floating_point())


def test_tur_file_without_the_head_is_accepted(tmp_path):
    state = {k: v for k, v in shaped_state('airnet_tur_aio3').items() if not k.startswith(HEAD_PREFIX)}
    check_preset_keys(PRESETS['airnet_tur_aio3'], authors_checkpoint('airnet_tur_aio3', state)['params'], 'f.pth')


def test_head_in_the_file_is_ignored_by_a_preset_without_head():
    state = shaped_state('airnet_aio3', uncertainty_head=True)
    state = {k.replace(HEAD_PREFIX, 'R.var_conv.'): v for k, v in state.items()}
    check_preset_keys(PRESETS['airnet_aio3'], state, 'All.pth')


def test_another_presets_file_is_refused_naming_the_preset_and_its_keys():
    with pytest.raises(CheckpointError) as err:
        check_preset_keys(PRESETS['uformer_tur_mio7'], shaped_state('airnet_aio3'), 'weights/All.pth')
    assert_names(err, 'weights/All.pth', 'uformer_tur_mio7', 'input_proj.', 'R.head.0.weight', 'Uformer_TUR_7task.pth')


def test_truncated_file_is_refused_saying_how_many_keys_are_missing():
    state = shaped_state('airnet_aio3')
    kept = dict(list(state.items())[:100])
    with pytest.raises(CheckpointError) as err:
        check_preset_keys(PRESETS['airnet_aio3'], kept, 'All.pth')
    assert_names(err, 'All.pth', 'airnet_aio3', '100 keys', f'{len(state) - 100} of the {len(state)}')


def test_other_shape_is_refused_naming_the_key_and_both_shapes():
    # AirNet's All.pth (batch_size 5) is not the TUR file, whose MoCo queue the preset sizes for batch_size 32.
    with pytest.raises(CheckpointError) as err:
        check_preset_keys(PRESETS['airnet_tur_aio3'], shaped_state('airnet_aio3'), 'All.pth')
    assert_names(err, 'All.pth', 'airnet_tur_aio3', "'E.E.queue'", '(256, 8192)', '(256, 1280)')


def test_whole_checkpoint_is_unwrapped_with_the_preset_param_key():
    checkpoint = authors_checkpoint('promptir_aio3', shaped_state('promptir_aio3'))
    check_preset_keys(PRESETS['promptir_aio3'], checkpoint, 'model.ckpt')


def test_given_weights_file_is_returned_and_a_missing_one_named(tmp_path):
    preset = PRESETS['airnet_aio3']
    given = write(tmp_path / 'mine.pth', {})
    assert find_weights(preset, given, search_dirs=[]) == given
    with pytest.raises(FileNotFoundError) as err:
        find_weights(preset, str(tmp_path / 'nope.pth'))
    assert_names(err, tmp_path / 'nope.pth', 'airnet_aio3', 'All.pth', 'https://drive.google.com/')


def test_first_search_dir_holding_the_file_wins(tmp_path):
    preset = PRESETS['restormer_deraining']
    first = write(tmp_path / 'a' / preset.file_name, {})
    write(tmp_path / 'b' / preset.file_name, {})
    assert find_weights(preset, search_dirs=[str(tmp_path / 'none'), str(tmp_path / 'a'), str(tmp_path / 'b')]) == first


def test_file_found_nowhere_names_the_folders_and_where_to_download_it(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        find_weights(PRESETS['uformer_tur_mio7'])
    message = str(err.value)
    assert '\n' not in message
    assert f"Uformer_TUR_7task.pth is in none of {tmp_path / '.cache' / 'basicsr_tur'}, weights;" in message
    assert 'https://huggingface.co/GWu/TUR/blob/main/Uformer_TUR_7task.pth' in message


def test_unknown_preset_suggests_the_closest_names():
    with pytest.raises(CheckpointError) as err:
        get_preset('uformer_tur_mio')
    assert_names(err, "'uformer_tur_mio'", 'uformer_tur_mio7,', '--list-presets')
    assert get_preset('uformer_tur_mio7') is PRESETS['uformer_tur_mio7']


def test_plain_table_has_a_header_and_one_aligned_line_per_preset():
    lines = presets_table().splitlines()
    assert lines[0].split()[:3] == ['name', 'arch', 'setting']
    assert len(lines) == len(PRESETS) + 1
    file_column = lines[0].index('file')
    for line, preset in zip(lines[1:], PRESETS.values()):
        assert line.startswith(preset.name + ' ') and line[file_column:].startswith(preset.file_name)


def test_markdown_table_has_six_columns_per_row():
    lines = presets_table(markdown=True).splitlines()
    assert len(lines) == len(PRESETS) + 2
    assert all(line.count(' | ') == 5 and line.startswith('| ') for line in lines[:1] + lines[2:])
    assert '| transweather_tur_allweather | Transweather | allweather | TransWeather + TUR |' in lines[5]
