"""Speed switches on CPU: mixed precision, channels_last, torch.compile, gradient clipping and accumulation."""
import pytest
import torch
from basicsr.models import build_model
from conftest import assert_names, edit, make_options, make_test_options

from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options


def model_from(tmp_path, clean_root, paired_root, loss='TURLoss', **train):
    """A tiny TURModel whose `train` options are updated with `train`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = make_options(tmp_path, clean_root, paired_root, loss=loss, **train)
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    return build_model(opt)


def batch(n=6, size=16, seed=0):
    """A fixed random batch over the three fixture tasks."""
    g = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(n, 3, size, size, generator=g), 'gt': torch.rand(n, 3, size, size, generator=g),
            'task_id': torch.arange(n) % 3, 'task': [['sr', 'noise', 'dark'][i % 3] for i in range(n)]}


def weights(model):
    """A copy of the bare network's tensors."""
    return {k: v.detach().clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}


def test_bf16_autocast_trains_with_a_float32_tur_loss(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, mixed_precision='bf16')
    seen = {}
    tur_forward = model.cri_pix.forward

    def spy(pred, target, uncertainty, task_ids):
        seen['uncertainty'] = uncertainty.dtype
        loss = tur_forward(pred, target, uncertainty, task_ids)
        seen['loss'] = loss.dtype
        return loss

    model.cri_pix.forward = spy
    before = weights(model)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert seen['uncertainty'] == torch.bfloat16  # the network ran under bf16 autocast...
    # ...and the loss was computed in float32, σ included (not just promoted at the end by a float32 output).
    assert seen['loss'] == torch.float32 and model.cri_pix.last_task_stats['sigma'].dtype == torch.float32
    assert torch.isfinite(torch.tensor(model.get_current_log()['l_pix']))
    assert any(not torch.equal(before[k], v) for k, v in weights(model).items())


def test_unknown_precision_is_named(tmp_path, clean_root, paired_root):
    with pytest.raises(OptionError) as err:
        model_from(tmp_path, clean_root, paired_root, mixed_precision='fp8')
    assert_names(err, tmp_path, "'train.mixed_precision'", "'bf16'", "'fp16'", "'fp8'")


def test_channels_last_gives_the_same_step(tmp_path, clean_root, paired_root):
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = model_from(tmp_path / str(channels_last), clean_root, paired_root, channels_last=channels_last)
        model.feed_data(batch())
        model.optimize_parameters(1)
        results.append(weights(model))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-4, atol=1e-6)


def test_compiled_network_trains_and_saves_plain_keys(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, compile={'backend': 'aot_eager'})
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert not any(k.startswith('_orig_mod') for k in model.get_bare_model(model.net_g).state_dict())


def test_grad_clip_bounds_the_update(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, loss='L1Loss', optim_g={'type': 'SGD', 'lr': 1.0},
                       grad_clip=1e-3)
    before = weights(model)
    model.feed_data(batch())
    model.optimize_parameters(1)
    after = weights(model)
    total = torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))
    assert 0 < total <= 1e-3 + 1e-9


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path, clean_root, paired_root):
    sgd = {'type': 'SGD', 'lr': 0.5}
    full = model_from(tmp_path / 'full', clean_root, paired_root, loss='L1Loss', optim_g=sgd)
    half = model_from(tmp_path / 'half', clean_root, paired_root, loss='L1Loss', optim_g=sgd, accumulate_steps=2)
    half.get_bare_model(half.net_g).load_state_dict(weights(full))
    data = batch()
    full.feed_data(data)
    full.optimize_parameters(1)
    half.feed_data({k: v[:3] for k, v in data.items()})
    half.optimize_parameters(1, step=False)
    half.feed_data({k: v[3:] for k, v in data.items()})
    half.optimize_parameters(1, step=True)
    a, b = weights(full), weights(half)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-7)


def test_training_run_with_accumulation_counts_optimizer_steps(tmp_path, clean_root, paired_root):
    from basicsr_tur.train import train_pipeline
    path = make_options(tmp_path, clean_root, paired_root, accumulate_steps=2)
    model = train_pipeline(str(tmp_path), ['-opt', path, '--force_yml', 'train:total_iter=6',
                                           'logger:save_checkpoint_freq=3', 'val:val_freq=6'])
    assert model.optimizer_g.state_dict()['state'][0]['step'].item() == 6


@pytest.fixture
def restore_backend_flags():
    """Put the process-wide cuDNN/TF32 switches back as they were after the test."""
    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = flags


@pytest.mark.parametrize('tf32', [None, True, False])
def test_tf32_is_on_unless_the_options_say_tf32_false(tf32, tmp_path, clean_root, paired_root,
                                                      restore_backend_flags):
    from basicsr_tur.utils.options import set_backend_flags
    path = make_options(tmp_path, clean_root, paired_root)
    if tf32 is not None:
        edit(path, lambda opt: opt.update(tf32=tf32))
    opt, _ = parse_options(str(tmp_path), True, ['-opt', path])
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32 is False  # the opposite
    set_backend_flags(opt)
    expected = tf32 is not False
    assert torch.backends.cuda.matmul.allow_tf32 is expected and torch.backends.cudnn.allow_tf32 is expected
    # Set through the legacy flags, torch's newer per-backend API reads the same and both stay readable.
    assert torch.backends.cuda.matmul.fp32_precision == ('tf32' if expected else 'ieee')


def test_training_and_test_runs_apply_tf32_and_cudnn_benchmark(tmp_path, clean_root, paired_root,
                                                                restore_backend_flags):
    from basicsr_tur.test import run_test
    from basicsr_tur.train import train_pipeline
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    train_pipeline(str(tmp_path), ['-opt', path, '--force_yml', 'tf32=false', 'cudnn_benchmark=true',
                                   'train:total_iter=1', 'logger:save_checkpoint_freq=1', 'val:val_freq=1'])
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    weights_path = str(tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth')
    test_path = make_test_options(tmp_path, paired_root, weights_path)
    run_test(str(tmp_path), ['-opt', test_path])
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # the default, on
    assert not torch.backends.cudnn.benchmark


def test_tf32_must_be_true_or_false(tmp_path, clean_root, paired_root):
    path = make_options(tmp_path, clean_root, paired_root)
    edit(path, lambda opt: opt.update(tf32='fast'))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', path])
    assert_names(err, path, "'tf32'", "'fast'")


@pytest.mark.parametrize('precision', ['fp32', 'bf16', 'fp16'])
def test_fp16_on_the_cpu_is_named_as_slow_in_restore_and_training(precision, tmp_path, clean_root, paired_root,
                                                                   log_lines):
    # Real-ESRGAN #306/#319's kind (shared/cases/field-t3-cpu_fp16_silently_slow.sh): fp16 autocast on a CPU has no
    # fast kernels; restore and training say so once, and name the switch, where bf16 and fp32 say nothing.
    from basicsr_tur.archs.srresnet_arch import SRResNet
    from basicsr_tur.inference import Restorer
    Restorer(SRResNet(num_feat=8, num_block=1, upscale=1), torch.device('cpu'), precision=precision)
    model_from(tmp_path, clean_root, paired_root, mixed_precision=None if precision == 'fp32' else precision)
    slow = [line for line in log_lines if 'fp16 on the CPU' in line]
    if precision == 'fp16':
        assert len(slow) == 2 and '--precision fp16' in slow[0] and 'train.mixed_precision: fp16' in slow[1]
    else:
        assert slow == []
