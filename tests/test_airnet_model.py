"""AirNet's recipes: official (encoder-only warm-up with InfoNCE, then restoration loss + 0.1 InfoNCE, with TUR or
L1) and TUR's (a trained encoder, frozen; the restoration loss alone)."""
import copy

import pytest
import torch
from basicsr.models import build_model
from conftest import assert_names, make_options

from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.options import parse_options

TINY_AIRNET = {'type': 'AirNet', 'batch_size': 6, 'n_groups': 1, 'n_blocks': 1}


def airnet_model(tmp_path, clean_root, paired_root, loss='TURLoss', warmup=2):
    """A tiny AirNetModel and a batch source from the options pipeline."""
    from basicsr.data import build_dataset
    path = make_options(tmp_path, clean_root, paired_root, loss=loss, model_type='AirNetModel',
                        network_g=dict(TINY_AIRNET, uncertainty_head=loss == 'TURLoss'),
                        train_set={'key_crop': True}, encoder_warmup_iter=warmup)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    return build_model(opt), build_dataset(opt['datasets']['train'])


def batch(dataset, n=6):
    """The first n samples collated."""
    import torch
    samples = [dataset[i] for i in range(n)]
    return {k: (torch.stack([s[k] for s in samples]) if k in ('lq', 'gt', 'lq_key') else [s[k] for s in samples])
            for k in samples[0]} | {'task_id': torch.tensor([s['task_id'] for s in samples])}


@pytest.mark.parametrize('loss', ['TURLoss', 'L1Loss'])
def test_warmup_trains_the_encoder_alone_then_both(tmp_path, clean_root, paired_root, loss):
    model, dataset = airnet_model(tmp_path, clean_root, paired_root, loss=loss)
    model.feed_data(batch(dataset))
    model.optimize_parameters(1)
    assert all(p.grad is None for p in model.net_g.R.parameters())
    assert set(model.get_current_log()) == {'l_contrast'}
    model.optimize_parameters(3)
    log = model.get_current_log()
    assert {'l_total', 'l_pix', 'l_contrast', 'l1/sr'} <= set(log)
    assert any(p.grad is not None for p in model.net_g.R.parameters())


def test_missing_key_crop_is_explained(tmp_path, clean_root, paired_root):
    model, dataset = airnet_model(tmp_path, clean_root, paired_root)
    data = batch(dataset)
    del data['lq_key']
    model.feed_data(data)
    with pytest.raises(UserError) as err:
        model.optimize_parameters(1)
    assert_names(err, 'AirNetModel', "'lq_key'", 'key_crop: true', 'datasets.train', 'train.fix_encoder: true')


# TUR's recipe (Aitical/TUR AirNet_uncertainty(fix_E=True) + AIRnet_uncertainty): a trained encoder, frozen.

def encoder_checkpoint(path, wrap: bool = False, batch_size: int = 3) -> dict:
    """Save a tiny AirNet (seed 1, another queue length than the model's) as `All.pth` does, or wrapped as ours."""
    import torch
    from basicsr.archs import build_network
    torch.manual_seed(1)
    state = build_network(dict(TINY_AIRNET, batch_size=batch_size)).state_dict()
    torch.save({'params': state} if wrap else state, str(path))
    return state


def fixed_model(tmp_path, clean_root, paired_root, encoder=None, **train_overrides):
    """A tiny AirNetModel with train.fix_encoder and the encoder checkpoint at `encoder` (saved here when None)."""
    from basicsr.data import build_dataset
    if encoder is None:
        encoder = tmp_path / 'All.pth'
        encoder_checkpoint(encoder)
    path = make_options(tmp_path, clean_root, paired_root, model_type='AirNetModel',
                        network_g=dict(TINY_AIRNET, uncertainty_head=True), fix_encoder=True, **train_overrides)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml',
                                                  f'path:pretrain_network_encoder={encoder}'])
    return build_model(opt), build_dataset(opt['datasets']['train'])


def test_fixed_encoder_stays_unchanged_while_the_restorer_trains(tmp_path, clean_root, paired_root):
    model, dataset = fixed_model(tmp_path, clean_root, paired_root)
    net = model.net_g
    # Everything of the encoder but the query encoder's BatchNorm statistics (see the next test).
    frozen = {k: v.clone() for k, v in net.state_dict().items()
              if k.startswith('E.') and not (k.startswith('E.E.encoder_q.') and ('running' in k or 'batches' in k))}
    restorer = {k: v.clone() for k, v in net.R.state_dict().items()}
    model.feed_data(batch(dataset))  # no lq_key: the dataset has no key_crop
    for it in (1, 2):
        model.optimize_parameters(it)
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert any(not torch.equal(net.R.state_dict()[k], v) for k, v in restorer.items())


def test_fixed_encoder_batch_norm_statistics_follow_the_training_batches(tmp_path, clean_root, paired_root):
    # As in TUR, where the frozen encoder runs in train mode: running statistics move, the eval path reads them.
    model, dataset = fixed_model(tmp_path, clean_root, paired_root)
    bn = model.net_g.E.E.encoder_q.E_pre.backbone[1]
    mean = bn.running_mean.clone()
    model.feed_data(batch(dataset))
    model.optimize_parameters(1)
    assert not torch.equal(bn.running_mean, mean)


def test_fixed_encoder_parameters_are_not_in_the_optimizer(tmp_path, clean_root, paired_root):
    model, _ = fixed_model(tmp_path, clean_root, paired_root)
    optimized = {id(p) for group in model.optimizer_g.param_groups for p in group['params']}
    trainable = {id(p) for m in (model.net_g.R, model.net_g.uncertainty_head) for p in m.parameters()}
    assert optimized == trainable


def test_fixed_encoder_training_output_is_the_restorer_on_the_query_encoder_in_train_mode(tmp_path, clean_root,
                                                                                        paired_root):
    model, dataset = fixed_model(tmp_path, clean_root, paired_root)
    reference = copy.deepcopy(model.net_g).train()
    data = batch(dataset)
    assert 'lq_key' not in data
    model.feed_data(data)
    model.optimize_parameters(1)
    with torch.no_grad():
        expected = reference.R(model.lq, reference.E.E.encoder_q(model.lq)[2])[0]
    assert torch.equal(model.output, expected)
    assert 'l_contrast' not in model.get_current_log()


def test_fixed_encoder_validation_uses_the_running_statistics(tmp_path, clean_root, paired_root):
    model, dataset = fixed_model(tmp_path, clean_root, paired_root)
    model.feed_data(batch(dataset, 2))
    reference = copy.deepcopy(model.net_g).eval()
    model.test()
    with torch.no_grad():
        assert torch.equal(model.output, reference.R(model.lq, reference.E.E.encoder_q(model.lq)[2])[0])
    assert model.net_g.training  # back to training mode, as TUR's test() leaves it


@pytest.mark.parametrize('wrap', [False, True], ids=['official_plain_state_dict', 'basicsr_params'])
def test_encoder_is_loaded_from_the_checkpoint_given(tmp_path, clean_root, paired_root, wrap):
    # The file's queue (3 x 16 keys) differs from the model's (6 x 16): the queue is not read.
    source = encoder_checkpoint(tmp_path / 'enc.pth', wrap=wrap)
    model, _ = fixed_model(tmp_path, clean_root, paired_root, encoder=tmp_path / 'enc.pth')
    state = model.net_g.state_dict()
    encoder = [k for k in state if k.startswith(('E.E.encoder_q.', 'E.E.encoder_k.'))]
    assert encoder and all(torch.equal(state[k], source[k]) for k in encoder)
    assert not torch.equal(state['R.head.0.weight'], source['R.head.0.weight'])  # the restorer starts afresh


def test_missing_encoder_checkpoint_is_named_in_one_line(tmp_path, clean_root, paired_root):
    missing = tmp_path / 'nowhere' / 'All.pth'
    with pytest.raises(FileNotFoundError) as err:
        fixed_model(tmp_path, clean_root, paired_root, encoder=missing)
    assert str(missing) in str(err.value) and '\n' not in str(err.value)


def test_checkpoint_without_encoder_tensors_is_named_in_one_line(tmp_path, clean_root, paired_root):
    path = tmp_path / 'srresnet.pth'
    torch.save({'params': {'conv_first.weight': torch.zeros(8, 3, 3, 3)}}, str(path))
    with pytest.raises(UserError) as err:
        fixed_model(tmp_path, clean_root, paired_root, encoder=path)
    assert_names(err, 'path.pretrain_network_encoder', path, "'E.*'")


@pytest.mark.parametrize('key', ['contrast_weight', 'encoder_warmup_iter'])
def test_contrastive_options_are_refused_with_a_fixed_encoder(tmp_path, clean_root, paired_root, key):
    with pytest.raises(UserError) as err:
        fixed_model(tmp_path, clean_root, paired_root, **{key: 1})
    assert_names(err, f'train.{key}', 'train.fix_encoder: true')


def test_null_contrastive_options_count_as_absent_with_a_fixed_encoder(tmp_path, clean_root, paired_root):
    # --force_yml can set a key of the official recipe to null but not remove it: RECIPES.md's command relies on it.
    model, _ = fixed_model(tmp_path, clean_root, paired_root, contrast_weight=None, encoder_warmup_iter=None)
    assert model.fix_encoder


def test_fixed_encoder_without_trained_weights_is_refused(tmp_path, clean_root, paired_root):
    with pytest.raises(UserError) as err:
        fixed_model(tmp_path, clean_root, paired_root, encoder='~')  # YAML null: no encoder checkpoint
    assert_names(err, 'train.fix_encoder: true', 'path.pretrain_network_encoder')


def test_encoder_checkpoint_without_fix_encoder_is_refused(tmp_path, clean_root, paired_root):
    encoder_checkpoint(tmp_path / 'All.pth')
    path = make_options(tmp_path, clean_root, paired_root, model_type='AirNetModel', network_g=TINY_AIRNET,
                        train_set={'key_crop': True})
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path, '--force_yml',
                                                  f'path:pretrain_network_encoder={tmp_path / "All.pth"}'])
    with pytest.raises(UserError) as err:
        build_model(opt)
    assert_names(err, 'path.pretrain_network_encoder', 'train.fix_encoder: true')


def test_resume_does_not_reload_the_encoder_checkpoint(tmp_path):
    # The resumed weights hold the encoder's BatchNorm statistics as training left them.
    from basicsr_tur.train import load_resume_state
    (tmp_path / 'models').mkdir()
    (tmp_path / 'training_states').mkdir()
    torch.save({}, str(tmp_path / 'models' / 'net_g_4.pth'))
    torch.save({'iter': 4}, str(tmp_path / 'training_states' / '4.state'))
    opt = {'path': {'models': str(tmp_path / 'models'), 'pretrain_network_encoder': 'All.pth'}}
    load_resume_state(opt, str(tmp_path / 'training_states' / '4.state'))
    assert 'pretrain_network_encoder' not in opt['path']
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'models' / 'net_g_4.pth')


@pytest.mark.parametrize('loss', ['TURLoss', 'L1Loss'])
def test_the_official_recipe_steps_without_a_host_device_sync(tmp_path, clean_root, paired_root, loss):
    # Issue 20: the contrastive step too (MoCo's queue pointer read from its host copy, the key encoder's momentum
    # update by foreach kernels), in the warm-up and in the joint phase.
    from basicsr_tur.utils.sync_count import SyncCounter, optimizer_step_counters
    model, dataset = airnet_model(tmp_path, clean_root, paired_root, loss=loss, warmup=2)
    data = batch(dataset)
    for it in (1, 3):  # a warm-up step and a joint step create the optimizer's state
        model.feed_data(data)
        model.optimize_parameters(it)
    counter = SyncCounter(exclude=optimizer_step_counters(model.optimizer_g))
    for it in (2, 4):
        model.feed_data(data)
        with counter:
            model.optimize_parameters(it)
    assert counter.total == 0, dict(counter.counts)
