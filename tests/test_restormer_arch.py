"""Restormer: odd sizes, official size and keys, the TUR head, a wrong-shaped checkpoint (released checkpoints and
TUR training: test_checkpoint.py, test_archs.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_head_is_plug_and_play

from basicsr_tur.utils.checkpoint import load_checkpoint

TINY = {'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}


def tiny(head: bool = False, seed: int = 0, **kwargs):
    """A one-block-per-level, 8-channel Restormer with deterministic weights."""
    torch.manual_seed(seed)
    return build_network({**TINY, 'uncertainty_head': head, **kwargs})


def test_output_has_input_shape_for_odd_sizes():
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        assert tiny()(x).shape == x.shape


def test_padding_to_multiple_of_8_equals_official_test_script_padding():
    # The official test.py reflect-pads the bottom/right to multiples of 8 and crops the output back.
    net = tiny().eval()
    x = torch.rand(1, 3, 19, 21)
    with torch.no_grad():
        ref = net(torch.nn.functional.pad(x, (0, 3, 0, 5), mode='reflect'))[..., :19, :21]
        assert torch.equal(net(x), ref)


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


def test_head_returns_positive_uncertainty_of_output_shape():
    out, u = tiny(head=True)(torch.rand(2, 3, 17, 23), with_uncertainty=True)
    assert u.shape == out.shape == (2, 3, 17, 23)
    assert (u > 0).all()


def test_eval_output_with_head_equals_backbone_without_head():
    assert_head_is_plug_and_play(tiny(head=True), tiny(head=False, seed=1), torch.rand(1, 3, 16, 16))


def test_wrong_shape_in_checkpoint_names_the_key(tmp_path):
    state = tiny().state_dict()
    state['latent.0.attn.temperature'] = torch.ones(3, 1, 1)
    path = str(tmp_path / 'bad.pth')
    torch.save({'params': state}, path)
    with pytest.raises(ValueError, match='latent.0.attn.temperature'):
        load_checkpoint(tiny(), path)


def test_unknown_layernorm_type_is_refused():
    with pytest.raises(ValueError, match='BiasFre'):
        tiny(LayerNorm_type='BiasFre')


def test_channel_mismatch_without_dual_pixel_is_refused():
    with pytest.raises(ValueError, match='inp_channels == out_channels'):
        tiny(inp_channels=6)
