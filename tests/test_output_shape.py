"""A network whose output does not match the ground truth (an upscaling arch, another channel count) is refused
once, at its first forward in training or testing, in one line naming the arch and the argument to set."""
import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import make_options, make_test_options

from basicsr_tur.test import run_test
from basicsr_tur.utils.options import parse_options

RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}


def _batch(size: int = 24) -> dict:
    return {'lq': torch.rand(2, 3, size, size), 'gt': torch.rand(2, 3, size, size), 'task_id': torch.tensor([0, 1]),
            'task': ['sr', 'noise']}


def test_upscaling_network_is_refused_at_its_first_training_step(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', network_g=RRDB)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    model = build_model(opt)
    model.feed_data(_batch())
    with pytest.raises(ValueError) as err:
        model.optimize_parameters(1)
    assert str(err.value) == ('network_g RRDBNet returns 96x96 for a 24x24 input; all-in-one restoration needs '
                              'upscale 1 (set network_g.scale)')


def test_wrong_channel_count_names_the_arch_argument(tmp_path, clean_root, paired_root):
    network = dict(RRDB, num_out_ch=1, scale=1)
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', network_g=network)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    model = build_model(opt)
    model.feed_data(_batch())
    with pytest.raises(ValueError, match=r'^network_g RRDBNet returns 1 channels; the ground truth has 3 '
                                         r'\(set network_g.num_out_ch: 3\)$'):
        model.optimize_parameters(1)


def test_upscaling_network_is_refused_when_testing(tmp_path, paired_root):
    weights = str(tmp_path / 'rrdb.pth')
    torch.save({'params': build_network(dict(RRDB)).state_dict()}, weights)
    path = make_test_options(tmp_path, paired_root, weights)
    with pytest.raises(ValueError, match=r'^network_g RRDBNet returns 160x160 for a 40x40 input; .*network_g.scale'):
        run_test(str(tmp_path), ['-opt', path, '--force_yml',
                                 'network_g={type: RRDBNet, num_in_ch: 3, num_out_ch: 3, num_feat: 8, num_block: 1, '
                                 'num_grow_ch: 4}'])
