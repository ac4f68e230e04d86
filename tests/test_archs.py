"""Every backbone basicsr_tur registers, one parametrised check per behaviour (timm's tests/test_models.py habit):
the output at any input size, the uncertainty head, checkpoints with and without the head, eval and training.

What only one backbone has (official parameter counts and key names, its own arguments) stays in
tests/test_<name>_arch.py; the released checkpoints at full size are in tests/test_checkpoint.py.
"""
from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import assert_names
from torch.nn import functional as F

from basicsr_tur.archs.uncertainty import HEAD_PREFIX, HEAD_SPECS
from basicsr_tur.losses.tur_loss import TURLoss
from basicsr_tur.models import tur_model
from basicsr_tur.utils.checkpoint import load_checkpoint
from basicsr_tur.utils.errors import CheckpointError, UserError


@dataclass(frozen=True)
class Tiny:
    """How one backbone is tested.

    kwargs: constructor arguments of a tiny model (official names).
    size: a square side the tiny model runs on without padding.
    size_multiple: what the tiny model's `size_multiple` says: the sides it runs on without padding.
    bad_key: the state-dict key that the wrong-shape check corrupts.
    release: how the official release wraps its tensors (the wrong-shape check saves the file that way).
    refuses_small: inputs too small to reflect-pad to `size_multiple` are refused (the others repeat their border).
    train: arguments of `tur_training_l1` that make the restored output learn.
    """

    kwargs: dict
    size: int
    size_multiple: int
    bad_key: str
    release: Callable[[dict], dict]
    refuses_small: bool = False
    train: dict = field(default_factory=dict)


# PromptIR keeps the authors' dim 48 (its prompt widths are fixed for it) and diverges above lr ~5e-4; AirNet's
# deformable convolutions are slow, so it trains on 8² images; the 8-channel SRResNet needs more than 5 steps to move
# every task's L1 (0.3% after 8).
TINY = {
    'SRResNet': Tiny({'num_feat': 8, 'num_block': 2}, 16, 1, 'conv_first.weight', lambda s: {'params': s},
                     train={'steps': 8}),
    'Uformer': Tiny({'img_size': 16, 'embed_dim': 4, 'win_size': 2, 'depths': [1, 2, 1, 1, 1, 1, 1, 2, 1],
                     'modulator': True, 'drop_path_rate': 0.}, 16, 16, 'decoderlayer_3.blocks.0.modulator.weight',
                    lambda s: {'epoch': 250, 'state_dict': {f'module.{k}': v for k, v in s.items()}}),
    # A MoCo queue of another batch size is the usual wrong shape (the single-task Denoise.pth holds 3 x dim keys).
    'AirNet': Tiny({'n_groups': 1, 'n_blocks': 1, 'encoder_dim': 16, 'batch_size': 2}, 16, 1, 'E.E.queue',
                   lambda s: s, train={'size': 8, 'lr': 1e-3}),
    'PromptIR': Tiny({'decoder': True, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}, 16, 8,
                     'prompt2.prompt_param', lambda s: {'epoch': 149, 'state_dict': {f'net.{k}': v
                                                                                     for k, v in s.items()}},
                     refuses_small=True, train={'size': 8, 'lr': 3e-4}),
    'Restormer': Tiny({'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}, 16, 8,
                      'latent.0.attn.temperature', lambda s: {'params': s}, refuses_small=True),
    'Transweather': Tiny({'embed_dims': [8, 16, 16, 16], 'num_heads': [1, 1, 1, 1], 'mlp_ratios': [1, 1, 1, 1],
                          'depths': [1, 1, 1, 1], 'sr_ratios': [2, 1, 1, 1], 'dec_num_heads': 1, 'dec_mlp_ratio': 1,
                          'dec_depth': 1, 'num_task_queries': 4, 'drop_path_rate': 0.}, 32, 16,
                         'Tdec.block1.0.attn.task_query', lambda s: {f'module.{k}': v for k, v in s.items()}),
}
ARCHS = list(TINY)
# Registered names that are another spelling of a backbone above (a subclass adding nothing).
ALIASES = {'TransWeather': 'Transweather'}
ODD = (17, 23)  # a multiple of no backbone's size_multiple
SMALL = (3, 40)  # fewer rows than the padding to any size_multiple above 1 adds


@functools.cache
def _built(arch: str, seed: int, kwargs: tuple) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network({'type': arch, **TINY[arch].kwargs, 'uncertainty_head': True, **dict(kwargs)})


def shared_tiny(arch: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """The tiny `arch` with deterministic weights, its head on unless kwargs say otherwise, in eval mode: one model
    shared by the tests (PromptIR, with the authors' dim 48, takes long to build and to copy), so only for reading it
    and for eval forwards without gradients; the random generator is left seeded, so that a test's inputs do not
    depend on the tests that ran before it."""
    net = _built(arch, seed, tuple(sorted(kwargs.items()))).eval()
    torch.manual_seed(seed)
    return net


def build_tiny(arch: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A copy of shared_tiny(arch, seed, **kwargs) of the test's own, in training mode as built."""
    return copy.deepcopy(shared_tiny(arch, seed, **kwargs)).train()


# The plain backbone (no head) is built with another seed than the model with the head, so that a checkpoint
# moved from one to the other changes every randomly initialised tensor.
PLAIN = {'seed': 1, 'uncertainty_head': False}


@pytest.fixture(autouse=True, scope='module')
def free_the_built_models():
    """Drop the cached models after this module (PromptIR's take about 70 MB each)."""
    yield
    _built.cache_clear()


def count(net: torch.nn.Module) -> int:
    """Number of parameters of net."""
    return sum(p.numel() for p in net.parameters())


def capture_inputs(module: torch.nn.Module, store: list):
    """Register a forward pre-hook that appends the module's first input to store."""
    return module.register_forward_pre_hook(lambda _, inputs: store.append(inputs[0].detach().clone()))


def test_every_registered_backbone_has_a_head_spec_and_tiny_arguments():
    ours = {name: cls for name, cls in ARCH_REGISTRY if cls.__module__.startswith('basicsr_tur.')}
    for name, cls in ours.items():
        assert any(base.__name__ in HEAD_SPECS for base in cls.__mro__), name
    assert set(HEAD_SPECS) == set(TINY)
    assert set(ours) == set(TINY) | set(ALIASES)
    assert all(issubclass(ours[alias], ours[name]) for alias, name in ALIASES.items())


def test_unknown_arch_name_is_refused():
    with pytest.raises(KeyError) as err:  # basicsr's registry
        build_network({'type': 'SRResNett'})
    assert 'SRResNett' in str(err.value)


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


# Input sizes.

@pytest.mark.parametrize('arch', ARCHS)
def test_size_multiple_is_declared(arch):
    # Tiled inference rounds its tiles up to it; the reflect-padding check below shows it is the forward's own.
    assert shared_tiny(arch).size_multiple == TINY[arch].size_multiple
    assert TINY[arch].size % TINY[arch].size_multiple == 0


@pytest.mark.parametrize('arch', ARCHS)
def test_output_has_input_shape_for_odd_sizes(arch):
    x = torch.rand(2, 3, *ODD)
    with torch.no_grad():
        assert shared_tiny(arch)(x).shape == x.shape


@pytest.mark.parametrize('arch', ARCHS)
def test_non_square_input_of_valid_sides_keeps_its_shape(arch):
    size = TINY[arch].size
    x = torch.rand(1, 3, size, 3 * size)
    with torch.no_grad():
        assert shared_tiny(arch)(x).shape == x.shape


@pytest.mark.parametrize('arch', [arch for arch in ARCHS if TINY[arch].size_multiple > 1])
def test_odd_size_output_is_the_crop_of_the_reflect_padded_forward(arch):
    # The padding of the official test scripts (Restormer's test.py, PromptIR's demo.py: bottom/right, reflect).
    net = shared_tiny(arch)
    multiple, (h, w) = net.size_multiple, ODD
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        padded = net(F.pad(x, (0, -w % multiple, 0, -h % multiple), mode='reflect'))
        assert torch.equal(net(x), padded[..., :h, :w])


@pytest.mark.parametrize('arch', [arch for arch in ARCHS if not TINY[arch].refuses_small])
def test_input_smaller_than_its_padding_keeps_its_shape(arch):
    x = torch.rand(1, 3, *SMALL)
    with torch.no_grad():
        out, u = shared_tiny(arch)(x, with_uncertainty=True)
    assert out.shape == u.shape == x.shape


@pytest.mark.parametrize('arch', [arch for arch in ARCHS if TINY[arch].refuses_small])
def test_input_too_small_to_reflect_pad_is_refused_in_one_line(arch):
    net = shared_tiny(arch)
    multiple, (h, w) = net.size_multiple, SMALL
    with pytest.raises(UserError) as err:
        net(torch.rand(1, 3, *SMALL))
    assert_names(err, f'{h}x{w}', f'{multiple}x{multiple}')


# The uncertainty head.

@pytest.mark.parametrize('arch', ARCHS)
def test_uncertainty_has_output_shape_and_is_positive(arch):
    x = torch.randn(1, 3, *ODD) * 10
    with torch.no_grad():
        out, u = shared_tiny(arch)(x, with_uncertainty=True)
    assert out.shape == u.shape == x.shape
    assert (u > 0).all()


@pytest.mark.parametrize('arch', ARCHS)
def test_asking_uncertainty_without_head_fails_clearly(arch):
    net = shared_tiny(arch, **PLAIN)
    assert net.uncertainty_head is None
    with torch.no_grad(), pytest.raises(RuntimeError) as err:
        net(torch.rand(1, 3, 8, 8), with_uncertainty=True)
    assert_names(err, arch, 'uncertainty_head: true', 'network_g')


@pytest.mark.parametrize('arch', ARCHS)
def test_head_keys_live_under_their_own_prefix(arch):
    keys_with = set(shared_tiny(arch).state_dict())
    keys_without = set(shared_tiny(arch, **PLAIN).state_dict())
    assert keys_without < keys_with
    assert all(k.startswith(HEAD_PREFIX) for k in keys_with - keys_without)
    assert not any(k.startswith(HEAD_PREFIX) for k in keys_without)


@pytest.mark.parametrize('arch', ARCHS)
def test_head_is_three_convolutions_as_wide_as_its_tap(arch):
    # conv c->c, conv c->c, conv c->3 (3x3, with biases): at c = 64 the 2 x 36,928 + 1,731 of SRResNet and AirNet.
    net = shared_tiny(arch)
    c = net.get_submodule(HEAD_SPECS[arch].tap).in_channels
    assert count(net.uncertainty_head) == 2 * (9 * c * c + c) + (9 * c * 3 + 3)
    assert count(net) - count(shared_tiny(arch, **PLAIN)) == count(net.uncertainty_head)


@pytest.mark.parametrize('arch', ARCHS)
def test_eval_output_with_head_equals_backbone_without_head(arch):
    # The head never changes what a backbone restores: its backbone weights load strictly into the plain model,
    # which then restores exactly the same image, with the head asked for or not.
    with_head, without = shared_tiny(arch), build_tiny(arch, **PLAIN).eval()
    without.load_state_dict({k: v for k, v in with_head.state_dict().items() if not k.startswith(HEAD_PREFIX)},
                            strict=True)
    x = torch.rand(1, 3, *ODD)
    with torch.no_grad():
        assert torch.equal(with_head(x), without(x))
        assert torch.equal(with_head(x), with_head(x, with_uncertainty=True)[0])


@pytest.mark.parametrize('arch', ARCHS)
def test_head_reads_its_declared_tap(arch):
    net = build_tiny(arch).eval()
    size = TINY[arch].size
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
    convs = [m for m in shared_tiny(arch).uncertainty_head if isinstance(m, torch.nn.Conv2d)]
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
    net = build_tiny(arch, **({'uncertainty_detach': True} if detach else {})).eval()
    size = TINY[arch].size
    _, u = net(torch.rand(2, 3, size, size), with_uncertainty=True)
    u.log().mean().backward()
    head = {id(p) for p in net.uncertainty_head.parameters()}
    backbone = [p for p in net.parameters() if id(p) not in head]
    assert all(p.grad is not None for p in net.uncertainty_head.parameters())
    reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in backbone]
    assert not any(reached) if detach else any(reached)


# Checkpoints (the loader itself, every wrapping and the released files: tests/test_checkpoint.py).

def saved(tmp_path, state: dict, name: str = 'net.pth') -> str:
    """Save state under tmp_path and return its path."""
    path = str(tmp_path / name)
    torch.save(state, path)
    return path


def assert_holds(net: torch.nn.Module, state: dict) -> None:
    """Every tensor of state is in net under the same key."""
    own = net.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


@pytest.mark.parametrize('arch', ARCHS)
def test_backbone_checkpoint_loads_strictly_into_the_model_with_the_head_leaving_the_head_as_built(arch, tmp_path):
    src, dst = shared_tiny(arch, **PLAIN), build_tiny(arch)
    head = {k: v.clone() for k, v in dst.state_dict().items() if k.startswith(HEAD_PREFIX)}
    load_checkpoint(dst, saved(tmp_path, {'params': src.state_dict()}), strict=True)
    assert_holds(dst, src.state_dict())
    assert_holds(dst, head)


@pytest.mark.parametrize('arch', ARCHS)
def test_checkpoint_with_the_head_loads_strictly_into_the_plain_backbone(arch, tmp_path):
    src, dst = shared_tiny(arch), build_tiny(arch, **PLAIN)
    load_checkpoint(dst, saved(tmp_path, {'params': src.state_dict()}), strict=True)
    assert_holds(dst, {k: v for k, v in src.state_dict().items() if not k.startswith(HEAD_PREFIX)})


@pytest.mark.parametrize('arch', [arch for arch in ARCHS if HEAD_SPECS[arch].authors_key])
def test_checkpoint_under_the_authors_head_names_loads_strictly(arch, tmp_path):
    # Our head renamed to the authors' `var_conv` prefix, as their TUR checkpoints hold it: the class's
    # checkpoint_filter_fn (rename_authors_head) maps it back.
    src, dst = shared_tiny(arch), build_tiny(arch)
    with torch.no_grad():
        for tensor in dst.state_dict().values():
            tensor.zero_()
    theirs = {(HEAD_SPECS[arch].authors_key + k[len(HEAD_PREFIX):] if k.startswith(HEAD_PREFIX) else k): v
              for k, v in src.state_dict().items()}
    assert not any(k.startswith(HEAD_PREFIX) for k in theirs)
    load_checkpoint(dst, saved(tmp_path, theirs), strict=True)
    assert_holds(dst, src.state_dict())


@pytest.mark.parametrize('arch', ARCHS)
def test_wrong_shape_in_a_released_checkpoint_names_the_key(arch, tmp_path):
    tiny = TINY[arch]
    state = dict(shared_tiny(arch, **PLAIN).state_dict())
    good = state[tiny.bad_key]
    state[tiny.bad_key] = torch.zeros(*good.shape[:-1], good.shape[-1] + 1)
    path = saved(tmp_path, tiny.release(state))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_tiny(arch, **PLAIN), path)
    assert_names(err, path, f"'{tiny.bad_key}'")


# Eval and training.

@pytest.mark.parametrize('arch', ARCHS)
def test_eval_forward_is_repeatable_and_changes_no_state(arch):
    net = build_tiny(arch).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    size = TINY[arch].size
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        first, second = net(x, with_uncertainty=True), net(x, with_uncertainty=True)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert_holds(net, before)


STOCHASTIC_DEPTH = [arch for arch in ARCHS if 'drop_path_rate' in inspect.signature(ARCH_REGISTRY.get(arch)).parameters]


@pytest.mark.parametrize('arch', STOCHASTIC_DEPTH)
def test_stochastic_depth_draws_in_training_only(arch):
    net = build_tiny(arch, drop_path_rate=0.5)
    size = TINY[arch].size
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert not torch.equal(net.train()(x), net(x))
        assert torch.equal(net.eval()(x), net(x))


@pytest.mark.parametrize('arch', ARCHS)
def test_restored_output_reaches_every_parameter_but_those_declared_unused(arch):
    # A parameter left without a gradient makes DistributedDataParallel fail at the next step unless it is kept out
    # of DDP; a backbone names them in `unused_parameter_prefixes` (the head is read by the loss alone).
    net = build_tiny(arch).train()
    size = TINY[arch].size
    net(torch.rand(2, 3, size, size)).mean().backward()
    unused = net.unused_parameter_prefixes
    assert all(prefix.endswith('.') for prefix in unused)
    for name, param in net.named_parameters():
        expected = param.requires_grad and not name.startswith((HEAD_PREFIX, *unused))
        assert (param.grad is not None) == expected, name


def tur_training_l1(net: torch.nn.Module, size: int = 16, steps: int = 5, lr: float = 2e-3, noise: float = 0.1,
                    seed: int = 0, tasks: int = 3, per_task: int = 2) -> torch.Tensor:
    """Train `net` with TURLoss for `steps` Adam steps on one fixed noisy batch (`per_task` samples of each of
    `tasks` tasks) and return the plain L1 of the restored output per task, (steps + 1, tasks): row 0 before any
    step, row i after step i (measured in the training forward of the next step, the last one in an extra forward).

    The L1 of the restored output, not TURLoss itself, is what a test should watch: σ alone lowers TURLoss (its
    log-σ term) even when the restored output does not learn.
    """
    loss_fn = TURLoss()
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    torch.manual_seed(seed)
    gt = torch.rand(tasks * per_task, 3, size, size)
    lq = (gt + noise * torch.randn_like(gt)).clamp(0, 1)
    task_ids = torch.arange(tasks).repeat_interleave(per_task)
    l1 = []
    for step in range(steps + 1):
        out, u = net(lq, with_uncertainty=True)
        per_sample = (out.detach() - gt).abs().mean(dim=(1, 2, 3))
        l1.append(torch.stack([per_sample[task_ids == t].mean() for t in range(tasks)]))
        if step == steps:
            break
        loss = loss_fn(out, gt, u, task_ids)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return torch.stack(l1)


@pytest.mark.parametrize('arch', ARCHS)
def test_tur_training_lowers_every_tasks_l1(arch):
    # The plain L1 of the restored output per task, not TURLoss: σ alone lowers TURLoss even when the restored
    # output does not learn (with the output detached from the backbone this check fails for every arch).
    l1 = tur_training_l1(build_tiny(arch).train(), **TINY[arch].train)
    assert torch.all(l1[-1] < l1[0]), l1


# Training under DistributedDataParallel (TURModel.model_to_device; DDP itself: tests/test_distributed.py).

def ddp_arguments(net: torch.nn.Module, opt: dict, monkeypatch) -> dict:
    """The keyword arguments TURModel.model_to_device gives DistributedDataParallel to wrap net under options opt,
    and under 'ignored' the parameter names it keeps out of DDP."""
    seen = {}
    monkeypatch.setattr(tur_model, 'DistributedDataParallel', lambda module, **kwargs: seen.update(
        kwargs, ignored=set(module._ddp_params_and_buffers_to_ignore)))
    model = object.__new__(tur_model.TURModel)  # the options alone: no network built, no process group
    model.opt, model.is_train, model.device = {'dist': True, **opt}, True, torch.device('cpu')
    model.model_to_device(copy.deepcopy(net))
    return seen


TUR_TRAINING = {'train': {'pixel_opt': {'type': 'TURLoss'}}}


@pytest.mark.parametrize('arch', ARCHS)
def test_ddp_keeps_out_the_modules_the_forward_never_reaches_instead_of_looking_for_unused_ones(arch, monkeypatch):
    # Measured on TransWeather with two gloo ranks: with those modules in DDP and no search for unused parameters,
    # the second step fails ("Expected to have finished reduction in the prior iteration"); PromptIR's official
    # unused convolutions do the same. Kept out of DDP, no step needs the search (tests/test_distributed.py).
    net = shared_tiny(arch)
    declared = {name for name, _ in net.named_parameters() if name.startswith(net.unused_parameter_prefixes)}
    assert bool(declared) == (arch in ('AirNet', 'PromptIR', 'Transweather'))
    arguments = ddp_arguments(net, TUR_TRAINING, monkeypatch)
    assert arguments['find_unused_parameters'] is False and arguments['ignored'] == declared


@pytest.mark.parametrize('head', [True, False], ids=['head', 'no_head'])
def test_ddp_keeps_out_a_head_the_loss_does_not_read(head, monkeypatch):
    net = shared_tiny('SRResNet', uncertainty_head=head)
    arguments = ddp_arguments(net, {'train': {'pixel_opt': {'type': 'L1Loss'}}}, monkeypatch)
    assert arguments['find_unused_parameters'] is False
    assert arguments['ignored'] == {name for name, _ in net.named_parameters() if name.startswith(HEAD_PREFIX)}
    assert bool(arguments['ignored']) == head


def test_ddp_keeps_nothing_out_when_testing(monkeypatch):
    seen = {}
    monkeypatch.setattr(tur_model, 'DistributedDataParallel', lambda module, **kwargs: seen.update(
        ignored=set(module._ddp_params_and_buffers_to_ignore)))
    model = object.__new__(tur_model.TURModel)
    model.opt, model.is_train, model.device = {'dist': True}, False, torch.device('cpu')
    model.model_to_device(copy.deepcopy(shared_tiny('Transweather')))
    assert seen['ignored'] == set()


@pytest.mark.parametrize('arch, value', [('SRResNet', True), ('Transweather', False)])
def test_find_unused_parameters_option_overrides_what_the_model_would_choose(arch, value, monkeypatch):
    opt = {**TUR_TRAINING, 'find_unused_parameters': value}
    assert ddp_arguments(shared_tiny(arch), opt, monkeypatch)['find_unused_parameters'] == value
