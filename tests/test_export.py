"""basicsr_tur/export.py and scripts/export_onnx.py: ONNX export of the restoration forward, onnxruntime parity."""
import importlib.util
from os import path as osp

import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import assert_error_line, assert_names, make_test_options

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
import onnx

from basicsr_tur.export import DEFAULT_SAMPLE, EXPORTABLE, check_parity, export_onnx, resolve_opset, table_name
from basicsr_tur.utils.errors import ArgumentError, UserError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('export_onnx_script', osp.join(REPO, 'scripts', 'export_onnx.py'))
export_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_script)

TINY_SRRESNET = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}


def tiny_srresnet(seed: int = 0, head: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network({**TINY_SRRESNET, 'uncertainty_head': head}).eval()


@pytest.fixture(scope='module')
def srresnet_onnx(tmp_path_factory):
    """(tiny SRResNet with a TUR head, its dynamic ONNX file, the export report)."""
    net = tiny_srresnet(head=True)
    path = str(tmp_path_factory.mktemp('onnx') / 'srresnet.onnx')
    return net, path, export_onnx(net, path)


def test_every_registered_backbone_is_in_the_exportability_table():
    ours = [cls for _, cls in ARCH_REGISTRY if cls.__module__.startswith('basicsr_tur.')]
    assert {table_name(cls) for cls in ours} == set(EXPORTABLE)  # an alias (TransWeather) finds its base's entry


def test_srresnet_dynamic_export_matches_torch_at_other_sizes(srresnet_onnx):
    net, path, report = srresnet_onnx
    # The default sizes differ from the 2x3x61x67 sample in batch, height and width.
    assert check_parity(net, path) <= 1e-4
    assert report.dynamic and report.height == (2, None) and report.width == (2, None)


def test_export_names_dynamic_axes_and_leaves_out_the_uncertainty_head(srresnet_onnx):
    _, path, _ = srresnet_onnx
    model = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    assert [o.name for o in model.graph.output] == ['output']
    assert not [i.name for i in model.graph.initializer if 'uncertainty_head' in i.name]


def test_default_opset_is_18_and_opset_17_is_honoured(srresnet_onnx, tmp_path):
    net, path, report = srresnet_onnx
    assert report.opset == 18 and onnx.load(path).opset_import[0].version == 18
    path17 = str(tmp_path / 'sr17.onnx')
    assert export_onnx(net, path17, opset=17).opset == 17
    assert onnx.load(path17).opset_import[0].version == 17
    assert check_parity(net, path17) <= 1e-4


def test_static_export_fixes_height_and_width(tmp_path):
    net, path = tiny_srresnet(), str(tmp_path / 'static.onnx')
    report = export_onnx(net, path, dynamic=False, sample_size=(24, 40))
    assert report.height == (24, 24) and report.width == (40, 40)
    assert check_parity(net, path) <= 1e-4  # at its own size
    with pytest.raises(UserError) as err:
        check_parity(net, path, sizes=[(1, 37, 53)])
    assert_names(err, path, '24x40', '37x53')


def test_parity_beyond_atol_is_one_line_value_error(srresnet_onnx):
    _, path, _ = srresnet_onnx
    with pytest.raises(UserError) as err:
        check_parity(tiny_srresnet(seed=1), path)
    assert_names(err, path, 'atol 0.0001', '1x3x37x53')


def test_restormer_dynamic_export_matches_torch_at_other_sizes(tmp_path):
    # 37x53 and 48x80 need padding to multiples of 8, 64x64 none: both branches of the traced padding run.
    torch.manual_seed(0)
    net = build_network({'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}).eval()
    path = str(tmp_path / 'restormer.onnx')
    export_onnx(net, path, sample_size=DEFAULT_SAMPLE)
    assert check_parity(net, path) <= 1e-4


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ArgumentError) as err:
        export_onnx(tiny_srresnet(), str(tmp_path / 'x.onnx'), opset=16)
    assert_names(err, 'opset 16', '17')
    assert not (tmp_path / 'x.onnx').exists()


def test_airnet_below_opset_19_is_refused_naming_deformconv():
    with pytest.raises(ArgumentError) as err:
        resolve_opset('AirNet', 18)
    assert_names(err, 'AirNet', '19', '18', 'DeformConv')
    assert resolve_opset('AirNet', None) == 19


def save_checkpoint(path, params: torch.nn.Module, ema: torch.nn.Module | None = None) -> str:
    ckpt = {'params': params.state_dict()}
    if ema is not None:
        ckpt['params_ema'] = ema.state_dict()
    torch.save(ckpt, path)
    return str(path)


def test_cli_prefers_ema_weights_and_checks_parity(tmp_path, capsys):
    ema = tiny_srresnet(seed=2, head=True)  # a TUR checkpoint: its head weights are dropped
    weights = save_checkpoint(tmp_path / 'net_g.pth', tiny_srresnet(seed=1, head=True), ema)
    out = str(tmp_path / 'cli.onnx')
    argv = ['--arch', 'SRResNet', '--arch-opt', 'num_feat=8', '--arch-opt', 'num_block=2', '--weights', weights,
            '--out', out, '--check']
    assert export_script.main(argv) == 0
    printed = capsys.readouterr().out
    assert f'weights {weights} (params_ema)' in printed and 'max abs diff' in printed
    assert check_parity(tiny_srresnet(seed=2), out) <= 1e-4  # the EMA weights, not params


def test_cli_exports_from_a_test_options_file(tmp_path, paired_root, capsys):
    weights = save_checkpoint(tmp_path / 'net_g.pth', tiny_srresnet(seed=3))
    opt = make_test_options(tmp_path, paired_root, weights)
    out = str(tmp_path / 'opt.onnx')
    assert export_script.main(['-opt', opt, '--out', out, '--static', '24', '32', '--check']) == 0
    assert f'weights {weights} (params)' in capsys.readouterr().out
    assert check_parity(tiny_srresnet(seed=3), out, sizes=[(2, 24, 32)]) <= 1e-4


@pytest.mark.parametrize('argv, names', [
    (['--arch', 'SRResNet', '--opset', '16'], ['--opset 16', '17']),
    (['--arch', 'AirNet', '--opset', '18'], ['AirNet', '19', '18']),
    (['--arch', 'SRResNet', '--weights', 'missing.pth'], ['missing.pth', '--arch SRResNet']),
], ids=['opset-16', 'airnet-opset-18', 'missing-weights'])
def test_cli_refusals_are_one_line(tmp_path, capsys, argv, names):
    out = tmp_path / 'refused.onnx'
    assert export_script.main(argv + ['--out', str(out)]) == 1
    assert_error_line(capsys.readouterr().err, *names)
    assert not out.exists()


def test_cli_exports_a_one_channel_network(tmp_path, capsys):
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'num_in_ch': 1, 'num_out_ch': 1})
    weights = str(tmp_path / 'gray.pth')
    torch.save({'params': net.state_dict()}, weights)
    out = str(tmp_path / 'gray.onnx')
    assert export_script.main(['--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', 'num_in_ch=1',
                               'num_out_ch=1', '--weights', weights, '--out', out, '--check']) == 0
    assert 'max abs diff' in capsys.readouterr().out
