"""PromptIR: odd sizes, official sizes and keys, the TUR head (the released checkpoint and TUR training:
test_checkpoint.py, test_archs.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_head_is_plug_and_play

from basicsr_tur.archs.restormer_arch import TransformerBlock
from basicsr_tur.archs.uncertainty import HEAD_PREFIX
from basicsr_tur.utils.checkpoint import load_checkpoint

# The prompt widths are fixed for dim=48 by the authors, so the small model keeps dim and cuts depth.
SMALL = {'type': 'PromptIR', 'decoder': True, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}


def small(head: bool = False, seed: int = 0, **kwargs):
    """The all-in-one PromptIR with one block per level, deterministic weights."""
    torch.manual_seed(seed)
    return build_network({**SMALL, 'uncertainty_head': head, **kwargs})


@pytest.fixture(scope='module')
def net_pair():
    """(with head, without head) sharing the same backbone weights; built once, as the prompts are large."""
    with_head, without = small(head=True).eval(), small(head=False, seed=1).eval()
    without.load_state_dict({k: v for k, v in with_head.state_dict().items() if not k.startswith(HEAD_PREFIX)})
    return with_head, without


def test_output_has_input_shape_for_odd_sizes(net_pair):
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        assert net_pair[1](x).shape == x.shape


def test_official_parameter_counts():
    # va1shn9v/PromptIR net/model.py: 35,592,263 (decoder=True, 35.592 M) and 32,107,288 (decoder=False,
    # 32.107 M), counted on the meta device.
    with torch.device('meta'):
        all_in_one = build_network({'type': 'PromptIR', 'decoder': True})
        no_prompts = build_network({'type': 'PromptIR'})
    assert sum(p.numel() for p in all_in_one.parameters()) == 35_592_263
    assert sum(p.numel() for p in no_prompts.parameters()) == 32_107_288


def test_shares_the_restormer_blocks_and_official_names(net_pair):
    net = net_pair[1]
    assert isinstance(net.noise_level3, TransformerBlock)
    keys = set(net.state_dict())
    assert {'prompt1.prompt_param', 'prompt3.linear_layer.weight', 'prompt2.conv3x3.weight',
            'noise_level2.attn.qkv.weight', 'reduce_noise_level1.weight', 'chnl_reduce3.weight',
            'reduce_noise_channel_2.weight', 'decoder_level1.0.norm2.body.bias', 'output.weight'} <= keys
    assert net.state_dict()['prompt3.prompt_param'].shape == (1, 5, 320, 16, 16)


def test_head_returns_positive_uncertainty_of_output_shape(net_pair):
    with torch.no_grad():
        out, u = net_pair[0](torch.rand(1, 3, 13, 11), with_uncertainty=True)
    assert u.shape == out.shape == (1, 3, 13, 11)
    assert (u > 0).all()


def test_eval_output_with_head_equals_backbone_without_head(net_pair):
    assert_head_is_plug_and_play(*net_pair, torch.rand(1, 3, 16, 16))


def test_wrong_shape_in_checkpoint_names_the_key(tmp_path, net_pair):
    state = {f'net.{k}': v for k, v in net_pair[1].state_dict().items()}
    state['net.prompt2.prompt_param'] = torch.zeros(1, 5, 128, 16, 16)
    path = str(tmp_path / 'bad.ckpt')
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match='prompt2.prompt_param'):
        load_checkpoint(net_pair[1], path)


def test_prompts_with_other_dim_are_refused():
    with pytest.raises(ValueError, match='dim=32'):
        build_network({**SMALL, 'dim': 32})


def test_forward_without_prompts_fails_clearly():
    with torch.device('meta'):
        net = build_network({'type': 'PromptIR', 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1})
    with pytest.raises(ValueError, match='decoder=False'):
        net(torch.rand(1, 3, 8, 8, device='meta'))
