"""Checkpoint loading: every wrapping form, the head reported missing, mismatches named; atomic saving."""
import os

import pytest
import torch
from basicsr.archs import build_network

from basicsr_tur.utils.checkpoint import atomic_save, load_checkpoint


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
    with pytest.raises(ValueError, match='conv_first.weight'):
        load_checkpoint(net(False), path)


def test_missing_backbone_key_is_an_error(tmp_path):
    state = net(False).state_dict()
    del state['conv_hr.bias']
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    with pytest.raises(KeyError, match='conv_hr.bias'):
        load_checkpoint(net(False), path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint(net(False), str(tmp_path / 'nope.pth'))


def test_atomic_save_keeps_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = str(tmp_path / 'm.pth')
    atomic_save({'a': torch.ones(1)}, path)

    def full_disk(obj, f):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='m.pth'):
        atomic_save({'a': torch.zeros(1)}, path)
    monkeypatch.undo()
    assert torch.load(path)['a'].item() == 1.0
    assert os.listdir(tmp_path) == ['m.pth']
