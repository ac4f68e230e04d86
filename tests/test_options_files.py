"""Every shipped options file parses, and every demo backbone trains and tests from its YAML (with TUR and L1)."""
import glob
import json
import shlex
from os import path as osp

import pytest
import torch

from basicsr_tur.test import run_test
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.option_file import load_yaml
from basicsr_tur.utils.options import parse_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_FILES = sorted(glob.glob(osp.join(REPO, 'options', 'train', '**', '*.yml'), recursive=True))
TEST_FILES = sorted(glob.glob(osp.join(REPO, 'options', 'test', '**', '*.yml'), recursive=True))
TUR_FILES = sorted(p for p in TRAIN_FILES if p.endswith('_TUR.yml'))
# The TUR loss variant each setting's published row was trained with (options/RECIPES.md, "What each recipe follows"):
# MiOIR's seven tasks: uncertainty_loss_softplus; the three/five-task AirNet, PromptIR and TransWeather models:
# airnet_uncertainty_loss(_5_types); no authors' code for allweather/realweather, nor a published row for the demo.
TUR_VARIANTS = {'mio7': 'per_task', 'aio3': 'cumulative', 'aio5': 'cumulative', 'allweather': 'per_task',
                'realweather': 'per_task', 'demo': 'per_task'}
DEMO_ARCHS = sorted({osp.basename(p).rsplit('_', 1)[0] for p in glob.glob(osp.join(REPO, 'options/train/demo/*.yml'))})


@pytest.mark.parametrize('path', TRAIN_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_train_options_file_is_valid(path, tmp_path):
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    assert opt['datasets']['train']['tasks'] == opt['tasks']


@pytest.mark.parametrize('setting', ['aio3', 'aio5'])
def test_airnet_tur_options_train_as_tur_did_with_a_frozen_pretrained_encoder(setting, tmp_path):
    # Aitical/TUR trains AirNet with fix_E=True: a trained encoder, frozen, and no contrastive loss.
    opt, _ = parse_options(str(tmp_path), True, ['-opt', osp.join(REPO, 'options/train', setting, 'AirNet_TUR.yml')])
    assert opt['model_type'] == 'AirNetModel' and opt['train']['fix_encoder'] is True
    assert opt['path']['pretrain_network_encoder'].endswith('.pth')
    assert not {'contrast_weight', 'encoder_warmup_iter'} & set(opt['train'])


@pytest.mark.parametrize('path', TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_test_options_file_is_valid(path, tmp_path):
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path])
    assert opt['path']['pretrain_network_g']


PAPER_TEST_FILES = [p for p in TEST_FILES if osp.basename(osp.dirname(p)) != 'demo']
# The test-time padding of the code behind each file's default protocol (the test files' headers):
# MiOIR's and TUR's Uformer test() pads; AirNet's/PromptIR's test.py feed the image whole (TUR's
# PromptIR test() pads x64: the header's TUR code path, test_promptir_tur_code_path_is_one_line_away).
TEST_PADDING = {'mio7/Uformer': {'multiple': 128, 'square': True, 'mode': 'reflect'}}


@pytest.mark.parametrize('path', PAPER_TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_test_files_pad_as_the_test_code_of_their_published_row(path):
    row = osp.splitext(osp.relpath(path, osp.join(REPO, 'options', 'test')))[0]
    assert (load_yaml(path).get('val') or {}).get('pad') == TEST_PADDING.get(row)


def test_promptir_tur_code_path_is_one_line_away(tmp_path):
    # the header's --force_yml line scores as TUR's PromptIR model does: x64 reflect padding, 8-bit metrics
    path = osp.join(REPO, 'options/test/aio3/PromptIR.yml')
    with open(path, encoding='utf-8') as f:
        header = ''.join(line[1:] for line in f if line.startswith('#'))
    line = header[header.index('To score so, add:'):].split(':', 1)[1].split('Data layout')[0]
    args = shlex.split(line.replace('\n', ' '))
    assert args[0] == '--force_yml'
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path] + args)
    assert opt['val']['pad'] == {'multiple': 64, 'mode': 'reflect'}
    assert {m['type'] for m in opt['val']['metrics'].values()} == {'calculate_psnr', 'calculate_ssim'}


@pytest.mark.parametrize('path', PAPER_TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_test_files_load_the_weights_their_published_row_scored(path):
    # MiOIR's and TUR's models read path.param_key_g with basicsr's default 'params' and validate
    # net_g, never the EMA copy; AirNet's, PromptIR's and TransWeather's test scripts have none.
    assert load_yaml(path)['path']['param_key_g'] == 'params'


@pytest.mark.parametrize('path', TUR_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_tur_options_use_the_loss_variant_of_their_published_row(path):
    setting = osp.basename(osp.dirname(path))
    pixel_opt = load_yaml(path)['train']['pixel_opt']
    assert pixel_opt['type'] == 'TURLoss' and pixel_opt.get('variant') == TUR_VARIANTS[setting]


PAPER_FILES = [p for p in TRAIN_FILES if osp.basename(osp.dirname(p)) != 'demo']


@pytest.mark.parametrize('path', PAPER_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_paper_recipes_use_the_gpu_fast_paths(path):
    # options/RECIPES.md "Fast paths": bf16 autocast, torch.compile, cuDNN autotuning and TF32, each one line away
    # from the authors' float32.
    opt = load_yaml(path)
    assert (opt['train']['mixed_precision'], opt['train']['compile']) == ('bf16', True)
    assert (opt['cudnn_benchmark'], opt['tf32']) == (True, True)


# The authors' task ids (Aitical/TUR 5d026e7 airnet_five_type_dataset.py de_dict: gopro and lol are our deblur and
# lowlight), which the cumulative TUR loss walks in ascending order: a file's `tasks:` must list them in that order.
AUTHORS_TASK_IDS = {'denoise_15': 0, 'denoise_25': 1, 'denoise_50': 2, 'derain': 3, 'dehaze': 4, 'deblur': 6,
                    'lowlight': 7}
AUTHORS_TASKS = {'aio3': ['denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze'],
                 'aio5': ['denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze', 'deblur', 'lowlight']}


@pytest.mark.parametrize('path', [p for p in TRAIN_FILES + TEST_FILES if osp.basename(osp.dirname(p)) in AUTHORS_TASKS],
                         ids=lambda p: osp.relpath(p, REPO))
def test_task_ids_follow_the_authors_order(path):
    from basicsr_tur.prepare.settings import SETTINGS
    setting = osp.basename(osp.dirname(path))
    tasks = load_yaml(path)['tasks']
    assert tasks == AUTHORS_TASKS[setting] == sorted(tasks, key=AUTHORS_TASK_IDS.__getitem__)
    assert list(SETTINGS[setting].tasks) == tasks  # what scripts/prepare_data.py labels the meta files with


# The test files of the AirNet/PromptIR protocol (aio3, aio5) score as those authors' test code does
# (utils/val_utils.py compute_psnr_ssim: float metrics), with basicsr's 8-bit metrics a commented
# alternative that parses.
AUTHORS_FLOAT_FILES = ['aio3/AirNet.yml', 'aio3/PromptIR.yml', 'aio5/AirNet.yml',
                       'aio5/Transweather.yml']


@pytest.mark.parametrize('name', AUTHORS_FLOAT_FILES)
def test_airnet_promptir_test_files_score_as_the_authors_test_code(name, tmp_path):
    path = osp.join(REPO, 'options', 'test', name)
    metrics = load_yaml(path)['val']['metrics']
    assert {m: (v['type'], v['crop_border']) for m, v in metrics.items()} == {
        'psnr': ('calculate_psnr_skimage', 0), 'ssim': ('calculate_ssim_skimage', 0)}
    alternative = [line.strip()[2:] for line in open(path)
                   if line.strip().startswith(('# psnr:', '# ssim:'))]
    assert [line.split(':')[0] for line in alternative] == ['psnr', 'ssim']
    overrides = [f'val:metrics:{line.replace(": ", "=", 1)}' for line in alternative]
    opt, _ = parse_options(str(tmp_path), False, ['-opt', path, '--force_yml', *overrides])
    types = {v['type'] for v in opt['val']['metrics'].values()}
    assert types == {'calculate_psnr', 'calculate_ssim'}


def _flat(opt: dict, prefix: str = '') -> dict:
    """{'a.b.c': value} of a nested options dict."""
    out = {}
    for key, value in opt.items():
        out.update(_flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {prefix + key: value})
    return out


# What a TUR/L1 pair may differ in: the run's name, the loss and the head; and, for AirNet in aio3/aio5, the recipe
# of TUR's AirNet_uncertainty(fix_E=True) against official AirNet's (frozen loaded encoder, no InfoNCE, no key crop,
# the restorer's own schedule), since each file follows the code path of its own published row.
PAIR_KEYS = {'name', 'network_g.uncertainty_head', 'network_g.uncertainty_detach', 'train.pixel_opt.type',
             'train.pixel_opt.variant', 'train.pixel_opt.reduction', 'train.pixel_opt.pool_size'}
AIRNET_RECIPE_KEYS = {'train.fix_encoder', 'path.pretrain_network_encoder', 'train.contrast_weight',
                      'train.encoder_warmup_iter', 'datasets.train.key_crop', 'train.optim_g.lr',
                      'train.scheduler.type', 'train.scheduler.milestones', 'train.scheduler.restarts',
                      'train.scheduler.restart_weights', 'train.total_iter'}


@pytest.mark.parametrize('path', TUR_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_tur_and_l1_options_differ_only_in_loss_head_and_recipe(path):
    tur, l1 = _flat(load_yaml(path)), _flat(load_yaml(path.replace('_TUR.yml', '_L1.yml')))
    differing = {k for k in set(tur) | set(l1) if tur.get(k) != l1.get(k)}
    setting, arch = osp.basename(osp.dirname(path)), osp.basename(path)[:-len('_TUR.yml')]
    allowed = PAIR_KEYS | (AIRNET_RECIPE_KEYS if (setting, arch) in {('aio3', 'AirNet'), ('aio5', 'AirNet')} else set())
    assert differing <= allowed, sorted(differing - allowed)


FIXTURE_TASKS = ['sr', 'noise', 'dark']  # the tasks of the paired fixture's meta file


def fixture_tasks(options_file: str) -> list[str]:
    """A `tasks=` override when the options' tasks lack one of the fixture's (the Restormer demo has four tasks)."""
    return [] if set(FIXTURE_TASKS) <= set(load_yaml(options_file)['tasks']) else [f'tasks={FIXTURE_TASKS}']


def tiny_data_overrides(options_file: str, clean_root: str, paired_root: str) -> list[str]:
    """--force_yml entries pointing a demo options file at the test fixtures, for a 2-iteration run."""
    return [*fixture_tasks(options_file), 'prepare=null', 'train:total_iter=2', 'logger:print_freq=1',
            'logger:save_checkpoint_freq=2', 'val:val_freq=2', 'datasets:train:gt_size=32',
            'datasets:train:batch_size_per_gpu=4', 'datasets:train:num_worker_per_gpu=0',
            'datasets:train:dataroot_gt=' + clean_root, 'datasets:train:depth_root=' + clean_root,
            'datasets:val:dataroot_lq=' + osp.join(paired_root, 'lq'),
            'datasets:val:dataroot_gt=' + osp.join(paired_root, 'gt'),
            'datasets:val:meta_file=' + osp.join(paired_root, 'meta.txt')]


@pytest.mark.parametrize('arch', DEMO_ARCHS)
def test_demo_backbone_trains_and_tests_with_tur_and_l1(arch, tmp_path, clean_root, paired_root):
    root = str(tmp_path)
    for loss in ('TUR', 'L1'):
        train_opt = osp.join(REPO, 'options', 'train', 'demo', f'{arch}_{loss}.yml')
        run_train(root, ['-opt', train_opt, '--force_yml', *tiny_data_overrides(train_opt, clean_root, paired_root)])
        weights = osp.join(root, 'experiments', f'demo_{arch}_{loss}', 'models', 'net_g_latest.pth')
        assert osp.isfile(weights)
        test_opt = osp.join(REPO, 'options', 'test', 'demo', f'{arch}.yml')
        run_test(root, ['-opt', test_opt, '--force_yml', f'name=t_{arch}_{loss}', 'prepare=null',
                        *fixture_tasks(test_opt),
                        'path:pretrain_network_g=' + weights, 'val:save_img=false',
                        'datasets:test:dataroot_lq=' + osp.join(paired_root, 'lq'),
                        'datasets:test:dataroot_gt=' + osp.join(paired_root, 'gt'),
                        'datasets:test:meta_file=' + osp.join(paired_root, 'meta.txt')])
        results = json.load(open(osp.join(root, 'results', f't_{arch}_{loss}', 'metrics.json')))['results']
        assert set(results['demo_test']['model']['tasks']) == {'sr', 'noise', 'dark'}


@pytest.mark.parametrize('arch', DEMO_ARCHS)
def test_demo_backbone_trains_under_bf16_and_channels_last(arch, tmp_path, clean_root, paired_root):
    # The speed switches on every backbone (this caught AirNet's deformable convolution, which has no bf16 CPU kernel).
    root = str(tmp_path)
    train_opt = osp.join(REPO, 'options', 'train', 'demo', f'{arch}_TUR.yml')
    model = run_train(root, ['-opt', train_opt, '--force_yml', *tiny_data_overrides(train_opt, clean_root, paired_root),
                             'train:mixed_precision=bf16', 'train:channels_last=true', 'val:val_freq=100'])
    assert model.skipped_steps == 0
    weights = torch.load(osp.join(root, 'experiments', f'demo_{arch}_TUR', 'models', 'net_g_latest.pth'))
    assert all(torch.isfinite(t).all() for t in weights['params'].values() if t.is_floating_point())


# The authors' per-GPU batch of the rows trained on several GPUs (options/RECIPES.md, "One GPU"): TUR pooled σ there.
PER_GPU_BATCH = {'mio7/SRResNet': 8, 'mio7/Uformer': 4, 'aio3/PromptIR': 8}


@pytest.mark.parametrize('row, per_gpu', PER_GPU_BATCH.items())
def test_tur_files_of_multi_gpu_rows_pool_sigma_per_authors_gpu(row, per_gpu):
    opt = load_yaml(osp.join(REPO, 'options', 'train', f'{row}_TUR.yml'))
    assert opt['train']['pixel_opt']['pool_size'] == per_gpu
    assert opt['datasets']['train']['batch_size_per_gpu'] % per_gpu == 0
