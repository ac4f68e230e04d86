"""TransWeather: the Tanh output, the input range, official size and keys under both spellings, loading at
construction (the checks shared by every backbone: test_archs.py; the released checkpoints: test_checkpoint.py)."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.errors import UserError

TINY = {'embed_dims': [8, 16, 16, 16], 'num_heads': [1, 1, 1, 1], 'mlp_ratios': [1, 1, 1, 1], 'depths': [1, 1, 1, 1],
        'sr_ratios': [2, 1, 1, 1], 'dec_num_heads': 1, 'dec_mlp_ratio': 1, 'dec_depth': 1, 'num_task_queries': 4}


def tiny(head: bool = False, seed: int = 0, name: str = 'Transweather', **kwargs):
    """A one-block-per-stage, 8-16-channel TransWeather with deterministic weights."""
    torch.manual_seed(seed)
    return build_network({'type': name, **TINY, 'uncertainty_head': head, **kwargs})


def test_output_is_tanh_bounded_without_input_residual():
    net = tiny().eval()
    with torch.no_grad():
        out = net(torch.full((1, 3, 32, 32), 50.0))
    assert out.abs().max() <= 1


def test_input_range_maps_unit_inputs_to_the_authors_range():
    # The authors normalise inputs to [-1, 1]; with input_range [-1, 1] the model on x is the [0, 1] model on 2x - 1.
    authors, plain = tiny(input_range=[-1, 1], head=True).eval(), tiny(head=True).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out_a, u_a = authors(x, with_uncertainty=True)
        out_p, u_p = plain(2 * x - 1, with_uncertainty=True)
    assert torch.equal(out_a, out_p) and torch.equal(u_a, u_p)
    assert not torch.allclose(out_a, plain(x))


def test_invalid_input_range_is_named():
    with pytest.raises(UserError) as err:
        tiny(input_range=[1, -1])
    assert_names(err, 'Transweather', 'network_g.input_range', '[1, -1]')


@pytest.mark.parametrize('name', ['Transweather', 'TransWeather'])
def test_official_configuration_has_official_parameter_count(name):
    # The authors' Transweather() (Tenc + Tdec + convtail + clean) has 38,052,078 parameters (38.052 M).
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        net = build_network({'type': name})
    assert sum(p.numel() for p in net.parameters()) == 38_052_078


def test_both_spellings_have_the_same_keys():
    assert list(tiny(name='Transweather').state_dict()) == list(tiny(name='TransWeather').state_dict())


def test_state_dict_keys_match_official_names():
    keys = set(tiny().state_dict())
    assert {'Tenc.patch_embed1.proj.weight', 'Tenc.mini_patch_embed4.norm.bias', 'Tenc.block1.0.attn.sr.weight',
            'Tenc.block1.0.mlp.dwconv.dwconv.weight', 'Tenc.patch_block3.0.attn.kv.weight', 'Tenc.pnorm3.weight',
            'Tdec.patch_embed1.proj.weight', 'Tdec.block1.0.attn.task_query', 'Tdec.norm1.bias',
            'convtail.convd32x.conv2d.weight', 'convtail.dense_4.0.conv1.conv2d.weight',
            'convtail.conv_output.conv2d.bias', 'clean.conv2d.weight'} <= keys


def test_path_argument_loads_the_checkpoint(tmp_path):
    src = tiny(seed=1)
    path = str(tmp_path / 'best')
    torch.save({f'module.{k}': v for k, v in src.state_dict().items()}, path)
    dst = tiny(seed=2, path=path)
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
