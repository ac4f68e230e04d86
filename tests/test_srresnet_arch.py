"""SRResNet (MiOIR's): where the authors' head reads, official size and key names, the upscale it refuses
(the checks shared by every backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.errors import UserError


def tiny(head: bool, **kwargs):
    """A 2-block, 8-channel SRResNet."""
    return build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': head, **kwargs})


def test_srresnet_head_reads_the_body_output_not_conv_hr_output():
    # The authors' SRResNet_uncertanty_softplus: var_conv(body(lrelu(conv_first(x)))), conv_hr only on the image path.
    net = tiny(True).eval()
    body_out, head_in = [], []
    net.body.register_forward_hook(lambda _, __, out: body_out.append(out.detach().clone()))
    net.uncertainty_head.register_forward_pre_hook(lambda _, inputs: head_in.append(inputs[0].detach().clone()))
    with torch.no_grad():
        net(torch.rand(1, 3, 12, 12), with_uncertainty=True)
    assert torch.equal(head_in[0], body_out[0])


def test_official_size_parameter_count():
    # MiOIR SRResNet (64 features, 16 blocks, upscale 1): conv_first 1,792 + 16 blocks x 73,856 + conv_hr 36,928
    # + conv_last 1,731 = 1,222,147 parameters; the head adds 2 x 36,928 + 1,731.
    net = build_network({'type': 'SRResNet'})
    assert sum(p.numel() for p in net.parameters()) == 1_222_147
    head = build_network({'type': 'SRResNet', 'uncertainty_head': True})
    assert sum(p.numel() for p in head.parameters()) == 1_222_147 + 2 * 36_928 + 1_731


def test_state_dict_keys_match_mioir_names():
    keys = set(build_network({'type': 'SRResNet', 'num_block': 2}).state_dict())
    assert {'conv_first.weight', 'body.0.conv1.weight', 'body.1.conv2.bias', 'conv_hr.weight',
            'conv_last.bias'} <= keys


def test_unsupported_upscale_is_refused():
    with pytest.raises(UserError) as err:
        build_network({'type': 'SRResNet', 'upscale': 4})
    assert_names(err, 'SRResNet', 'upscale', '4')
