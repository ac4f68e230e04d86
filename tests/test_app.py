"""The web page (basicsr_tur/app.py): served on a free local port and driven through gradio_client, and its request
function called directly. Needs the `app` extra (gradio); skipped without it."""
from __future__ import annotations

import types
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from conftest import assert_error_line
from test_distributed import free_port

gr = pytest.importorskip('gradio')
gradio_client = pytest.importorskip('gradio_client')

from basicsr_tur import app  # noqa: E402  (after the skip: the module needs gradio only when a page is built)

TINY = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 1}
ARCH_OPT = 'num_feat=8 num_block=1 upscale=1'


def _tiny_checkpoint(folder) -> str:
    """A tiny SRResNet with the TUR head, saved as basicsr does ({'params': state_dict})."""
    torch.manual_seed(0)
    net = build_network(dict(TINY, uncertainty_head=True))
    path = str(folder / 'tiny_tur.pth')
    torch.save({'params': net.state_dict()}, path)
    return path


def _image(folder, name: str, dtype=np.uint8, gray: bool = False, size=(20, 24)) -> str:
    """A random image file (H, W) = size: 8 or 16 bits, BGR or gray."""
    rng = np.random.default_rng(0)
    peak = np.iinfo(dtype).max
    img = rng.integers(0, peak, size=size if gray else (*size, 3), endpoint=True).astype(dtype)
    path = str(folder / name)
    assert cv2.imwrite(path, img)
    return path


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """(client, weights, folder): the page on a free local port with the tiny model preselected (arch), closed
    after the module's tests."""
    folder = tmp_path_factory.mktemp('app')
    weights = _tiny_checkpoint(folder)
    choice = app.ModelChoice('arch', arch='SRResNet', arch_opt=ARCH_OPT, weights=weights, device='cpu')
    page = app.build_app(choice, root=str(folder), out_root=str(folder / 'out'))
    page.queue().launch(prevent_thread_lock=True, server_name='127.0.0.1', server_port=free_port(), quiet=True)
    try:
        client = gradio_client.Client(page.local_url, verbose=False, download_files=str(folder / 'downloads'),
                                      analytics_enabled=False)
        yield client, weights, folder
    finally:
        page.close()


def _restore_through_page(client, weights: str, image: str) -> tuple:
    return client.predict([gradio_client.handle_file(image)], 'arch', '', None, 'SRResNet', ARCH_OPT, weights, None,
                          'cpu', 'fp32', 0, 32, api_name='/restore')


def _downloaded(files: list[str], ending: str) -> str:
    found = [f for f in files if f.endswith(ending)]
    assert len(found) == 1, files
    return found[0]


def test_page_restores_8_bit_image_with_sigma(served):
    client, weights, folder = served
    shown, grid, pair, files, status = _restore_through_page(client, weights, _image(folder, 'photo.png'))
    restored = cv2.imread(_downloaded(files, 'photo_restored.png'), cv2.IMREAD_UNCHANGED)
    assert restored.dtype == np.uint8 and restored.shape == (20, 24, 3)
    sigma = np.load(_downloaded(files, 'photo_restored_sigma.npy'))
    assert sigma.dtype == np.float32 and sigma.shape == (20, 24) and (sigma > 0).all()
    assert grid.endswith('.png') and len(pair) == 2 and 'σ from the TUR head' in status


def test_page_keeps_16_bit_gray_image_16_bit(served):
    client, weights, folder = served
    files = _restore_through_page(client, weights, _image(folder, 'scan.png', np.uint16, gray=True))[3]
    restored = cv2.imread(_downloaded(files, 'scan_restored.png'), cv2.IMREAD_UNCHANGED)
    assert restored.dtype == np.uint16 and restored.shape == (20, 24)


def _request(tmp_path, files: list[str], cache=None, **model):
    model = {'kind': 'arch', 'opt': '', 'preset': None, 'arch': 'SRResNet', 'arch_opt': ARCH_OPT, 'weights': '',
             'weights_upload': None, 'device': 'cpu', 'precision': 'fp32', 'tile': 0, 'overlap': 32, **model}
    return app.restore_request(files, **model, cache=cache or app.ModelCache(str(tmp_path)),
                               out_root=str(tmp_path / 'out'))


def test_request_unreadable_image_is_one_line_error(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(gr.Error) as err:
        _request(tmp_path, [str(bad)], weights=weights)
    message = err.value.message
    assert '\n' not in message and 'broken.png' in message and 'not an image' in message
    assert 'Traceback' not in message


def test_request_unreadable_image_does_not_stop_the_others(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png')
    result = _request(tmp_path, [str(bad), _image(tmp_path, 'good.png')], weights=weights)
    assert len(result.pairs) == 1 and any(f.endswith('good_restored.png') for f in result.downloads)
    assert 'Restored 1 of 2 images' in result.status and '- error: broken.png: not an image' in result.status


def test_request_missing_weights_is_one_line_error(tmp_path):
    with pytest.raises(gr.Error) as err:
        _request(tmp_path, [_image(tmp_path, 'a.png')], weights=str(tmp_path / 'nowhere.pth'))
    assert '\n' not in err.value.message and 'weights not found' in err.value.message
    assert 'nowhere.pth' in err.value.message


def test_request_from_options_file_uses_its_checkpoint(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    opt = tmp_path / 'test.yml'
    opt.write_text(yaml.safe_dump({'network_g': TINY, 'path': {'pretrain_network_g': osp.basename(weights)}}))
    result = _request(tmp_path, [_image(tmp_path, 'a.png')], kind='options file', opt=str(opt), arch='')
    assert any(f.endswith('a_restored.png') for f in result.downloads) and 'tiny_tur.pth' in result.status


def test_model_is_loaded_once_per_choice(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    cache = app.ModelCache(str(tmp_path))
    image = _image(tmp_path, 'a.png')
    _request(tmp_path, [image], cache, weights=weights)
    _request(tmp_path, [image], cache, weights=weights)
    assert cache.loads == 1
    _request(tmp_path, [image], cache, weights=weights, precision='bf16')
    assert cache.loads == 2


def test_request_with_tiles_restores_whole_image(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    result = _request(tmp_path, [_image(tmp_path, 'big.png', size=(40, 44))], weights=weights, tile=24, overlap=8)
    restored = cv2.imread(_downloaded(result.downloads, 'big_restored.png'), cv2.IMREAD_UNCHANGED)
    assert restored.shape == (40, 44, 3) and 'tiles 24 (overlap 8)' in result.status


def test_request_same_name_uploads_get_distinct_outputs(tmp_path):
    weights = _tiny_checkpoint(tmp_path)
    (tmp_path / 'one').mkdir()
    (tmp_path / 'two').mkdir()
    images = [_image(tmp_path / 'one', 'x.png'), _image(tmp_path / 'two', 'x.png')]
    result = _request(tmp_path, images, weights=weights)
    names = {osp.basename(f) for f in result.downloads}
    assert len(result.pairs) == 2 and names >= {'x_restored.png', 'x_2_restored.png'}


def test_preset_choice_loads_through_presets_table(tmp_path, monkeypatch):
    weights = _tiny_checkpoint(tmp_path)
    checked = []
    preset = types.SimpleNamespace(name='tiny_tur', arch='SRResNet', arch_opt={k: v for k, v in TINY.items()
                                                                                if k != 'type'}, param_key='params')
    from basicsr_tur import presets
    monkeypatch.setitem(presets.PRESETS, 'tiny_tur', preset)
    monkeypatch.setattr(presets, 'check_preset_keys', lambda p, state, where: checked.append((p.name, where)))
    assert 'tiny_tur' in app.preset_names()
    result = _request(tmp_path, [_image(tmp_path, 'a.png')], kind='preset', preset='tiny_tur', arch='',
                      weights=weights)
    assert checked == [('tiny_tur', weights)] and any(f.endswith('a_restored.png') for f in result.downloads)


def test_app_command_line_error_is_one_line(capsys):
    assert app.main(['--arch', 'SRResNet']) == 1
    assert_error_line(capsys.readouterr().err, '--arch SRResNet', '--weights')
