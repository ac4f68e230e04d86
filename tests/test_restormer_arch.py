"""Restormer: the dual-pixel task, official size and keys, the arguments it refuses (the checks shared by every
backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.errors import UserError

TINY = {'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}


def tiny(head: bool = False, seed: int = 0, **kwargs):
    """A one-block-per-level, 8-channel Restormer with deterministic weights."""
    torch.manual_seed(seed)
    return build_network({**TINY, 'uncertainty_head': head, **kwargs})


def test_dual_pixel_task_maps_six_channels_to_three():
    net = tiny(inp_channels=6, out_channels=3, dual_pixel_task=True, head=True)
    out, u = net(torch.rand(1, 6, 16, 16), with_uncertainty=True)
    assert out.shape == u.shape == (1, 3, 16, 16)
    assert 'skip_conv.weight' in net.state_dict()


def test_official_size_parameter_count():
    # swz30/Restormer with its defaults: 26,126,644 parameters (26.13 M), counted on the meta device.
    with torch.device('meta'):
        net = build_network({'type': 'Restormer'})
    assert sum(p.numel() for p in net.parameters()) == 26_126_644


def test_state_dict_keys_match_official_names():
    keys = set(tiny().state_dict())
    assert {'patch_embed.proj.weight', 'encoder_level1.0.norm1.body.weight', 'encoder_level1.0.norm1.body.bias',
            'encoder_level1.0.attn.temperature', 'encoder_level1.0.attn.qkv_dwconv.weight',
            'latent.0.ffn.project_in.weight', 'down1_2.body.0.weight', 'up4_3.body.0.weight',
            'reduce_chan_level3.weight', 'refinement.0.ffn.dwconv.weight', 'output.weight'} <= keys
    assert 'encoder_level1.0.norm1.body.bias' not in tiny(LayerNorm_type='BiasFree').state_dict()


def test_unknown_layernorm_type_is_refused():
    with pytest.raises(UserError) as err:
        tiny(LayerNorm_type='BiasFre')
    assert_names(err, 'Restormer', 'LayerNorm_type', "'BiasFre'", "'BiasFree'")


def test_channel_mismatch_without_dual_pixel_is_refused():
    with pytest.raises(UserError) as err:
        tiny(inp_channels=6)
    assert_names(err, 'Restormer', 'inp_channels', 'out_channels', 'dual_pixel_task', '6')
