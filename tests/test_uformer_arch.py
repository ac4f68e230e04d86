"""Uformer: official sizes, the head's width, the options and window sizes it refuses (the checks shared by every
backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.errors import UserError

UFORMER_B = {'embed_dim': 32, 'depths': [1, 2, 8, 8, 2, 8, 8, 2, 1], 'modulator': True}


def tiny(head: bool = False, seed: int = 0, **kwargs):
    """A 4-channel Uformer with 2x2 windows (inputs padded to multiples of 16), shifted windows and modulators."""
    torch.manual_seed(seed)
    opt = {'type': 'Uformer', 'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
           'modulator': True, 'uncertainty_head': head, **kwargs}
    return build_network(opt)


@pytest.mark.parametrize('variant,count', [
    ({'embed_dim': 16, 'modulator': True}, 5_291_853),
    ({'embed_dim': 32, 'modulator': True}, 20_751_197),
    (UFORMER_B, 50_880_946),
], ids=['Uformer-T', 'Uformer-S', 'Uformer-B'])
def test_official_parameter_count(variant, count):
    # Counts of the official model.py with win_size 8, linear projection and LeFF (its get_arch: modulator on).
    # Built on the meta device: shapes without memory or initialisation, so Uformer-B costs nothing to count.
    with torch.device('meta'):
        net = build_network({'type': 'Uformer', 'win_size': 8, 'token_projection': 'linear', 'token_mlp': 'leff',
                             **variant})
    assert sum(p.numel() for p in net.parameters()) == count


def test_head_reads_two_embed_dim_channels():
    head = tiny(head=True).uncertainty_head
    assert head[0].in_channels == 8 and head[-2].out_channels == 3


@pytest.mark.parametrize('kwargs,named', [
    ({'token_projection': 'conv'}, 'conv'),
    ({'token_mlp': 'fastleff'}, 'fastleff'),
    ({'in_chans': 1}, 'in_chans'),
    ({'depths': [2, 2, 2]}, 'depths'),
])
def test_unsupported_options_are_refused(kwargs, named):
    with pytest.raises(UserError) as err:
        tiny(**kwargs)
    assert_names(err, 'Uformer', named)


def test_modulator_larger_than_a_training_window_is_refused():
    with pytest.raises(UserError) as err:
        with torch.device('meta'):
            build_network({'type': 'Uformer', 'img_size': 32, 'modulator': True})
    assert_names(err, 'input_resolution', 'win_size 8', 'img_size')
