"""restore.py: inputs and outputs (names, collisions, dtypes, EXIF), model loading, σ maps, and its one-line errors."""
import os
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names
from PIL import Image, ImageOps

from basicsr_tur.inference import (
    ModelSource,
    Restorer,
    choose_param_key,
    load_restorer,
    read_image,
    source_from_options,
)
from basicsr_tur.restore import collect_inputs, main, plan_jobs
from basicsr_tur.utils.errors import ArgumentError, CheckpointError, RunError
from basicsr_tur.utils.option_file import OptionError

TINY = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}


class Identity(torch.nn.Module):
    """A 'network' returning its input: what goes in must come out, bit for bit."""

    def forward(self, x, with_uncertainty=False):
        return (x, x.abs() + 0.1) if with_uncertainty else x


def identity_restorer(**kwargs) -> Restorer:
    return Restorer(Identity(), torch.device('cpu'), **kwargs)


def photo(h=48, w=64) -> np.ndarray:
    """An 8-bit BGR crop of a real photograph (scikit-image's astronaut)."""
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:100 + h, 200:200 + w, ::-1])


@pytest.fixture
def weights(tmp_path) -> str:
    """A tiny SRResNet checkpoint with the TUR head and EMA weights."""
    torch.manual_seed(0)
    net = build_network(dict(TINY, uncertainty_head=True))
    path = str(tmp_path / 'tiny.pth')
    torch.save({'params': net.state_dict(), 'params_ema': net.state_dict()}, path)
    return path


@pytest.fixture
def folder(tmp_path) -> str:
    """Images of every kind in in/ (and in/sub/): 8-bit, 16-bit, gray, RGBA, JPEG, and one broken file."""
    root = tmp_path / 'in'
    (root / 'sub').mkdir(parents=True)
    img = photo()
    cv2.imwrite(str(root / 'a8.png'), img)
    cv2.imwrite(str(root / 'a16.png'), img.astype(np.uint16) * 257 + 3)
    cv2.imwrite(str(root / 'gray.png'), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    alpha = (np.arange(img.size // 3).reshape(img.shape[:2]) % 251).astype(np.uint8)
    cv2.imwrite(str(root / 'sub' / 'rgba.png'), np.dstack([img, alpha]))
    cv2.imwrite(str(root / 'photo.jpg'), img)
    (root / 'broken.png').write_bytes(b'not a png')
    return str(root)


# Inputs and outputs


def test_a_folder_gives_its_images_and_recursive_its_sub_folders(folder):
    flat = [rel for _, rel in collect_inputs([folder])]
    assert flat == ['a16.png', 'a8.png', 'broken.png', 'gray.png', 'photo.jpg']
    deep = [rel for _, rel in collect_inputs([folder], recursive=True)]
    assert osp.join('sub', 'rgba.png') in deep and len(deep) == 6


def test_a_glob_keeps_paths_relative_to_its_root(folder):
    found = collect_inputs([osp.join(folder, '*', '*.png')])
    assert [rel for _, rel in found] == [osp.join('sub', 'rgba.png')]


def test_an_input_naming_nothing_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        collect_inputs([str(tmp_path / 'nothing_here')])
    assert_names(err, f"-i {tmp_path / 'nothing_here'}")
    with pytest.raises(ArgumentError) as err:
        collect_inputs([str(tmp_path)])
    assert_names(err, tmp_path, '.png', '--recursive')


def test_two_inputs_writing_one_file_are_refused(folder, tmp_path):
    inputs = collect_inputs([osp.join(folder, 'a8.png')]) + [(osp.join(folder, 'photo.jpg'), 'a8.jpg')]
    with pytest.raises(ArgumentError) as err:
        plan_jobs(inputs, str(tmp_path / 'out'), ext='png')
    assert_names(err, osp.join(folder, 'a8.png'), osp.join(folder, 'photo.jpg'), tmp_path / 'out' / 'a8.png')


def test_a_sigma_map_may_not_overwrite_another_output(tmp_path):
    for name in ('x.png', 'x_sigma.png'):
        cv2.imwrite(str(tmp_path / name), photo())
    inputs = collect_inputs([str(tmp_path)])
    plan_jobs(inputs, str(tmp_path / 'out'))  # without σ maps there is no clash
    with pytest.raises(ArgumentError) as err:
        plan_jobs(inputs, str(tmp_path / 'out'), uncertainty=True)
    assert_names(err, tmp_path / 'x.png', tmp_path / 'x_sigma.png', tmp_path / 'out' / 'x_sigma.png')


def test_an_output_over_an_input_is_refused(folder):
    with pytest.raises(ArgumentError) as err:
        plan_jobs(collect_inputs([folder]), folder)
    assert_names(err, osp.join(folder, 'a16.png'), '-o', '--suffix')
    assert plan_jobs(collect_inputs([folder]), folder, suffix='_restored')[0].output.endswith('a16_restored.png')


@pytest.mark.parametrize('kind', ['bgr8', 'bgr16', 'gray8', 'gray16', 'bgra8'])
def test_every_image_kind_comes_back_as_it_went_in(kind):
    img = photo()
    if kind.startswith('gray'):
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if kind.endswith('16'):
        img = img.astype(np.uint16) * 257 + 5
    alpha = (np.arange(img.shape[0] * img.shape[1]) % 256).reshape(img.shape[:2]).astype(img.dtype)
    if kind == 'bgra8':
        img = np.dstack([img, alpha])
    out = identity_restorer().restore(img).image
    assert out.dtype == img.dtype and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize('in_channels, img', [
    (3, np.dstack([cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY), np.full(photo().shape[:2], 9, np.uint8)])),
    (1, np.dstack([photo(), np.full(photo().shape[:2], 9, np.uint8)]))], ids=['gray+alpha', 'one-channel-net'])
def test_a_gray_result_with_alpha_is_written_as_bgra(tmp_path, in_channels, img):
    # OpenCV writes no two-channel image: gray + alpha comes back as BGRA with equal colour channels.
    out = identity_restorer(in_channels=in_channels).restore(img).image
    assert out.shape == (*img.shape[:2], 4) and (out[..., 3] == 9).all()
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    cv2.imwrite(str(tmp_path / 'x.png'), out)  # encodable


def test_the_alpha_channel_is_not_restored():
    class Darken(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    img = np.dstack([photo(), np.full(photo().shape[:2], 77, np.uint8)])
    out = Restorer(Darken(), torch.device('cpu')).restore(img).image
    assert (out[..., 3] == 77).all()
    np.testing.assert_allclose(out[..., :3], img[..., :3] / 2, atol=0.51)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    path = str(tmp_path / 'o.png')
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(photo(30, 50)[..., ::-1]).save(path, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))[..., ::-1]
    np.testing.assert_array_equal(read_image(path), upright)


def test_sixteen_bit_png_keeps_sixteen_bits_on_disk(tmp_path, weights):
    img = photo().astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / 'x.png'), img)
    assert main(['--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights', weights,
                 '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out')]) == 0
    out = cv2.imread(str(tmp_path / 'out' / 'x.png'), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == img.shape and (out % 257 != 0).any()


# Model loading


def test_ema_weights_are_preferred_and_an_explicit_key_is_kept():
    both = {'params': {'w': torch.zeros(1)}, 'params_ema': {'w': torch.ones(1)}}
    assert choose_param_key(both, None)[0] == 'params_ema'
    assert choose_param_key({'params': {'w': torch.zeros(1)}}, None)[0] == 'params'
    assert choose_param_key(both, 'params')[0] == 'params'
    assert choose_param_key({'w': torch.zeros(1)}, None)[0] is None


def test_a_key_the_file_lacks_falls_back_as_test_py_does():
    key, why = choose_param_key({'params': {'w': torch.zeros(1)}}, 'params_ema')
    assert key == 'params' and "the file has no 'params_ema'" in why


def test_the_restored_image_is_the_network_output_of_the_ema_weights(tmp_path):
    torch.manual_seed(0)
    plain, ema = build_network(TINY), build_network(TINY)
    path = str(tmp_path / 'w.pth')
    torch.save({'params': plain.state_dict(), 'params_ema': ema.state_dict()}, path)
    restorer = load_restorer(ModelSource(dict(TINY), path, None, 'test'), device='cpu')
    x = torch.rand(1, 3, 24, 24)
    torch.testing.assert_close(restorer.restore_tensor(x)[0], ema.eval()(x).detach())


def test_uncertainty_needs_a_checkpoint_with_the_head(tmp_path):
    path = str(tmp_path / 'plain.pth')
    torch.save({'params': build_network(TINY).state_dict()}, path)
    with pytest.raises(CheckpointError) as err:
        load_restorer(ModelSource(dict(TINY), path, None, 'test'), device='cpu', uncertainty=True)
    assert_names(err, path, 'uncertainty_head', '--uncertainty', 'TURLoss')
    # When σ is only wanted if there is one (--grid), a head-less checkpoint gives a head-less network.
    assert not load_restorer(ModelSource(dict(TINY), path, None, 'test'), device='cpu', uncertainty=None).has_head


def test_options_file_weights_are_relative_to_the_root(tmp_path, weights):
    opt = tmp_path / 'o.yml'
    opt.write_text('network_g: {type: SRResNet, num_feat: 8, num_block: 2}\n'
                   'path: {pretrain_network_g: tiny.pth, param_key_g: params}\n')
    source = source_from_options(str(opt), root=str(tmp_path))
    assert source.weights == weights and source.param_key == 'params'
    opt.write_text('network_g: {type: SRResNet, num_feat: 8, num_blok: 2}\npath: {pretrain_network_g: tiny.pth}\n')
    with pytest.raises(OptionError) as err:
        source_from_options(str(opt), root=str(tmp_path))
    assert_names(err, opt, "'network_g.num_blok'", "'num_block'")


def test_out_of_memory_names_the_image_its_size_and_tile():
    class Hungry(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 576000000 bytes")

    with pytest.raises(RunError) as err:
        Restorer(Hungry(), torch.device('cpu')).restore(photo(), name='big.png')
    assert_names(err, 'big.png', '48x64', 'cpu', '--tile 512')


# The command


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_readable_image_is_restored_and_the_broken_one_named(capsys, log_lines, folder, weights, tmp_path):
    out = str(tmp_path / 'out')
    code, stdout, stderr = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2',
                               '--weights', weights, '-i', folder, '--recursive', '-o', out)
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'broken.png: not an image OpenCV can read' in errors[0]
    assert sorted(osp.relpath(osp.join(d, f), out) for d, _, fs in os.walk(out) for f in fs) == \
        ['a16.png', 'a8.png', 'gray.png', 'photo.jpg', osp.join('sub', 'rgba.png')]
    assert 'restored 5 of 6 images' in stdout and '1 failed' in stdout
    assert any('weights params_ema (the EMA weights, preferred when present)' in line for line in log_lines)


def test_sigma_maps_and_grids_are_written_with_uncertainty(capsys, weights, tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), photo())
    (tmp_path / 'gt').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'x.png'), photo())
    code, stdout, _ = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights',
                          weights, '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--uncertainty',
                          '--grid', '--gt', str(tmp_path / 'gt'), '--tile', '32', '--tile-overlap', '16')
    assert code == 0, stdout
    sigma = np.load(tmp_path / 'out' / 'x_sigma.npy')
    assert sigma.shape == (48, 64) and sigma.dtype == np.float32 and (sigma > 0).all()
    assert cv2.imread(str(tmp_path / 'out' / 'x_sigma.png')).shape[0] == 48
    grid = cv2.imread(str(tmp_path / 'out' / 'x_grid.png'))
    assert grid.shape[1] > 4 * 64  # input | restored | σ with its colour bar | ground truth


def test_dry_run_lists_and_writes_nothing(capsys, folder, weights, tmp_path):
    out = str(tmp_path / 'out')
    code, stdout, _ = run(capsys, '--arch', 'SRResNet', '--weights', weights, '-i', folder, '-o', out,
                          '--uncertainty', '--dry-run')
    assert code == 0 and not osp.exists(out)
    assert f"{osp.join(folder, 'a8.png')} -> {osp.join(out, 'a8.png')}, {osp.join(out, 'a8_sigma.png')}" in stdout
    assert 'dry run: 5 images, 15 files would be written' in stdout


@pytest.mark.parametrize('argv, message', [
    (['--arch', 'SRResNet'], '--arch SRResNet needs --weights FILE'),
    (['--arch', 'SRResNet', '--weights', 'missing.pth'], 'weights not found: missing.pth'),
    (['--arch', 'SRResNet', '-opt', 'x.yml', '--weights', 'w.pth'], 'exactly one of -opt FILE'),
    (['--arch', 'NoSuchNet', '--weights', 'w.pth'], 'NoSuchNet'),
    (['--arch', 'SRResNet', '--weights', 'w.pth', '--tile', '32', '--tile-overlap', '32'],
     r'--tile-overlap must be >= 0 and smaller than the --tile \(32\), got 32'),
    (['--arch', 'SRResNet', '--weights', 'w.pth', '--tile', '0'], r'--tile must be >= 1, got 0'),
    (['-opt', 'nothing.yml'], 'nothing.yml: options file not found'),
])
def test_command_line_mistakes_are_one_line(capsys, folder, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run(capsys, *argv, '-i', folder, '-o', str(tmp_path / 'out'))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith('error: ')
    assert __import__('re').search(message, lines[0]), lines[0]


def test_the_demo_sample_photos_are_all_restored(capsys, tmp_path, weights):
    from basicsr_tur.prepare.demo_data import SAMPLE_PHOTOS, write_sample_photos
    for task, name, _, _ in SAMPLE_PHOTOS:  # the demo's degraded test images, small
        path = tmp_path / 'demo' / 'test' / 'lq' / task / f'{name}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), photo(40, 56))
    written = write_sample_photos(str(tmp_path / 'demo'), str(tmp_path / 'photos'))
    kinds = {osp.basename(p): read_image(p) for p in written}
    assert kinds['chelsea_noise.jpg'].shape == (40, 56, 3)  # stored 56x40, EXIF orientation 6 turns it upright
    assert kinds['motorcycle_rain.png'].dtype == np.uint16 and kinds['chelsea_haze_gray.png'].ndim == 2
    assert kinds['motorcycle_dark_rgba.png'].shape[2] == 4
    code, stdout, _ = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights',
                          weights, '-i', str(tmp_path / 'photos'), '--recursive', '-o', str(tmp_path / 'out'))
    assert code == 0 and f'restored {len(SAMPLE_PHOTOS)} of {len(SAMPLE_PHOTOS)} images' in stdout
    for path in written:
        out = read_image(osp.join(tmp_path / 'out', osp.relpath(path, tmp_path / 'photos')))
        original = kinds[osp.basename(path)]
        assert out.dtype == original.dtype and out.shape == original.shape


def test_a_one_channel_network_restores_the_luma():
    img = photo()
    out = identity_restorer(in_channels=1).restore(img).image
    np.testing.assert_array_equal(out, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(identity_restorer(in_channels=1).restore(gray).image, gray)


def test_a_wrong_preset_name_suggests_the_closest(capsys, folder, tmp_path):
    code, _, stderr = run(capsys, '--preset', 'uformer_tur_mio', '-i', folder, '-o', str(tmp_path / 'out'))
    assert code == 1 and "error: unknown preset 'uformer_tur_mio'; did you mean uformer_tur_mio7" in stderr


def test_a_file_that_is_not_the_presets_is_refused_in_one_line(capsys, folder, weights, tmp_path):
    code, _, stderr = run(capsys, '--preset', 'airnet_aio3', '--weights', weights, '-i', folder, '-o',
                          str(tmp_path / 'out'))
    lines = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert code == 1 and len(lines) == 1 and 'preset airnet_aio3 (AirNet) expects keys like' in lines[0]
    assert not osp.exists(tmp_path / 'out')


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_reduced_precision_restores_close_to_fp32(precision):
    torch.manual_seed(0)
    net = build_network(TINY).eval()
    x = torch.rand(1, 3, 32, 40)
    full = Restorer(net, torch.device('cpu')).restore_tensor(x)[0]
    low = Restorer(net, torch.device('cpu'), precision=precision).restore_tensor(x)[0]
    assert low.dtype == torch.float32 and low.shape == full.shape
    assert 0 < (low - full).abs().max() < 0.02  # autocast ran (not bit-identical) and stayed close


def test_earlier_results_inside_an_input_folder_are_not_restored_again(capsys, weights, tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), photo())
    argv = ['--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights', weights,
            '-i', str(tmp_path), '--recursive', '-o', str(tmp_path / 'restored')]
    assert run(capsys, *argv)[0] == 0
    code, stdout, _ = run(capsys, *argv)  # restored/x.png is now under the input folder too
    assert code == 0 and 'restored 1 of 1 images' in stdout
    assert not osp.exists(tmp_path / 'restored' / 'restored')


def test_a_named_file_is_restored_beside_itself_with_a_suffix(capsys, weights, tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), photo())
    code, stdout, _ = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights',
                          weights, '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path), '--suffix', '_r')
    assert code == 0 and 'restored 1 of 1 images' in stdout and osp.isfile(tmp_path / 'x_r.png')


def test_the_weights_choice_is_logged_by_the_command(tmp_path, weights):
    import subprocess
    import sys
    cv2.imwrite(str(tmp_path / 'x.png'), photo(16, 16))
    done = subprocess.run([sys.executable, osp.join(osp.dirname(osp.dirname(__file__)), 'restore.py'), '--arch',
                           'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights', weights, '-i',
                           str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out')], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'weights params_ema (the EMA weights, preferred when present)' in done.stderr


def test_a_ground_truth_of_another_size_is_left_out_of_the_grid(capsys, log_lines, weights, tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), photo())
    (tmp_path / 'gt').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'x.png'), photo(20, 20))
    code, stdout, _ = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights',
                          weights, '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--grid', '--gt',
                          str(tmp_path / 'gt'))
    assert code == 0 and 'restored 1 of 1 images' in stdout
    assert any('is 20x20, the input 64x48; its grid has none' in line for line in log_lines)
    assert osp.isfile(tmp_path / 'out' / 'x_grid.png')


def test_what_a_format_cannot_hold_is_said(capsys, log_lines, weights, tmp_path):
    cv2.imwrite(str(tmp_path / 'x.png'), np.dstack([photo(), np.full(photo().shape[:2], 50, np.uint8)]))
    code, _, _ = run(capsys, '--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2', '--weights', weights,
                     '-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / 'out'), '--ext', 'jpg')
    assert code == 0 and cv2.imread(str(tmp_path / 'out' / 'x.jpg'), cv2.IMREAD_UNCHANGED).shape == (48, 64, 3)
    assert any('x.jpg: written without its alpha channel' in line for line in log_lines)


def test_host_memory_running_out_is_one_line():
    class Hungry(torch.nn.Module):
        def forward(self, x):
            raise MemoryError

    with pytest.raises(RuntimeError) as err:
        Restorer(Hungry(), torch.device('cpu')).restore(photo(), name='big.png')
    assert_names(err, 'big.png', '48x64', 'host', '--tile 512')


def test_a_file_of_another_model_is_named_by_the_preset_check(capsys, folder, weights, tmp_path):
    # The file has no params_ema entry (the preset's key): loading falls back, and the preset's check names its keys.
    code, _, stderr = run(capsys, '--preset', 'uformer_tur_mio7', '--weights', weights, '-i', folder, '-o',
                          str(tmp_path / 'out'))
    assert code == 1 and 'preset uformer_tur_mio7 (Uformer) expects keys like' in stderr


def test_an_output_folder_that_is_a_file_is_refused_first(capsys, folder, weights, tmp_path):
    (tmp_path / 'afile').write_text('x')
    code, _, stderr = run(capsys, '--arch', 'SRResNet', '--weights', weights, '-i', folder, '-o',
                          str(tmp_path / 'afile'))
    assert code == 1 and stderr.strip().endswith('afile: is a file; give a folder for the restored images')


# Batches of tiles


def test_batched_tiles_restore_as_single_tiles():
    torch.manual_seed(0)
    net = build_network(TINY).eval()
    img = photo(48, 64).astype(np.uint16) * 257  # 16 bits: a rounding difference would show
    cpu = torch.device('cpu')
    one = Restorer(net, cpu, tile=32, overlap=16, tile_batch=1).restore(img).image
    many = Restorer(net, cpu, tile=32, overlap=16, tile_batch=4).restore(img).image
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


def test_the_default_tile_batch_holds_a_few_tiles_of_pixels_per_device():
    from basicsr_tur.inference import default_tile_batch
    tiles = (64, 128, 256, 384, 512, 1024)
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    assert [default_tile_batch(cpu, t) for t in tiles] == [16, 4, 1, 1, 1, 1]  # 256² of pixels
    assert [default_tile_batch(cuda, t) for t in tiles] == [16, 16, 4, 1, 1, 1]  # 512² of pixels
    assert default_tile_batch(cuda, None) == default_tile_batch(cpu, None) == 1  # whole images


def test_out_of_memory_with_tile_batches_suggests_fewer():
    class Hungry(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                               '576000000 bytes')

    restorer = Restorer(Hungry(), torch.device('cpu'), tile=32, overlap=8, tile_batch=4)
    with pytest.raises(RunError) as err:
        restorer.restore(photo(), name='big.png')
    assert_names(err, 'big.png', '--tile-batch 2)')


# The I/O threads

TINY_ARGS = ['--arch', 'SRResNet', '--arch-opt', 'num_feat=8', 'num_block=2']


def tree(folder) -> dict[str, bytes]:
    """Every file under folder: relative path -> bytes."""
    return {osp.relpath(osp.join(d, f), folder): open(osp.join(d, f), 'rb').read()
            for d, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize('extra', [
    ['--uncertainty', '--grid', '--tile', '32', '--tile-overlap', '16', '--tile-batch', '3'],
    ['--ext', 'jpg']], ids=['sigma-grid-tiles', 'jpeg'])
def test_io_threads_write_the_same_bytes_as_the_serial_path(capsys, folder, weights, tmp_path,
                                                            extra):
    results = {}
    for threads in ('0', '3'):
        out = str(tmp_path / f'out{threads}')
        code, stdout, stderr = run(capsys, *TINY_ARGS, '--weights', weights, '-i', folder,
                                   '--recursive', '-o', out, '--io-threads', threads, *extra)
        errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
        results[threads] = code, errors, tree(out)
        assert 'restored 5 of 6 images' in stdout
    assert results['0'] == results['3']
    assert len(results['3'][2]) == 5 * (4 if '--grid' in extra else 1)


def _jobs(folder, tmp_path, names):
    return plan_jobs([(osp.join(folder, n), n) for n in names], str(tmp_path / 'out'))


@pytest.mark.parametrize('io_threads', [0, 1, 2])
def test_restore_jobs_come_back_in_order_with_their_errors(folder, tmp_path, io_threads):
    from basicsr_tur.restore import restore_jobs
    names = ['broken.png', 'a8.png', 'broken.png', 'gray.png', 'photo.jpg', 'a16.png', 'broken.png']
    jobs = _jobs(folder, tmp_path, names)
    restorer = identity_restorer(tile=32, overlap=8)
    outcomes = list(restore_jobs(restorer, jobs, False, None, io_threads))
    assert [job for job, _ in outcomes] == jobs
    failed = [isinstance(done, ValueError) for _, done in outcomes]
    assert failed == [n == 'broken.png' for n in names]
    assert all(osp.isfile(job.output) for job, done in outcomes if isinstance(done, dict))


@pytest.mark.parametrize('io_threads', ['0', '2'])
def test_a_file_that_cannot_be_written_is_one_line_and_the_others_are_written(
        capsys, folder, weights, tmp_path, io_threads):
    out = tmp_path / 'out'
    (out / 'a8.png').mkdir(parents=True)  # a folder where the restored image should go
    code, stdout, stderr = run(capsys, *TINY_ARGS, '--weights', weights, '-i', folder,
                               '-o', str(out), '--io-threads', io_threads)
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert code == 1 and len(errors) == 2  # the broken input and the unwritable output
    assert 'a8.png' in errors[0] and 'broken.png' in errors[1]  # in the inputs' order
    assert 'restored 3 of 5 images' in stdout
    assert all(osp.isfile(out / n) for n in ('a16.png', 'gray.png', 'photo.jpg'))


@pytest.mark.parametrize('error', [TypeError, RuntimeError, ValueError, KeyError])
@pytest.mark.parametrize('io_threads', [0, 2])
def test_a_bug_in_an_io_thread_is_not_taken_for_a_bad_image(monkeypatch, folder, tmp_path, error,
                                                           io_threads):
    # only the project's user errors and OSError are a bad image; a bug propagates with its traceback
    from basicsr_tur.inference import jobs as restore

    def broken_writer(*args):
        raise error('a bug')

    monkeypatch.setattr(restore, 'write_job', broken_writer)
    jobs = _jobs(folder, tmp_path, ['a8.png', 'gray.png'])
    with pytest.raises(error, match='a bug'):
        list(restore.restore_jobs(identity_restorer(), jobs, False, None, io_threads=io_threads))


@pytest.mark.parametrize('argv, message', [(['--tile-batch', '0'], '--tile-batch.*got 0'),
                                           (['--tile-batch', '4'], '--tile-batch 4.*--tile'),
                                           (['--io-threads', '-1'], '--io-threads.*got -1')])
def test_tile_batch_and_io_threads_below_their_minimum_are_one_line(capsys, folder, weights,
                                                                    tmp_path, argv, message):
    code, _, stderr = run(capsys, '--arch', 'SRResNet', '--weights', weights, '-i', folder, '-o',
                          str(tmp_path / 'out'), *argv)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and re.search(message, lines[0])
    assert not osp.exists(tmp_path / 'out')


# σ pictures and 8-bit pictures of 16-bit images: the fast forms give matplotlib's and numpy's bytes


def test_sigma_colours_are_matplotlibs_viridis():
    from matplotlib import colormaps

    from basicsr_tur.utils.visual import colour_sigma
    rng = np.random.default_rng(0)
    sigma = rng.random((150, 70)).astype(np.float32) * 0.2
    sigma[:3, :4] = [[np.nan, -1, 0, 0.05], [0.1, 0.1 + 1e-9, 0.15, 0.2],
                     [np.inf, -np.inf, 1, 0.0999999]]
    lo, hi = 0.05, 0.15
    rgba = colormaps['viridis'](np.clip((sigma.astype(np.float64) - lo) / (hi - lo), 0, 1))
    expected = (rgba[..., 2::-1] * 255).round().astype(np.uint8)  # RGB -> BGR
    np.testing.assert_array_equal(colour_sigma(sigma, lo, hi), expected)


def test_sixteen_bit_values_become_the_nearest_eight_bit_value():
    from basicsr_tur.utils.visual import eight_bits
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(eight_bits(values), (values / 257).round().astype(np.uint8))


# An options file's test-time padding (val.pad): restore.py restores what test.py scores

PAD = {'multiple': 16, 'square': True, 'mode': 'reflect'}  # MiOIR/TUR Uformer's rule, tiny


def padded_options(tmp_path, paired_root, weights, pad=None, **val) -> str:
    """conftest's test options for task sr, with a wide and a tall image beside the square ones,
    val.pad (none when None) and the other val keys given."""
    import yaml
    from conftest import make_test_options
    for name, (h, w) in (('wide', (24, 40)), ('tall', (40, 24))):
        cv2.imwrite(osp.join(paired_root, 'lq', 'sr', f'{name}.png'), photo(h, w)[:, ::-1])
        cv2.imwrite(osp.join(paired_root, 'gt', f'{name}.png'), photo(h, w))
    path = make_test_options(tmp_path, paired_root, weights)
    with open(path) as f:
        opt = yaml.safe_load(f)
    opt['tasks'] = ['sr']
    opt['val'].update(val, **({'pad': pad} if pad else {}))
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return path


def saved_by_test_py(tmp_path, opt_path) -> dict[str, bytes]:
    """test.py's saved images (val.save_img) of the options file: input stem -> PNG bytes."""
    from basicsr_tur.test import run_test
    run_test(str(tmp_path), ['-opt', opt_path])
    folder = osp.join(tmp_path, 'results', 'tiny_test', 'visualization', 'tiny_test_set', 'sr')
    return {f[:-len('_tiny_test.png')]: open(osp.join(folder, f), 'rb').read()
            for f in os.listdir(folder)}


def restored_by_restore_py(capsys, tmp_path, out, *model) -> dict[str, bytes]:
    """restore.py's images of lq/sr: stem -> PNG bytes."""
    code, stdout, stderr = run(capsys, *model, '-i', str(tmp_path / 'paired' / 'lq' / 'sr'), '-o',
                               str(tmp_path / out))
    assert code == 0, stderr
    return {osp.splitext(k)[0]: v for k, v in tree(tmp_path / out).items()}


def test_an_options_file_with_val_pad_restores_test_py_s_pixels(capsys, log_lines, tmp_path,
                                                                 paired_root, weights):
    opt_path = padded_options(tmp_path, paired_root, weights, PAD)
    saved = saved_by_test_py(tmp_path, opt_path)
    log_lines.clear()
    restored = restored_by_restore_py(capsys, tmp_path, 'out', '-opt', opt_path)
    assert sorted(restored) == sorted(saved) == ['astronaut', 'chelsea', 'coffee', 'tall', 'wide']
    assert restored == saved  # byte for byte
    assert len([line for line in log_lines if 'val.pad' in line]) == 1
    unpadded = restored_by_restore_py(capsys, tmp_path, 'plain', *TINY_ARGS, '--weights', weights)
    assert unpadded['wide'] != restored['wide']  # the padding changed the pixels


def test_an_options_file_without_val_pad_restores_as_before(capsys, log_lines, tmp_path,
                                                            paired_root, weights):
    opt_path = padded_options(tmp_path, paired_root, weights)
    assert source_from_options(opt_path).padding is None
    saved = saved_by_test_py(tmp_path, opt_path)
    log_lines.clear()
    restored = restored_by_restore_py(capsys, tmp_path, 'out', '-opt', opt_path)
    plain = restored_by_restore_py(capsys, tmp_path, 'plain', *TINY_ARGS, '--weights', weights)
    assert restored == plain == saved
    assert not [line for line in log_lines if 'val.pad' in line]


def test_val_pad_comes_before_the_tiles_and_sigma_is_cropped_too(tmp_path, paired_root, weights):
    from basicsr.models import build_model

    from basicsr_tur.utils.options import parse_options
    opt_path = padded_options(tmp_path, paired_root, weights, PAD, uncertainty=True,
                              tile={'size': 24, 'overlap': 8})
    opt, _ = parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path])
    model = build_model(opt)
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 23)
    model.feed_data({'lq': x, 'task_id': [0], 'task': ['sr']})
    model.test()
    restorer = load_restorer(source_from_options(opt_path), device='cpu', tile=24, overlap=8,
                             uncertainty=True, tile_batch=1)
    out, sigma = restorer.restore_tensor(x, uncertainty=True)
    assert out.shape == sigma.shape == (1, 3, 37, 23)
    assert torch.equal(out, model.output) and torch.equal(sigma, model.sigma)
    assert restorer.tiles_for(37, 23) == 9  # tiles of the padded 48x48 image


def test_an_image_val_pad_cannot_reflect_is_named(capsys, tmp_path, paired_root, weights):
    opt_path = padded_options(tmp_path, paired_root, weights, {'multiple': 1, 'square': True})
    narrow = str(tmp_path / 'narrow.png')
    cv2.imwrite(narrow, photo(12, 40))  # a square reflect pads 14 rows on each end
    code, _, stderr = run(capsys, '-opt', opt_path, '-i', narrow, '-o', str(tmp_path / 'out'))
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert code == 1 and len(errors) == 1
    assert narrow in errors[0] and 'val.pad.mode' in errors[0]


def test_a_bad_val_pad_in_the_options_file_is_named(tmp_path, paired_root, weights):
    opt_path = padded_options(tmp_path, paired_root, weights, {'multiple': 0})
    with pytest.raises(OptionError) as err:
        source_from_options(opt_path)
    assert opt_path in str(err.value) and 'val.pad.multiple' in str(err.value)
