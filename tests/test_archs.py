"""Every backbone's uncertainty head: one parametrised check per behaviour over the registry."""
import math

import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import tur_training_l1

from basicsr_tur.archs.uncertainty import HEAD_SPECS

# Tiny arguments of every backbone, an input size it runs without padding, and the TUR training steps that make its
# restored output learn (PromptIR, with the authors' fixed dim 48, diverges above lr ~5e-4; AirNet's deformable
# convolutions are slow, so it trains on 8² images).
TINY = {
    'SRResNet': ({'num_feat': 8, 'num_block': 2}, 16, {}),
    'Uformer': ({'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
                 'modulator': True, 'drop_path_rate': 0.}, 16, {}),
    'AirNet': ({'n_groups': 1, 'n_blocks': 1, 'encoder_dim': 16, 'batch_size': 2}, 16, {'size': 8, 'lr': 1e-3}),
    'PromptIR': ({'decoder': True, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}, 16,
                 {'size': 8, 'lr': 3e-4}),
    'Restormer': ({'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}, 16, {}),
    'Transweather': ({'embed_dims': [8, 16, 16, 16], 'num_heads': [1, 1, 1, 1], 'mlp_ratios': [1, 1, 1, 1],
                      'depths': [1, 1, 1, 1], 'sr_ratios': [2, 1, 1, 1], 'dec_num_heads': 1, 'dec_mlp_ratio': 1,
                      'dec_depth': 1, 'num_task_queries': 4, 'drop_path_rate': 0.}, 32, {}),
}
ARCHS = list(TINY)


def build_tiny(arch: str, seed: int = 0, **kwargs):
    """The tiny `arch` with deterministic weights, its head on unless kwargs say otherwise."""
    torch.manual_seed(seed)
    return build_network({'type': arch, **TINY[arch][0], 'uncertainty_head': True, **kwargs})


def test_every_registered_backbone_has_a_head_spec_and_tiny_arguments():
    ours = {name: cls for name, cls in ARCH_REGISTRY if cls.__module__.startswith('basicsr_tur.')}
    for name, cls in ours.items():
        assert any(base.__name__ in HEAD_SPECS for base in cls.__mro__), name
    assert set(HEAD_SPECS) == set(TINY) <= set(ours)


def test_heads_sit_where_the_authors_put_them():
    # The authors' TUR code (Aitical/TUR): SRResNet's var_conv reads the body output (the input of conv_hr),
    # Uformer's deconv3 (the input of output_proj), AirNet's DGRN `res` (the input of the tail), TransWeather's
    # convtail output (the input of clean); PromptIR's head is fixed to the input of `output`; Restormer is ours.
    taps = {name: (spec.tap, spec.init, spec.authors, spec.authors_key) for name, spec in HEAD_SPECS.items()}
    assert taps == {
        'SRResNet': ('conv_hr', 'kaiming_normal_x0.1', True, 'var_conv.'),
        'Uformer': ('output_proj.proj.0', 'torch_default', True, 'var_conv.'),
        'AirNet': ('R.tail.0', 'torch_default', True, 'R.var_conv.'),
        'PromptIR': ('output', 'torch_default', True, 'var_conv.'),
        'Restormer': ('output', 'torch_default', False, None),
        'Transweather': ('clean.conv2d', 'torch_default', True, 'var_conv.'),
    }


def capture_inputs(module: torch.nn.Module, store: list):
    """Register a forward pre-hook that appends the module's first input to store."""
    return module.register_forward_pre_hook(lambda _, inputs: store.append(inputs[0].detach().clone()))


@pytest.mark.parametrize('arch', ARCHS)
def test_head_reads_its_declared_tap(arch):
    net = build_tiny(arch).eval()
    size = TINY[arch][1]
    tap_in, head_in = [], []
    capture_inputs(net.get_submodule(HEAD_SPECS[arch].tap), tap_in)
    capture_inputs(net.uncertainty_head, head_in)
    with torch.no_grad():
        net(torch.rand(1, 3, size, size), with_uncertainty=True)
    assert len(tap_in) == len(head_in) == 1
    assert torch.equal(head_in[0], tap_in[0][..., :size, :size])


@pytest.mark.parametrize('arch', ARCHS)
def test_head_init_follows_its_spec(arch):
    # torch's default: weights and biases uniform in +-1/sqrt(fan_in), weight std 1/sqrt(3 fan_in);
    # basicsr's default_init_weights(head, 0.1): kaiming-normal weights (std sqrt(2/fan_in)) x 0.1, zero biases.
    convs = [m for m in build_tiny(arch).uncertainty_head if isinstance(m, torch.nn.Conv2d)]
    normalised = []
    for conv in convs:
        fan_in = conv.weight[0].numel()
        if HEAD_SPECS[arch].init == 'kaiming_normal_x0.1':
            std = 0.1 * math.sqrt(2 / fan_in)
            assert torch.all(conv.bias == 0)
        else:
            std = 1 / math.sqrt(3 * fan_in)
            assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in)
            assert conv.bias.abs().max() <= 1 / math.sqrt(fan_in) and conv.bias.abs().max() > 0
        normalised.append(conv.weight.flatten() / std)
    assert abs(torch.cat(normalised).std().item() - 1) < 0.1


@pytest.mark.parametrize('detach', [False, True], ids=['attached', 'detached'])
@pytest.mark.parametrize('arch', ARCHS)
def test_uncertainty_detach_keeps_the_sigma_gradient_off_the_backbone(arch, detach):
    net = build_tiny(arch, uncertainty_detach=detach).eval()
    size = TINY[arch][1]
    _, u = net(torch.rand(2, 3, size, size), with_uncertainty=True)
    u.log().mean().backward()
    head = {id(p) for p in net.uncertainty_head.parameters()}
    backbone = [p for p in net.parameters() if id(p) not in head]
    assert all(p.grad is not None for p in net.uncertainty_head.parameters())
    reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in backbone]
    assert not any(reached) if detach else any(reached)


@pytest.mark.parametrize('arch', ARCHS)
def test_tur_training_lowers_every_tasks_l1(arch):
    # The plain L1 of the restored output per task, not TURLoss: σ alone lowers TURLoss even when the restored
    # output does not learn (with the output detached from the backbone this check fails for every arch).
    l1 = tur_training_l1(build_tiny(arch).train(), **TINY[arch][2])
    assert torch.all(l1[-1] < l1[0]), l1


def test_unknown_arch_name_is_refused():
    with pytest.raises(KeyError, match='SRResNett'):
        build_network({'type': 'SRResNett'})
