"""Every paper setting end to end on a tiny replica: prepare, train 2 iterations from the setting's own options
(tiny network override), test, and get the paper-layout table with one column per test set."""
import glob
import os
from os import path as osp

import pytest
import torch
from basicsr.archs import build_network
from test_prepare_data import build, small_mio_crop  # noqa: F401  (fixture: 8x8 MiOIR sub-images)

from basicsr_tur.test import run_test
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.option_file import load_yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = {  # per arch: --force_yml entries shrinking the network (the rest of the options stay the setting's own)
    'SRResNet': ['network_g:num_feat=8', 'network_g:num_block=1'],
    'Uformer': ['network_g:embed_dim=8', 'network_g:depths=[1,1,1,1,1,1,1,1,1]'],
    'AirNet': ['network_g:n_groups=1', 'network_g:n_blocks=1', 'network_g:batch_size=2'],
    'PromptIR': ['network_g:num_blocks=[1,1,1,1]', 'network_g:num_refinement_blocks=1'],
    'Transweather': ['network_g:embed_dims=[16,32,64,128]', 'network_g:depths=[1,1,1,1]', 'network_g:dec_depth=1',
                     'network_g:num_task_queries=16'],
}
# SSIM's 11x11 window does not fit the 16x16 replica images once mio7's border of 4 is cropped (a NaN metric is an
# error naming the image), so the tiny runs score SSIM without a border.
SSIM_FITS = 'val:metrics:ssim:crop_border=0'
# Reflection cannot pad the 16x16 replica images to 128 (mio7 Uformer's val.pad, as MiOIR's test(); real MiO test
# images are large enough): the tiny runs pad the same sizes by replication, so the padding path still runs.
PAD_FITS = {'mio7/Uformer': ['val:pad={multiple: 128, square: true, mode: replicate}']}
CASES = sorted((osp.basename(osp.dirname(p)), osp.basename(p)[:-len('_TUR.yml')])
               for p in glob.glob(osp.join(REPO, 'options', 'train', '*', '*_TUR.yml')) if '/demo/' not in p)


@pytest.mark.parametrize('setting, arch', CASES, ids=[f'{s}-{a}' for s, a in CASES])
def test_setting_trains_and_tests_from_its_options(setting, arch, tmp_path, monkeypatch):
    data_root, _ = build(tmp_path / 'data', setting)
    work = tmp_path / 'work'
    work.mkdir()
    os.symlink(data_root, work / 'datasets')  # the options name datasets/<setting>/... relative to the run
    monkeypatch.chdir(work)
    train_opt = osp.join(REPO, 'options', 'train', setting, f'{arch}_TUR.yml')
    # The recipes' torch.compile (options/RECIPES.md, "Fast paths") would spend minutes per backbone compiling C++
    # on the CPU (203 s for aio3 PromptIR); compilation is tested on its own (test_speed_switches.py, aot_eager).
    # Their bf16 autocast stays on.
    overrides = ['num_gpu=0', 'train:compile=false', 'train:total_iter=2', 'train:warmup_iter=-1',
                 'logger:print_freq=1', 'logger:save_checkpoint_freq=2', 'val:val_freq=2', 'datasets:train:gt_size=8',
                 'datasets:train:batch_size_per_gpu=2', 'datasets:train:num_worker_per_gpu=0', SSIM_FITS] + TINY[arch]
    if load_yaml(train_opt)['train']['pixel_opt'].get('pool_size'):  # pooled per GPU batch: the tiny batch of 2
        overrides.append('train:pixel_opt:pool_size=2')
    if arch == 'AirNet':  # TUR's recipe freezes a trained encoder: a tiny AirNet's (only E.E.encoder_q/k are read)
        encoder = tmp_path / 'airnet_encoder.pth'
        torch.save(build_network({'type': 'AirNet', 'n_groups': 1, 'n_blocks': 1}).state_dict(), str(encoder))
        overrides.append(f'path:pretrain_network_encoder={encoder}')
    run_train(str(work), ['-opt', train_opt, '--force_yml', *overrides])
    name = load_yaml(train_opt)['name']
    weights = work / 'experiments' / name / 'models' / 'net_g_latest.pth'
    assert weights.is_file()

    test_opt = osp.join(REPO, 'options', 'test', setting, f'{arch}.yml')
    results = run_test(str(work), ['-opt', test_opt, '--force_yml', 'num_gpu=0', 'name=tiny_test',
                                   f'path:pretrain_network_g={weights}', 'val:save_img=false',
                                   SSIM_FITS, *PAD_FITS.get(f'{setting}/{arch}', ()),
                                   *[o for o in TINY[arch] if o.startswith('network_g')]])
    table = (work / 'results' / 'tiny_test' / 'metrics.md').read_text()
    header = next(line for line in table.splitlines() if line.startswith('| Method |'))
    columns = header.strip('| ').split(' | ')[1:-1]
    expected = [d if len(r['model']['tasks']) == 1 else f'{d}/{t}' for d, r in results.items()
                for t in r['model']['tasks']]
    assert columns == expected and len(columns) >= len(results)
    row = load_yaml(test_opt)['published']['row']  # the TUR options compare with the published '<Arch> + TUR' row
    assert row.lower() == f'{arch.lower()} + tur' and f'| Δ tiny_test − {row} (published) |' in table
    sources = next(line for line in table.splitlines() if line.startswith('Test data (from the meta files): '))
    assert all(f'{d}: ' in sources for d in results)  # where each test set's images come from
