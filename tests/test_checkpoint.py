"""Checkpoint loading: every wrapping form, the head reported missing, mismatches named, the authors' released
checkpoints (built from the committed key/shape lists of tests/data/official_keys); atomic saving."""
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.checkpoint import HEAD_PREFIX, load_checkpoint
from basicsr_tur.utils.errors import CheckpointError

OFFICIAL_KEYS = Path(__file__).parent / 'data' / 'official_keys'
UFORMER_B = {'embed_dim': 32, 'depths': [1, 2, 8, 8, 2, 8, 8, 2, 1], 'modulator': True}

# The authors' TUR models: key list, our network options, and the prefix of their head (var_conv) in the file.
TUR_CHECKPOINTS = {
    'tur_SRResNet_uncertanty_softplus': ({'type': 'SRResNet'}, 'var_conv.'),
    'tur_Uformer_uncertainty': ({'type': 'Uformer', **UFORMER_B}, 'var_conv.'),
    'tur_AirNet_uncertainty': ({'type': 'AirNet', 'batch_size': 32}, 'R.var_conv.'),  # their default batch_size
    'tur_PromptIR_uncertainty': ({'type': 'PromptIR', 'decoder': True}, 'var_conv.'),
    'tur_Transweather': ({'type': 'Transweather'}, 'var_conv.'),
}
# The TUR TransWeather (5d026e7) comments out two modules its forward never runs; they come from the model itself.
TUR_ABSENT = {'tur_Transweather': {'Tenc.mini_patch_embed4.proj.weight', 'Tenc.mini_patch_embed4.proj.bias',
                                   'Tenc.mini_patch_embed4.norm.weight', 'Tenc.mini_patch_embed4.norm.bias',
                                   'convtail.conv_output.conv2d.weight', 'convtail.conv_output.conv2d.bias'}}

# The official plain backbones: key list, our network options, and how their release wraps the tensors.
OFFICIAL_CHECKPOINTS = {
    'mioir_SRResNet': ({'type': 'SRResNet'}, lambda s: {'params': s}),
    # torch.save(net.state_dict()); the MoCo queue of All.pth holds batch_size 5 x 256 keys.
    'official_AirNet': ({'type': 'AirNet', 'batch_size': 5}, lambda s: s),
    # A PyTorch Lightning checkpoint of PromptIRModel, whose network is `self.net`.
    'official_PromptIR': ({'type': 'PromptIR', 'decoder': True},
                          lambda s: {'epoch': 149, 'state_dict': {f'net.{k}': v for k, v in s.items()},
                                     'optimizer_states': [], 'lr_schedulers': []}),
    # The official train scripts: {'epoch', 'state_dict' of a DataParallel model, 'optimizer'}.
    'official_Uformer': ({'type': 'Uformer', **UFORMER_B},
                         lambda s: {'epoch': 250, 'state_dict': {f'module.{k}': v for k, v in s.items()},
                                    'optimizer': {'state': {}, 'param_groups': []}}),
    'official_Restormer': ({'type': 'Restormer'}, lambda s: {'params': s}),
    # train.py saves the DataParallel model's state_dict.
    'official_Transweather': ({'type': 'Transweather'}, lambda s: {f'module.{k}': v for k, v in s.items()}),
}


def net(head: bool, seed: int = 0):
    """A tiny SRResNet with deterministic weights."""
    torch.manual_seed(seed)
    return build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': head})


def same_weights(a, b) -> bool:
    """Whether two nets hold equal tensors under every key they share."""
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if k in sb)


@pytest.mark.parametrize('wrap', [
    lambda s: s,
    lambda s: {'params': s},
    lambda s: {'params_ema': s},
    lambda s: {'state_dict': s},
    lambda s: {f'module.{k}': v for k, v in s.items()},
    lambda s: {'state_dict': {f'net.{k}': v for k, v in s.items()}, 'epoch': 3},
], ids=['plain', 'params', 'params_ema', 'state_dict', 'module_prefix', 'net_prefix_in_state_dict'])
def test_loads_every_wrapping_strictly(tmp_path, wrap):
    src, dst = net(False, seed=1), net(False, seed=2)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(wrap(src.state_dict()), path)
    load_checkpoint(dst, path, param_key='params', strict=True)
    assert same_weights(src, dst)


def test_backbone_checkpoint_loads_into_tur_model_with_only_head_missing(tmp_path):
    src, dst = net(False, seed=1), net(True, seed=2)
    head_before = {k: v.clone() for k, v in dst.state_dict().items() if k.startswith('uncertainty_head.')}
    path = str(tmp_path / 'backbone.pth')
    torch.save({'params': src.state_dict()}, path)
    load_checkpoint(dst, path, strict=True)
    assert same_weights(src, dst)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in head_before.items())


def test_tur_checkpoint_loads_into_plain_backbone(tmp_path):
    src, dst = net(True, seed=1), net(False, seed=2)
    path = str(tmp_path / 'tur.pth')
    torch.save({'params': src.state_dict()}, path)
    load_checkpoint(dst, path, strict=True)
    assert same_weights(src, dst)


def test_wrong_shape_names_the_key(tmp_path):
    state = net(False).state_dict()
    state['conv_first.weight'] = torch.zeros(4, 3, 3, 3)
    path = str(tmp_path / 'bad.pth')
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(net(False), path)
    assert_names(err, path, "'conv_first.weight'", '(4, 3, 3, 3)', '(8, 3, 3, 3)', 'strict_load_g: false')


def test_missing_backbone_key_is_an_error(tmp_path):
    state = net(False).state_dict()
    del state['conv_hr.bias']
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(net(False), path)
    assert_names(err, path, 'conv_hr.bias')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_checkpoint(net(False), str(tmp_path / 'nope.pth'))
    assert_names(err, tmp_path / 'nope.pth')


def test_empty_file_is_named_in_one_line(tmp_path):
    path = tmp_path / 'zero.pth'
    path.write_bytes(b'')
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(net(False), str(path))
    assert_names(err, path)


@pytest.mark.parametrize('content, reason', [
    # a text file: torch's own message is bare ('101', 'pop from empty list'): the exception type is named with it
    (b'eta_min 1e-7\n', r'\b\w+Error\b'),
    ('list', r'\blist\b')], ids=['text', 'list'])
def test_file_that_is_not_a_state_dict_is_one_line_naming_it(tmp_path, content, reason):
    path = tmp_path / 'x.pth'
    if content == 'list':
        torch.save([torch.ones(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:  # run_cli prints it as one `error:` line
        load_checkpoint(net(False), str(path))
    assert re.search(reason, assert_names(err, path))


def file_from_key_list(name: str, path: str, wrap=lambda s: {'params': s}) -> dict:
    """Write a checkpoint with the keys and shapes of tests/data/official_keys/<name>.json and return its tensors.

    Each tensor is one distinct random integer broadcast to the listed shape (stride 0, so the file stays small even
    for 50 M parameters), which pins where every key lands and also suits integer buffers.
    """
    shapes = json.loads((OFFICIAL_KEYS / f'{name}.json').read_text())
    values = torch.randperm(len(shapes)) + 1
    state = {k: values[i].float().expand(shape) for i, (k, shape) in enumerate(shapes.items())}
    torch.save(wrap(state), path)
    return state


def full_size(opt: dict, head: bool) -> torch.nn.Module:
    """The full-size network, built on the meta device and given zeroed CPU memory (no initialisation cost)."""
    with torch.device('meta'):
        net = build_network({**opt, 'uncertainty_head': head})
    net = net.to_empty(device='cpu')
    for tensor in net.state_dict().values():
        tensor.zero_()
    return net


@pytest.mark.parametrize('name', list(TUR_CHECKPOINTS))
def test_authors_tur_checkpoint_loads_strictly_with_its_head_mapped(tmp_path, name):
    opt, authors_head = TUR_CHECKPOINTS[name]
    path = str(tmp_path / f'{name}.pth')
    state = file_from_key_list(name, path)
    net = full_size(opt, head=True)
    load_checkpoint(net, path, strict=True)
    ours = net.state_dict()
    mapped = {(HEAD_PREFIX + k[len(authors_head):] if k.startswith(authors_head) else k): k for k in state}
    assert any(k.startswith(authors_head) for k in state)
    for our_key, their_key in mapped.items():
        assert torch.all(ours[our_key] == state[their_key][(0,) * state[their_key].dim()]), our_key
    assert set(ours) - set(mapped) == TUR_ABSENT.get(name, set())
    assert all(torch.all(ours[k] == 0) for k in TUR_ABSENT.get(name, ()))  # kept from the model itself


@pytest.mark.parametrize('name', list(TUR_CHECKPOINTS))
def test_authors_tur_checkpoint_loads_into_plain_backbone_dropping_the_head(tmp_path, caplog, name):
    opt, authors_head = TUR_CHECKPOINTS[name]
    path = str(tmp_path / f'{name}.pth')
    state = file_from_key_list(name, path)
    net = full_size(opt, head=False)
    with caplog.at_level(logging.INFO, logger='basicsr'):
        load_checkpoint(net, path, strict=True)
    assert 'uncertainty head weights ignored' in caplog.text
    ours = net.state_dict()
    assert all(torch.all(ours[k] == v[(0,) * v.dim()]) for k, v in state.items() if not k.startswith(authors_head))


@pytest.mark.parametrize('name', list(OFFICIAL_CHECKPOINTS))
def test_official_backbone_checkpoint_loads_strictly(tmp_path, name):
    opt, wrap = OFFICIAL_CHECKPOINTS[name]
    path = str(tmp_path / f'{name}.pth')
    state = file_from_key_list(name, path, wrap)
    net = full_size(opt, head=False)
    load_checkpoint(net, path, strict=True)
    ours = net.state_dict()
    assert set(ours) == set(state)
    assert all(torch.all(ours[k] == v[(0,) * v.dim()]) for k, v in state.items())


def test_non_strict_load_skips_tensors_of_another_shape_with_a_warning(tmp_path, caplog):
    state = net(False).state_dict()
    state['conv_first.weight'] = torch.zeros(4, 3, 3, 3)
    state['conv_hr.bias'] = torch.full_like(state['conv_hr.bias'], 7.0)
    path = str(tmp_path / 'other_width.pth')
    torch.save({'params': state}, path)
    model = net(False)
    fresh = model.state_dict()['conv_first.weight'].clone()
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        load_checkpoint(model, path, strict=False)
    assert torch.equal(model.state_dict()['conv_first.weight'], fresh)
    assert torch.all(model.state_dict()['conv_hr.bias'] == 7.0)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert 'size different, ignored' in warning and 'conv_first.weight: file (4, 3, 3, 3), network (8, 3, 3, 3)' \
        in warning


def test_strict_load_refuses_tensors_of_another_shape_in_one_line(tmp_path):
    state = net(False).state_dict()
    state['conv_first.weight'] = torch.zeros(4, 3, 3, 3)
    state['conv_hr.weight'] = torch.zeros(1, 8, 3, 3)
    path = str(tmp_path / 'other_width.pth')
    torch.save({'params': state}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(net(False), path, strict=True)
    message = assert_names(err, path, "'conv_first.weight'", '(4, 3, 3, 3)', '(8, 3, 3, 3)', '1 more',
                           'strict_load_g: false')
    assert 'conv_hr.weight' not in message  # the first key, then a count
