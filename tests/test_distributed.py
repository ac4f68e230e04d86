"""torchrun with gloo on CPU: ranks stay identical, rank 0 alone writes, and DDP matches one process."""
import json
import os
import socket
import subprocess
import sys
from os import path as osp

import pytest
import torch
from basicsr.archs import build_network
from conftest import assert_names, make_options, make_test_options, tiny_srresnet_weights

from basicsr_tur.train import train_pipeline
from basicsr_tur.utils.errors import UserError

HERE = osp.dirname(osp.abspath(__file__))


def free_port() -> int:
    """A free TCP port on localhost for the rendezvous."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_two_ranks(script: str, *args: str) -> None:
    """Run `script args` under torchrun: two gloo processes on one thread each, tests/ and the repository importable;
    asserts that it succeeds (showing the end of its stderr when not)."""
    path = os.pathsep.join([HERE, osp.dirname(HERE), os.environ.get('PYTHONPATH', '')])
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=path)
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                           f'--master_port={free_port()}', script, *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def train_two_ranks(root, *train_args) -> None:
    """Train with torchrun, two gloo processes on one thread each (tests/dist_worker.py: each rank saves its final
    weights, and its loss's state, under root); train_args follow train.py's command line, the launcher added."""
    run_two_ranks(osp.join(HERE, 'dist_worker.py'), str(root), str(root), *train_args, '--launcher', 'pytorch')


def test_two_process_training_matches_one_process_with_the_same_global_batch(tmp_path, clean_root, paired_root):
    # L1 so that the mean over two ranks' batches of 4 is exactly the mean over one batch of 8 (TUR pools σ per
    # rank, so its loss legitimately differs between the two layouts).
    opt_path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', total_iter=4)
    common = ['-opt', opt_path, '--force_yml', 'logger:save_checkpoint_freq=4', 'val:val_freq=4',
              'logger:print_freq=1']
    dist_root, single_root = tmp_path / 'dist', tmp_path / 'single'
    dist_root.mkdir()
    single_root.mkdir()
    train_two_ranks(dist_root, *common, 'datasets:train:batch_size_per_gpu=3')
    rank0 = torch.load(dist_root / 'rank0.pth')
    rank1 = torch.load(dist_root / 'rank1.pth')
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    exp = dist_root / 'experiments' / 'tiny'
    assert sorted(os.listdir(exp / 'training_states')) == ['4.state', '4.validated']  # rank 0 writes them
    assert len([f for f in os.listdir(exp) if f.endswith('.log')]) == 1
    assert not [f for f in os.listdir(exp / 'models') if '.tmp' in f]

    model = train_pipeline(str(single_root), common)  # one process, batch 6 = 2 ranks x 3
    single = model.get_bare_model(model.net_g).state_dict()
    for key in single:
        # Adam turns float-summation-order differences of near-zero gradients into up to ~1% of one step (lr 2e-3).
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-3, atol=5e-5)
    # Validation is sharded over the ranks and gathered: the same figures as one process scoring every image.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    psnr = {}
    for name, root in (('dist', dist_root), ('single', single_root)):
        acc = EventAccumulator(str(root / 'tb_logger' / 'tiny'))
        acc.Reload()
        psnr[name] = [acc.Scalars(f'metrics/tiny_val/{t}/psnr')[-1].value for t in ('sr', 'noise', 'dark')]
    assert psnr['dist'] == pytest.approx(psnr['single'], abs=0.01)


def test_tur_pooled_per_rank_size_on_one_process_matches_two_ranks(tmp_path, clean_root, paired_root):
    # TUR pools σ within each rank's batch; pool_size 3 on one process with the global batch of 6 pools within the
    # same two groups (the sampler deals a global batch to the ranks in order), so the runs train alike.
    opt_path = make_options(tmp_path, clean_root, paired_root, total_iter=4)
    common = ['-opt', opt_path, '--force_yml', 'logger:save_checkpoint_freq=4', 'val:val_freq=100']
    dist_root, single_root = tmp_path / 'dist', tmp_path / 'single'
    dist_root.mkdir()
    single_root.mkdir()
    train_two_ranks(dist_root, *common, 'datasets:train:batch_size_per_gpu=3')
    rank0 = torch.load(dist_root / 'rank0.pth')
    model = train_pipeline(str(single_root), common + ['train:pixel_opt:pool_size=3'])
    single = model.get_bare_model(model.net_g).state_dict()
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-3, atol=5e-5)
    (tmp_path / 'unpooled').mkdir()
    unpooled = train_pipeline(str(tmp_path / 'unpooled'), common)  # σ over all 6: another trajectory
    assert any(not torch.allclose(rank0[k], v, rtol=1e-3, atol=5e-5)
               for k, v in unpooled.get_bare_model(unpooled.net_g).state_dict().items())


@pytest.mark.parametrize('pixel_opt', ['{type: KendallLoss}', '{type: RLWLoss}', '{type: DWALoss, window: 2}',
                                       '{type: FAMOLoss}'])
def test_task_weighting_losses_keep_ranks_identical_when_ranks_hold_different_tasks(tmp_path, clean_root, paired_root,
                                                                                   pixel_opt):
    # Batches of 3 per rank over 3 tasks: the ranks see different task mixes, so a loss state updated from one rank's
    # own losses (DWA's windows, FAMO's logits) or a parameter whose gradient is not averaged (Kendall's log_vars)
    # would drift apart.
    opt_path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss', total_iter=5)
    train_two_ranks(tmp_path, '-opt', opt_path, '--force_yml', 'datasets:train:batch_size_per_gpu=3',
                    f'train:pixel_opt={pixel_opt}', 'logger:save_checkpoint_freq=5', 'val:val_freq=100')
    rank0, rank1 = torch.load(tmp_path / 'rank0.pth'), torch.load(tmp_path / 'rank1.pth')
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    loss0, loss1 = torch.load(tmp_path / 'rank0_loss.pth'), torch.load(tmp_path / 'rank1_loss.pth')
    assert loss0.keys() == loss1.keys() and all(torch.equal(loss0[k], loss1[k]) for k in loss0)
    if 'Kendall' in pixel_opt:  # it trained
        assert loss0['log_vars'].abs().min() > 0


# Backbones with modules their forward never runs (tiny arguments of tests/test_archs.py), and a head that L1 does not
# read: kept out of DDP, they train without find_unused_parameters (DDP would fail at the second step otherwise).
UNREACHED = {
    'PromptIR': ({'type': 'PromptIR', 'decoder': True, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                  'uncertainty_head': True}, 'TURLoss'),
    'Transweather': ({'type': 'Transweather', 'embed_dims': [8, 16, 16, 16], 'num_heads': [1, 1, 1, 1],
                      'mlp_ratios': [1, 1, 1, 1], 'depths': [1, 1, 1, 1], 'sr_ratios': [2, 1, 1, 1],
                      'dec_num_heads': 1, 'dec_mlp_ratio': 1, 'dec_depth': 1, 'num_task_queries': 4,
                      'drop_path_rate': 0., 'uncertainty_head': True}, 'TURLoss'),
    'SRResNet_head_L1': ({'type': 'SRResNet', 'num_feat': 8, 'num_block': 2, 'uncertainty_head': True}, 'L1Loss'),
}


@pytest.mark.parametrize('case', list(UNREACHED))
def test_parameters_the_forward_never_reaches_need_no_search_for_unused_parameters(case, tmp_path, clean_root,
                                                                                   paired_root):
    network_g, loss = UNREACHED[case]
    opt_path = make_options(tmp_path, clean_root, paired_root, loss=loss, network_g=network_g, total_iter=2)
    train_two_ranks(tmp_path, '-opt', opt_path, '--force_yml', 'find_unused_parameters=false',
                    'datasets:train:batch_size_per_gpu=3', 'datasets:train:gt_size=32',
                    'logger:save_checkpoint_freq=2', 'val:val_freq=100')
    rank0, rank1 = torch.load(tmp_path / 'rank0.pth'), torch.load(tmp_path / 'rank1.pth')
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    build_network(network_g).load_state_dict(rank0, strict=True)  # every key kept, the unreached ones included


def test_airnet_recipe_trains_under_ddp_through_its_encoder_warmup(tmp_path, clean_root, paired_root):
    # The warm-up leaves the restorer idle: it starts out of DDP and joins at the first joint step, without a search
    # for unused parameters; two micro-batches per step, so that the first of the joint step runs before it joins.
    opt_path = make_options(tmp_path, clean_root, paired_root, model_type='AirNetModel', total_iter=3,
                            network_g={'type': 'AirNet', 'batch_size': 3, 'n_groups': 1, 'n_blocks': 1,
                                       'uncertainty_head': True},
                            train_set={'key_crop': True}, encoder_warmup_iter=1, accumulate_steps=2)
    initial = build_network({'type': 'AirNet', 'batch_size': 3, 'n_groups': 1, 'n_blocks': 1,
                             'uncertainty_head': True}).state_dict()
    torch.save({'params': initial}, str(tmp_path / 'initial.pth'))
    train_two_ranks(tmp_path, '-opt', opt_path, '--force_yml', 'datasets:train:batch_size_per_gpu=3',
                    'logger:save_checkpoint_freq=3', 'val:val_freq=3', 'find_unused_parameters=false',
                    f'path:pretrain_network_g={tmp_path / "initial.pth"}')
    rank0, rank1 = torch.load(tmp_path / 'rank0.pth'), torch.load(tmp_path / 'rank1.pth')
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0 if 'queue' not in k)
    for trained in ('E.E.encoder_q.E.0.backbone.0.weight', 'R.head.0.weight'):  # the restorer after the warm-up
        assert not torch.equal(rank0[trained], initial[trained]), trained


def test_airnet_with_a_frozen_encoder_trains_under_ddp(tmp_path, clean_root, paired_root):
    # TUR's recipe: the encoder is frozen before DDP wraps the network, so DDP neither syncs nor expects its gradients.
    tiny = {'type': 'AirNet', 'batch_size': 3, 'n_groups': 1, 'n_blocks': 1}
    torch.manual_seed(1)
    source = build_network(tiny).state_dict()
    torch.save(source, str(tmp_path / 'All.pth'))
    opt_path = make_options(tmp_path, clean_root, paired_root, model_type='AirNetModel', total_iter=3,
                            network_g=dict(tiny, uncertainty_head=True), fix_encoder=True)
    train_two_ranks(tmp_path, '-opt', opt_path, '--force_yml', 'datasets:train:batch_size_per_gpu=3',
                    'logger:save_checkpoint_freq=3', 'val:val_freq=3', 'find_unused_parameters=false',
                    f'path:pretrain_network_encoder={tmp_path / "All.pth"}')
    rank0, rank1 = torch.load(tmp_path / 'rank0.pth'), torch.load(tmp_path / 'rank1.pth')
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    encoder = [k for k in source if k.startswith(('E.E.encoder_q.', 'E.E.encoder_k.')) and 'running' not in k
               and 'batches' not in k]
    assert all(torch.equal(rank0[k], source[k]) for k in encoder)
    assert not torch.equal(rank0['R.head.0.weight'], source['R.head.0.weight'])


# basicsr's 8-bit metrics (the test options' own), and the float ones of AirNet/PromptIR's tests.
FLOAT_METRICS = ('val:metrics={psnr: {type: calculate_psnr_skimage, crop_border: 0}, '
                 'ssim: {type: calculate_ssim_skimage, crop_border: 0}}')


@pytest.mark.parametrize('metrics', [[], [FLOAT_METRICS]], ids=['8-bit', 'float'])
def test_each_rank_loads_only_its_test_images_and_the_tables_are_those_of_one_process(
        metrics, tmp_path, paired_root):
    from basicsr_tur.test import run_test
    opt_path = make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))
    overrides = ['--force_yml', 'val:save_img=false', *metrics]
    one = run_test(str(tmp_path), ['-opt', opt_path, *overrides])
    run_two_ranks(osp.join(HERE, 'dist_test_worker.py'), str(tmp_path), str(tmp_path), '-opt', opt_path,
                  '--launcher', 'pytorch', *overrides, 'name=two_ranks')
    # 9 images: rank 0 loads images 0, 2, ..., 8 and rank 1 images 1, 3, 5, 7, once each.
    assert [json.loads((tmp_path / f'loaded{r}.json').read_text()) for r in (0, 1)] == [[0, 2, 4, 6, 8], [1, 3, 5, 7]]
    written = json.loads((tmp_path / 'results' / 'two_ranks' / 'metrics.json').read_text())
    images = 'float clipped to [0, 1]' if metrics else '8-bit'
    assert set(written['protocol']['images'].values()) == {images}
    two = written['results']['tiny_test_set']
    one = one['tiny_test_set']
    assert two['counts'] == one['counts'] == {'sr': 3, 'noise': 3, 'dark': 3}
    for source in ('model', 'input'):  # the sums of two shards against one sum: equal up to float rounding
        for task, values in one[source]['tasks'].items():
            assert two[source]['tasks'][task] == pytest.approx(values, rel=1e-12)
        assert two[source]['average'] == pytest.approx(one[source]['average'], rel=1e-12)


def test_validation_on_several_ranks_refuses_a_loader_that_is_not_sharded(tmp_path, paired_root):
    # Every rank would score every image and the gathered sums would count each image once per rank.
    from basicsr.data import build_dataset
    from basicsr.models import build_model

    from basicsr_tur.utils.options import parse_options
    opt, _ = parse_options(str(tmp_path), is_train=False,
                           argv=['-opt', make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))])
    model = build_model(opt)
    loader = torch.utils.data.DataLoader(build_dataset(opt['datasets']['test']), batch_size=1)
    model.opt['world_size'] = 2
    with pytest.raises(UserError) as err:
        model.validation(loader, 'tiny', None)
    assert_names(err, "dataset 'tiny_test_set'", '2 ranks', 'build_loader', 'SequentialSampler')


@pytest.mark.parametrize('shuffle, batch_size', [(True, 1), (False, 2)])
def test_validation_refuses_a_loader_whose_indices_would_not_match_its_images(tmp_path, paired_root, shuffle,
                                                                               batch_size):
    # The image indices (row keys of val.uncertainty, its pixel seeds) are read from the sampler beside the loader:
    # a shuffled sampler iterated twice gives two orders, a batch of two images one index.
    from basicsr.data import build_dataset
    from basicsr.models import build_model

    from basicsr_tur.utils.options import parse_options
    opt, _ = parse_options(str(tmp_path), is_train=False,
                           argv=['-opt', make_test_options(tmp_path, paired_root, tiny_srresnet_weights(tmp_path))])
    model = build_model(opt)
    loader = torch.utils.data.DataLoader(build_dataset(opt['datasets']['test']), batch_size=batch_size,
                                         shuffle=shuffle)
    sampler = 'RandomSampler' if shuffle else 'SequentialSampler'
    with pytest.raises(UserError) as err:
        model.validation(loader, 'tiny', None)
    assert_names(err, "dataset 'tiny_test_set'", f'batches of {batch_size}', sampler, 'build_loader')
