"""scripts/compare_images.py: input | each run | σ of each run with a TUR head | ground truth, one row per task."""
import importlib.util
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils import tensor2img
from conftest import SIZE, TASKS

from basicsr_tur.utils import visual

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('compare_images', osp.join(REPO, 'scripts', 'compare_images.py'))
compare_images = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_images)

NET = {'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'upscale': 1}


def save_net(path, head: bool, seed: int) -> torch.nn.Module:
    """A tiny SRResNet (with or without the TUR head) saved as a training run saves it (params_ema)."""
    torch.manual_seed(seed)
    net = build_network(dict(NET, uncertainty_head=head)).eval()
    torch.save({'params_ema': net.state_dict()}, path)
    return net


@pytest.fixture
def runs(tmp_path, paired_root):
    """(test options, {label: (checkpoint, network)}) for an L1-like run without head and a TUR run with one."""
    nets = {label: (str(tmp_path / f'{label}.pth'), save_net(tmp_path / f'{label}.pth', head, seed))
            for label, head, seed in (('L1', False, 0), ('TUR', True, 1))}
    opt = {'name': 'cmp', 'model_type': 'TURModel', 'num_gpu': 0, 'tasks': TASKS,
           'datasets': {'test': {'name': 'tiny_test', 'type': 'PairedTaskDataset',
                                 'dataroot_lq': osp.join(paired_root, 'lq'), 'dataroot_gt': osp.join(paired_root, 'gt'),
                                 'meta_file': osp.join(paired_root, 'meta.txt')}},
           'network_g': dict(NET, uncertainty_head=False),
           'path': {'pretrain_network_g': nets['L1'][0], 'param_key_g': 'params_ema'}}
    path = tmp_path / 'test.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path), nets


def test_one_row_per_task_with_a_sigma_column_only_for_the_run_with_a_head(tmp_path, runs, capsys):
    opt, nets = runs
    out = str(tmp_path / 'cmp.png')
    args = ['-opt', opt, '--root', str(tmp_path), '--out', out] + [f'--run={k}={p}' for k, (p, _) in nets.items()]
    assert compare_images.main(args) == 0
    picture = cv2.imread(out)
    tile_h = visual.LABEL_H + SIZE
    tiles = 5  # input, L1, TUR, σ of TUR, ground truth
    assert picture.shape == (len(TASKS) * (tile_h + visual.GAP),
                             compare_images.TASK_W + tiles * (SIZE + visual.GAP), 3)
    lines = capsys.readouterr().out.splitlines()
    assert torch.is_grad_enabled()  # the script leaves the process's autograd as it found it (tests share it)
    assert [line.split(' ')[0] for line in lines[:len(TASKS)]] == TASKS
    assert all('input' in line and 'L1' in line and 'TUR' in line for line in lines[:len(TASKS)])


def test_restored_tiles_are_the_networks_plain_output_and_psnr_is_printed(tmp_path, runs, paired_root, capsys):
    opt, nets = runs
    out = str(tmp_path / 'cmp.png')
    args = ['-opt', opt, '--root', str(tmp_path), '--out', out] + [f'--run={k}={p}' for k, (p, _) in nets.items()]
    assert compare_images.main(args) == 0
    picture = cv2.imread(out)
    # first task's image in meta.txt order, restored by TUR's network without its head
    name = open(osp.join(paired_root, 'meta.txt')).readline().split()[0]
    lq = cv2.imread(osp.join(paired_root, 'lq', name))[..., ::-1].astype(np.float32) / 255
    with torch.no_grad():
        out_tur, sigma = nets['TUR'][1](torch.from_numpy(lq.copy()).permute(2, 0, 1)[None], with_uncertainty=True)
    expected = tensor2img([out_tur[0]])
    top, left = visual.LABEL_H, compare_images.TASK_W + 2 * (SIZE + visual.GAP) + compare_images.GAP
    assert np.array_equal(picture[top:top + SIZE, left:left + SIZE], expected)
    gt = cv2.imread(osp.join(paired_root, 'gt', osp.basename(name)))
    from basicsr.metrics import calculate_psnr
    assert f'TUR {calculate_psnr(expected, gt, 0):.2f} dB' in capsys.readouterr().out
    assert sigma.min() > 0


@pytest.mark.parametrize('entry, message', [('L1', 'expected LABEL=CHECKPOINT'),
                                            ('L1=missing.pth', 'checkpoint not found: missing.pth')])
def test_a_bad_run_entry_is_one_line(tmp_path, runs, capsys, entry, message):
    opt, _ = runs
    assert compare_images.main(['-opt', opt, '--run', entry, '--out', str(tmp_path / 'x.png')]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1
    assert not (tmp_path / 'x.png').exists()


def test_an_index_past_a_tasks_images_is_one_line(tmp_path, runs, capsys):
    opt, nets = runs
    out = str(tmp_path / 'x.png')
    assert compare_images.main(['-opt', opt, '--root', str(tmp_path), '--run', f"L1={nets['L1'][0]}", '--out', out,
                                '--index', '3']) == 1
    assert "task 'sr' has 3 images, --index 3 needs 4" in capsys.readouterr().err
    assert not osp.exists(out)
