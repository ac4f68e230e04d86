"""A network whose output does not match the ground truth (an upscaling arch, another channel count) is refused
once, at its first forward in training or testing, in one line naming the arch and the argument to set."""
import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import assert_names, make_options, make_test_options

from basicsr_tur.test import run_test
from basicsr_tur.utils.errors import UserError
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
    with pytest.raises(UserError) as err:
        model.optimize_parameters(1)
    assert_names(err, 'network_g RRDBNet', '96x96', '24x24', 'network_g.scale')


def test_wrong_channel_count_names_the_arch_argument(tmp_path, clean_root, paired_root):
    network = dict(RRDB, num_out_ch=1, scale=1)
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', network_g=network)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    model = build_model(opt)
    model.feed_data(_batch())
    with pytest.raises(UserError) as err:
        model.optimize_parameters(1)
    assert_names(err, 'network_g RRDBNet', '1 channels', 'network_g.num_out_ch: 3')


def test_upscaling_network_is_refused_when_testing(tmp_path, paired_root):
    weights = str(tmp_path / 'rrdb.pth')
    torch.save({'params': build_network(dict(RRDB)).state_dict()}, weights)
    path = make_test_options(tmp_path, paired_root, weights)
    with pytest.raises(UserError) as err:
        run_test(str(tmp_path), ['-opt', path, '--force_yml',
                                 'network_g={type: RRDBNet, num_in_ch: 3, num_out_ch: 3, num_feat: 8, num_block: 1, '
                                 'num_grow_ch: 4}'])
    assert_names(err, 'network_g RRDBNet', '160x160', '40x40', 'network_g.scale')
