"""PromptIR: official sizes and keys, the Restormer blocks it shares, the prompts' fixed width (the checks shared
by every backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.archs.restormer_arch import TransformerBlock
from basicsr_tur.utils.errors import UserError

# The prompt widths are fixed for dim=48 by the authors, so the small model keeps dim and cuts depth.
SMALL = {'type': 'PromptIR', 'decoder': True, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}


def small(head: bool = False, seed: int = 0, **kwargs):
    """The all-in-one PromptIR with one block per level, deterministic weights."""
    torch.manual_seed(seed)
    return build_network({**SMALL, 'uncertainty_head': head, **kwargs})


def test_official_parameter_counts():
    # va1shn9v/PromptIR net/model.py: 35,592,263 (decoder=True, 35.592 M) and 32,107,288 (decoder=False,
    # 32.107 M), counted on the meta device.
    with torch.device('meta'):
        all_in_one = build_network({'type': 'PromptIR', 'decoder': True})
        no_prompts = build_network({'type': 'PromptIR'})
    assert sum(p.numel() for p in all_in_one.parameters()) == 35_592_263
    assert sum(p.numel() for p in no_prompts.parameters()) == 32_107_288


def test_shares_the_restormer_blocks_and_official_names():
    net = small()
    assert isinstance(net.noise_level3, TransformerBlock)
    keys = set(net.state_dict())
    assert {'prompt1.prompt_param', 'prompt3.linear_layer.weight', 'prompt2.conv3x3.weight',
            'noise_level2.attn.qkv.weight', 'reduce_noise_level1.weight', 'chnl_reduce3.weight',
            'reduce_noise_channel_2.weight', 'decoder_level1.0.norm2.body.bias', 'output.weight'} <= keys
    assert net.state_dict()['prompt3.prompt_param'].shape == (1, 5, 320, 16, 16)


def test_prompts_with_other_dim_are_refused():
    with pytest.raises(UserError) as err:
        build_network({**SMALL, 'dim': 32})
    assert_names(err, 'PromptIR', 'dim=48', 'dim=32')


def test_forward_without_prompts_fails_clearly():
    with torch.device('meta'):
        net = build_network({'type': 'PromptIR', 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1})
    with pytest.raises(UserError) as err:
        net(torch.rand(1, 3, 8, 8, device='meta'))
    assert_names(err, 'PromptIR', 'decoder=False', 'decoder=True')
