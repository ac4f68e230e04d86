"""Uformer: any input size, official sizes, the uncertainty head (released checkpoints and TUR training:
test_checkpoint.py, test_archs.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_head_is_plug_and_play
from torch.nn import functional as F

from basicsr_tur.utils.checkpoint import load_checkpoint

UFORMER_B = {'embed_dim': 32, 'depths': [1, 2, 8, 8, 2, 8, 8, 2, 1], 'modulator': True}


def tiny(head: bool = False, seed: int = 0, **kwargs):
    """A 4-channel Uformer with 2x2 windows (inputs padded to multiples of 16), shifted windows and modulators."""
    torch.manual_seed(seed)
    opt = {'type': 'Uformer', 'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
           'modulator': True, 'uncertainty_head': head, **kwargs}
    return build_network(opt)


def test_output_has_input_shape_for_odd_sizes():
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        out = tiny().eval()(x)
    assert out.shape == x.shape


def test_odd_size_output_is_the_crop_of_the_reflect_padded_forward():
    net = tiny().eval()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        padded = net(F.pad(x, (0, 9, 0, 15), mode='reflect'))
        assert torch.equal(net(x), padded[..., :17, :23])


def test_non_square_valid_size_runs_without_padding():
    x = torch.rand(1, 3, 16, 48)
    with torch.no_grad():
        assert tiny().eval()(x).shape == x.shape


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


def test_uncertainty_has_output_shape_and_is_positive():
    with torch.no_grad():
        out, u = tiny(head=True).eval()(torch.rand(2, 3, 17, 23) * 10, with_uncertainty=True)
    assert u.shape == out.shape == (2, 3, 17, 23) and (u > 0).all()


def test_eval_output_with_head_equals_backbone_without_head():
    assert_head_is_plug_and_play(tiny(head=True), tiny(seed=1), torch.rand(1, 3, 20, 20))


def test_wrong_shape_names_the_key(tmp_path):
    state = tiny().state_dict()
    key = 'decoderlayer_3.blocks.0.modulator.weight'
    state[key] = torch.zeros(9, 8)
    path = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match=key):
        load_checkpoint(tiny(), path)


@pytest.mark.parametrize('kwargs,named', [
    ({'token_projection': 'conv'}, 'conv'),
    ({'token_mlp': 'fastleff'}, 'fastleff'),
    ({'in_chans': 1}, 'in_chans'),
    ({'depths': [2, 2, 2]}, 'depths'),
])
def test_unsupported_options_are_refused(kwargs, named):
    with pytest.raises(ValueError, match=named):
        tiny(**kwargs)


def test_modulator_larger_than_a_training_window_is_refused():
    with pytest.raises(ValueError, match='img_size'):
        with torch.device('meta'):
            build_network({'type': 'Uformer', 'img_size': 32, 'modulator': True})
