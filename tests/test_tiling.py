"""Tiled inference (basicsr_tur/utils/tiling.py): layout, blending windows, exactness on a convolutional network."""
import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names

from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.tiling import axis_windows, tile_count, tile_starts, tiled_forward


@pytest.mark.parametrize('length, tile, overlap', [(100, 40, 8), (257, 64, 16), (65, 64, 32), (64, 64, 8),
                                                   (1000, 128, 0), (130, 64, 63)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b + size - a >= 0 for a, b in zip(starts, starts[1:]))
    assert all(a + size - b >= overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize('length, tile, overlap', [(100, 40, 8), (257, 64, 16), (65, 64, 32), (300, 48, 32),
                                                   (1000, 128, 0), (130, 64, 63)])
def test_windows_weigh_every_pixel(length, tile, overlap):
    total, cover = torch.zeros(length), torch.zeros(length)
    for start, size, window in axis_windows(length, tile, overlap):
        assert window.shape == (size,) and window.min() >= 0 and window.max() <= 1
        total[start:start + size] += window
        cover[start:start + size] += 1
    assert total.min() > 0.1  # tiled_forward divides by this sum
    if cover.max() <= 2:  # neighbours' raised cosines are complementary: where two tiles meet they sum to 1
        torch.testing.assert_close(total, torch.ones(length))


def test_window_is_zero_next_to_a_cut_edge_and_one_at_the_image_border():
    (s0, n0, w0), (s1, n1, w1) = axis_windows(100, 60, 20)
    assert w0[0] == 1 and w1[-1] == 1  # image borders
    overlap = s0 + n0 - s1
    assert overlap == 20
    assert (w0[-overlap // 4:] == 0).all() and (w1[:overlap // 4] == 0).all()


def test_overlap_not_smaller_than_tile_is_refused():
    with pytest.raises(UserError) as err:
        tile_starts(200, 64, 64)
    assert_names(err, 'overlap', '64')


def test_tiled_identity_returns_the_input():
    x = torch.rand(2, 3, 70, 91)
    y = tiled_forward(lambda t: t, x, tile=32, overlap=8)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize('batch', [1, 4])
def test_tiled_equals_whole_on_a_convolutional_network(batch):
    # SRResNet with 2 residual blocks: 3x3 convs conv_first, 2x2 in the body, conv_hr, conv_last -> radius 7 px;
    # the window uses no pixel closer than overlap/4 = 8 px to a cut edge.
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}).eval()
    x = torch.rand(1, 3, 101, 77)
    assert tile_count(101, 77, 48, 32) > 4
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_forward(net, x, tile=48, overlap=32, batch=batch)
    assert (tiled - whole).abs().max() <= 1e-5


def test_tiled_forward_blends_each_output_of_a_tuple():
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': True}).eval()
    x = torch.rand(1, 3, 90, 90)
    with torch.no_grad():
        whole_out, whole_sigma = net(x, with_uncertainty=True)
        out, sigma = tiled_forward(lambda t: net(t, with_uncertainty=True), x, tile=48, overlap=40)
    # The head adds three 3x3 convs on top of the body's radius: 9 px, under overlap/4 = 10.
    assert (out - whole_out).abs().max() <= 1e-5 and (sigma - whole_sigma).abs().max() <= 1e-5


def test_tiles_are_rounded_up_to_the_backbone_size_multiple():
    sizes = []

    def forward(t):
        sizes.append(tuple(t.shape[-2:]))
        return t

    tiled_forward(forward, torch.rand(1, 3, 100, 70), tile=30, overlap=8, multiple=8)
    assert sizes and all(h == 32 and w == 32 for h, w in sizes)


def test_an_image_no_larger_than_the_tile_is_run_whole():
    sizes = []
    tiled_forward(lambda t: sizes.append(tuple(t.shape[-2:])) or t, torch.rand(1, 3, 40, 50), tile=64, overlap=8)
    assert sizes == [(40, 50)]


def test_a_network_that_changes_the_size_is_refused():
    with pytest.raises(UserError) as err:
        tiled_forward(lambda t: torch.nn.functional.interpolate(t, scale_factor=2), torch.rand(1, 3, 60, 60),
                      tile=32, overlap=8)
    assert_names(err, '32x32', '64x64')


def test_progress_is_called_once_per_tile():
    calls = []
    tiled_forward(lambda t: t, torch.rand(1, 3, 100, 100), tile=40, overlap=8, progress=calls.append)
    assert len(calls) == tile_count(100, 100, 40, 8) == 9


def test_progress_counts_the_tiles_of_each_batch():
    calls = []
    tiled_forward(lambda t: t, torch.rand(1, 3, 100, 100), tile=40, overlap=8,
                  progress=calls.append, batch=4)
    assert calls == [4, 4, 1]


# Batches of tiles


@pytest.mark.parametrize('batch', [2, 3, 9, 50])
def test_batched_tiles_give_the_unbatched_result(batch):
    # A network in eval mode treats the samples of a batch independently: the same output up to
    # float rounding (the convolutions may pick other algorithms for another batch size), σ too.
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2,
                         'uncertainty_head': True}).eval()
    x = torch.rand(1, 3, 90, 100)

    def forward(t):
        return net(t, with_uncertainty=True)

    with torch.no_grad():
        one = tiled_forward(forward, x, tile=40, overlap=16)
        many = tiled_forward(forward, x, tile=40, overlap=16, batch=batch)
    assert tile_count(90, 100, 40, 16) == 16
    for a, b in zip(one, many):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_the_blend_does_not_depend_on_the_batch():
    # With a per-pixel function the outputs are the same bits whatever the batch; so is the blend.
    def forward(t):
        return torch.sin(3 * t), t.abs() + 0.1

    x = torch.rand(2, 3, 130, 71)
    one = tiled_forward(forward, x, tile=32, overlap=12)
    for batch in (2, 5, 64):
        many = tiled_forward(forward, x, tile=32, overlap=12, batch=batch)
        assert all(torch.equal(a, b) for a, b in zip(one, many))


def test_each_image_of_the_input_batch_keeps_its_own_tiles():
    torch.manual_seed(0)
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2}).eval()
    x = torch.rand(3, 3, 70, 90)
    with torch.no_grad():
        together = tiled_forward(net, x, tile=32, overlap=16, batch=4)
        apart = torch.cat([tiled_forward(net, x[i:i + 1], tile=32, overlap=16) for i in range(3)])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)


def test_a_batch_holds_tiles_of_one_size_and_the_last_the_rest():
    shapes = []
    tiled_forward(lambda t: shapes.append(tuple(t.shape)) or t, torch.rand(2, 3, 100, 70), tile=40,
                  overlap=8, batch=4)
    count = tile_count(100, 70, 40, 8)
    assert count == 6
    assert shapes == [(8, 3, 40, 40), (4, 3, 40, 40)]  # 4 tiles of 2 images, then the 2 tiles left


def test_a_batch_below_one_is_refused():
    with pytest.raises(UserError) as err:
        tiled_forward(lambda t: t, torch.rand(1, 3, 100, 100), tile=40, overlap=8, batch=0)
    assert_names(err, 'batch', '0')


def test_test_py_scores_the_same_with_val_tile(tmp_path, paired_root):
    from conftest import make_test_options, tiny_srresnet_weights

    from basicsr_tur.test import run_test
    opt_path = make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))
    whole = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false'])
    # 40x40 test images in 32x32 tiles overlapping by 28 px (>= 4 x the 7 px receptive-field radius): exact.
    tiled = run_test(str(tmp_path), ['-opt', opt_path, '--force_yml', 'val:save_img=false', 'name=tiled',
                                          'val:tile={size: 32, overlap: 28}'])
    for task, values in whole['tiny_test_set']['model']['tasks'].items():
        for metric, value in values.items():
            assert tiled['tiny_test_set']['model']['tasks'][task][metric] == pytest.approx(value, abs=1e-3)


@pytest.mark.parametrize('tile', ['{overlap: 8}', '{size: 32, overlap: 32}', '{size: 16}'])
def test_val_tile_without_a_size_above_its_overlap_is_refused(tmp_path, paired_root, tile):
    from conftest import make_test_options, tiny_srresnet_weights

    from basicsr_tur.utils.option_file import OptionError
    from basicsr_tur.utils.options import parse_options
    opt_path = make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), is_train=False, argv=['-opt', opt_path, '--force_yml', f'val:tile={tile}'])
    assert_names(err, opt_path, "'val.tile'", 'size', 'overlap')
