"""val.pad: test() pads the whole input as the published rows' test code does and crops the outputs
back; the weights entry a test run records is the one it loaded."""
from __future__ import annotations

from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import assert_names, make_test_options

from basicsr_tur.models.tur_model import InputPaddingError
from basicsr_tur.test import measurement_protocol, run_test
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options
from basicsr_tur.utils.padding import input_padding
from basicsr_tur.utils.tiling import tiled_forward

NET = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}


def _weights(tmp_path) -> str:
    """A tiny SRResNet checkpoint with a trained-looking uncertainty head (σ varies by pixel)."""
    torch.manual_seed(0)
    net = build_network({**NET, 'uncertainty_head': True})
    torch.nn.init.normal_(net.uncertainty_head[4].weight, std=0.3)
    path = str(tmp_path / 'tur.pth')
    torch.save({'params': net.state_dict()}, path)
    return path


def _net(path: str) -> torch.nn.Module:
    """The checkpoint's network, built and loaded here, apart from TURModel."""
    net = build_network({**NET, 'uncertainty_head': True})
    net.load_state_dict(torch.load(path, weights_only=True)['params'])
    return net.eval()


def _model(tmp_path, paired_root, pad=None, tile=None, uncertainty=True, weights=None, **path_opt):
    """A test-time TURModel of the tiny SRResNet, val.pad / val.tile set directly (no checks)."""
    opt_path = make_test_options(tmp_path, paired_root, weights or _weights(tmp_path))
    opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path])
    opt['val'].update({'uncertainty': uncertainty, **({'pad': pad} if pad is not None else {}),
                       **({'tile': tile} if tile else {})})
    opt['path'].update(path_opt)
    return build_model(opt)


def _restore(model, x: torch.Tensor) -> None:
    model.feed_data({'lq': x, 'task_id': [0], 'task': ['noise']})
    model.test()


def _pad_by_hand(x: torch.Tensor, multiple: int, square: bool,
                 mode: str) -> tuple[torch.Tensor, int, int]:
    """The official order: bottom/right to multiples, then half the difference on each end of the
    shorter side (the odd pixel after); returns the padded input and the image's (top, left)."""
    h, w = x.shape[-2:]
    y = F.pad(x, (0, -w % multiple, 0, -h % multiple), mode=mode)
    top = left = 0
    if square:
        hp, wp = y.shape[-2:]
        d = abs(hp - wp)
        before, after = d // 2, d - d // 2
        y = F.pad(y, (before, after, 0, 0) if hp > wp else (0, 0, before, after), mode=mode)
        top, left = (before, 0) if wp > hp else (0, before)
    return y, top, left


PADS = [{'multiple': 16, 'square': True, 'mode': 'reflect'},  # MiOIR/TUR Uformer's rule, tiny
        {'multiple': 8, 'mode': 'reflect'},  # TUR PromptIR's rule, tiny
        {'multiple': 16, 'square': True, 'mode': 'constant'},
        {'multiple': 1, 'square': True, 'mode': 'replicate'}]


@pytest.mark.parametrize('size', [(37, 23), (23, 37), (29, 29), (30, 31)])
@pytest.mark.parametrize('pad', PADS, ids=lambda p: '-'.join(str(v) for v in p.values()))
def test_padded_forward_equals_padding_by_hand_then_cropping(tmp_path, paired_root, pad, size):
    model = _model(tmp_path, paired_root, pad=pad)
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size)
    _restore(model, x)
    padded, top, left = _pad_by_hand(x, pad['multiple'], pad.get('square', False), pad['mode'])
    with torch.no_grad():
        out, sigma = _net(model.opt['path']['pretrain_network_g'])(padded, with_uncertainty=True)
    h, w = size
    assert model.output.shape == model.sigma.shape == (1, 3, h, w)
    assert torch.equal(model.output, out[..., top:top + h, left:left + w])
    assert torch.equal(model.sigma, sigma[..., top:top + h, left:left + w])


def test_the_network_sees_the_padded_size(tmp_path, paired_root):
    model = _model(tmp_path, paired_root, pad={'multiple': 16, 'square': True}, uncertainty=False)
    sizes = []
    model.net_g.register_forward_pre_hook(lambda _, args: sizes.append(tuple(args[0].shape[-2:])))
    _restore(model, torch.rand(1, 3, 37, 23))
    assert sizes == [(48, 48)]
    assert model.output.shape[-2:] == (37, 23)


def test_padding_changes_the_restored_pixels(tmp_path, paired_root):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 23)
    outputs = []
    for pad in (None, {'multiple': 16, 'square': True}):
        model = _model(tmp_path, paired_root, pad=pad, uncertainty=False)
        _restore(model, x)
        outputs.append(model.output)
    assert not torch.equal(outputs[0], outputs[1])  # the border a network sees matters


@pytest.mark.parametrize('pad', [None, {}, {'multiple': 1},
                                 {'multiple': 1, 'square': False, 'mode': 'constant'}])
def test_without_padding_test_restores_the_input_itself(tmp_path, paired_root, pad):
    model = _model(tmp_path, paired_root, pad=pad)
    assert model.input_padding is None
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 23)
    _restore(model, x)
    with torch.no_grad():
        out, sigma = _net(model.opt['path']['pretrain_network_g'])(x, with_uncertainty=True)
    assert torch.equal(model.output, out) and torch.equal(model.sigma, sigma)


def test_padding_comes_before_tiling_and_the_crop_after(tmp_path, paired_root):
    pad, tile = {'multiple': 16, 'square': True}, {'size': 24, 'overlap': 8}
    model = _model(tmp_path, paired_root, pad=pad, tile=tile)
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 23)
    _restore(model, x)
    padded, top, left = _pad_by_hand(x, 16, True, 'reflect')
    net = _net(model.opt['path']['pretrain_network_g'])
    with torch.no_grad():
        out, sigma = tiled_forward(lambda t: net(t, with_uncertainty=True), padded, 24, 8)
    assert torch.equal(model.output, out[..., top:top + 37, left:left + 23])
    assert torch.equal(model.sigma, sigma[..., top:top + 37, left:left + 23])


@pytest.mark.parametrize('pad, key', [
    ({'multiple': 0}, 'val.pad.multiple'), ({'multiple': 2.5}, 'val.pad.multiple'),
    ({'multiple': True}, 'val.pad.multiple'), ({'square': 'yes'}, 'val.pad.square'),
    ({'mode': 'zeros'}, 'val.pad.mode'), ({'multipel': 8}, 'val.pad.multipel'), (128, 'val.pad')])
def test_a_bad_val_pad_is_refused_naming_its_key(tmp_path, paired_root, pad, key):
    with pytest.raises(UserError) as err:
        _model(tmp_path, paired_root, pad=pad)
    assert_names(err, f'{key}:')


@pytest.mark.parametrize('force, key', [('val:pad={multiple: 0}', 'val.pad.multiple'),
                                        ('val:pad={mode: zeros}', 'val.pad.mode'),
                                        ('val:pad={square: 3}', 'val.pad.square'),
                                        ('val:pad={multipel: 8}', 'val.pad.multipel')])
def test_the_options_check_names_a_bad_val_pad_key(tmp_path, paired_root, force, key):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml', force])
    assert_names(err, key)


def test_reflection_wider_than_the_image_is_refused_naming_the_mode(tmp_path, paired_root):
    # a 10x40 image: 15 rows on each end, more than reflection can mirror
    model = _model(tmp_path, paired_root, pad={'multiple': 1, 'square': True})
    with pytest.raises(InputPaddingError) as err:
        _restore(model, torch.rand(1, 3, 10, 40))
    assert_names(err, 'val.pad.mode:', '10x40')


def test_a_reflection_limit_in_validation_names_the_image_and_the_dataset(tmp_path, paired_root):
    # 12x40: a square reflect pads 14 rows on each end, more than a 12-row image can mirror
    wide = np.full((12, 40, 3), 128, np.uint8)
    lq = osp.join(paired_root, 'lq', 'sr', 'wide.png')
    assert cv2.imwrite(lq, wide) and cv2.imwrite(osp.join(paired_root, 'gt', 'wide.png'), wide)
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    with pytest.raises(UserError) as err:
        run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'tasks=[sr]',
                                 'val:pad={multiple: 1, square: true}'])
    assert_names(err, lq, 'tiny_test_set', 'val.pad.mode')


def test_the_protocol_records_the_padding(tmp_path, paired_root):
    pad = {'multiple': 16, 'square': True, 'mode': 'reflect'}
    assert measurement_protocol({}, [], _model(tmp_path, paired_root, pad=pad))['pad'] == pad
    assert measurement_protocol({}, [], _model(tmp_path, paired_root, pad={}))['pad'] is None


# The weights entry a test run loads and records


def _checkpoint(tmp_path, entries: tuple[str, ...]) -> tuple[str, dict[str, dict]]:
    """A checkpoint holding another tiny SRResNet under each entry (none: a bare tensor dict)."""
    states = {}
    for seed, entry in enumerate(entries or ('',)):
        torch.manual_seed(seed)
        states[entry] = build_network(NET).state_dict()
    path = str(tmp_path / 'weights.pth')
    torch.save(states if entries else states[''], path)
    return path, states


@pytest.mark.parametrize('entries, param_key, loaded', [
    (('params', 'params_ema'), None, 'params'),  # no param_key_g: 'params', basicsr's default
    (('params', 'params_ema'), 'params', 'params'),
    (('params', 'params_ema'), 'params_ema', 'params_ema'),
    (('params',), 'params_ema', 'params'),  # a key the file lacks: read_state_dict falls back
    ((), 'params', None)])  # a bare state dict (e.g. an official whole checkpoint)
def test_the_protocol_records_the_weights_entry_actually_loaded(tmp_path, paired_root, entries,
                                                                  param_key, loaded):
    path, states = _checkpoint(tmp_path, entries)
    opt_path = make_test_options(tmp_path, paired_root, path)
    opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path])
    if param_key is None:
        del opt['path']['param_key_g']
    else:
        opt['path']['param_key_g'] = param_key
    model = build_model(opt)
    weights = measurement_protocol(opt, [], model)['weights']
    assert weights['key'] == loaded and weights['file'] == path
    assert weights['requested_key'] == (param_key or 'params')
    expected = states[loaded or '']
    assert all(torch.equal(v, expected[k]) for k, v in model.net_g.state_dict().items())



@pytest.mark.parametrize('force', ['val:pad=~', 'val:pad={}'])
def test_a_null_or_empty_val_pad_passes_the_check_and_pads_nothing(tmp_path, paired_root, force):
    opt_path = make_test_options(tmp_path, paired_root, _weights(tmp_path))
    opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml', force])
    assert input_padding(opt['val']['pad']) is None
