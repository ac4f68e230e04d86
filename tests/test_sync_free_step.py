"""The training step makes no host-device synchronisation (issue 20), counted on the CPU by utils/sync_count.py.

Every `.item()`, `bool(tensor)`, data-dependent-size op (unique, bincount, nonzero, boolean masks) and
`.tolist()`/`.numpy()`/`.cpu()` inside `optimize_parameters` is counted; an optimizer's host-side step counters are
not. The logger's read (get_current_log, every print_freq iterations) is the one place figures leave the device.
"""
import math

import pytest
import torch
from conftest import assert_names
from test_speed_switches import batch, model_from, weights

from basicsr_tur.losses.tur_loss import TURLoss
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.sync_count import SyncCounter, optimizer_step_counters

LOSSES = {
    'L1Loss': {},
    'TURLoss': {'pixel_opt': {'type': 'TURLoss', 'variant': 'per_task'}},
    'TURLoss-cumulative': {'pixel_opt': {'type': 'TURLoss', 'variant': 'cumulative'}},
    'KendallLoss': {'pixel_opt': {'type': 'KendallLoss'}},
    'RLWLoss': {'pixel_opt': {'type': 'RLWLoss'}},
    'DWALoss': {'pixel_opt': {'type': 'DWALoss', 'window': 1}},
    'FAMOLoss': {'pixel_opt': {'type': 'FAMOLoss'}},
}


def syncs_per_step(model, steps: int = 3, sparse: bool = False) -> SyncCounter:
    """Sync points of `steps` optimize_parameters calls after two warm-up steps (which create the optimizer state)."""
    def feed(i):
        data = batch(seed=i)
        if sparse:  # one task absent from the batch
            data['task_id'] = torch.tensor([0, 2, 0, 2, 0, 2])
        model.feed_data(data)

    for i in range(2):
        feed(i)
        model.optimize_parameters(i + 1)
    counter = SyncCounter(exclude=optimizer_step_counters(model.optimizer_g))
    for i in range(steps):
        feed(10 + i)
        with counter:
            model.optimize_parameters(3 + i)
    return counter


@pytest.mark.parametrize('loss', list(LOSSES))
def test_training_step_makes_no_host_device_sync(tmp_path, clean_root, paired_root, loss):
    # EMA, gradient clipping and a batch where a task is absent included: every path of the step.
    model = model_from(tmp_path, clean_root, paired_root, loss=loss.split('-')[0], ema_decay=0.9, grad_clip=1.0,
                       **LOSSES[loss])
    counter = syncs_per_step(model, sparse=True)
    assert counter.total == 0, dict(counter.counts)


def test_accumulated_micro_batches_make_no_sync(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, accumulate_steps=2, ema_decay=0.9)
    counter = SyncCounter()
    for i in range(4):
        model.feed_data(batch(seed=i))
        with counter:
            model.optimize_parameters(1 + i // 2, step=i % 2 == 1)
    assert counter.total == 0, dict(counter.counts)


def test_the_counter_sees_the_sync_points_it_is_meant_to_find():
    counter = SyncCounter()
    x = torch.tensor([1.0, 2.0, 2.0])
    with counter:
        x.sum().item()
        bool(x.max() > 1)
        torch.unique(x)
        torch.bincount(torch.tensor([0, 1]))
        x[x > 1]
        x.tolist()
        x.numpy()
    assert counter.counts['_local_scalar_dense'] == 2
    assert counter.counts['_unique2'] == 1 and counter.counts['bincount'] == 1
    assert counter.counts['index[bool mask]'] == 1
    assert counter.counts['Tensor.tolist'] == 1 and counter.counts['Tensor.numpy'] == 1
    with counter:
        (x * 2).sum()
    assert counter.total == 7  # nothing added by plain device work


def test_an_optimizer_without_a_fused_kernel_reads_one_flag_per_step(tmp_path, clean_root, paired_root):
    # RMSprop cannot skip a non-finite step on the device: its step reads the guard's flag, the one sync left.
    model = model_from(tmp_path, clean_root, paired_root, optim_g={'type': 'RMSprop', 'lr': 1e-4})
    counter = syncs_per_step(model, steps=2)
    assert dict(counter.counts) == {'_local_scalar_dense': 2}


def test_adam_and_adamw_are_fused_by_default(tmp_path, clean_root, paired_root):
    assert model_from(tmp_path / 'a', clean_root, paired_root).optimizer_g.defaults['fused'] is True
    adamw = model_from(tmp_path / 'w', clean_root, paired_root, optim_g={'type': 'AdamW', 'lr': 1e-3})
    assert adamw.optimizer_g.defaults['fused'] is True
    # SGD keeps torch's default: fused SGD with momentum whose first step is skipped uses an uninitialised buffer.
    sgd = model_from(tmp_path / 's', clean_root, paired_root, optim_g={'type': 'SGD', 'lr': 1e-3, 'momentum': 0.9})
    assert not sgd.optimizer_g.defaults['fused']
    unfused = model_from(tmp_path / 'b', clean_root, paired_root, optim_g={'type': 'Adam', 'lr': 1e-3, 'fused': False})
    assert not unfused.optimizer_g.defaults['fused']


def test_logged_figures_are_the_means_of_the_steps(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root)
    seen = []
    for i in range(3):
        model.feed_data(batch(seed=i))
        model.optimize_parameters(i + 1)
        stats = model.cri_pix.last_task_stats
        seen.append((model.cri_pix.task_stats['loss'].sum().item() / stats['task_ids'].numel(), stats))
    log = model.get_current_log()
    assert log['l_pix'] == pytest.approx(sum(loss for loss, _ in seen) / 3, rel=1e-6)
    for k, task in enumerate(['sr', 'noise', 'dark']):
        assert log[f'sigma/{task}'] == pytest.approx(sum(s['sigma'][k].item() for _, s in seen) / 3, rel=1e-6)
    assert model.get_current_log() == {}  # read once


def test_a_task_absent_from_some_batches_is_averaged_over_the_batches_holding_it(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, loss='L1Loss')
    l1 = []
    for i, ids in enumerate(([0, 1, 0, 1, 0, 1], [0, 2, 0, 2, 0, 2])):
        data = batch(seed=i)
        data['task_id'] = torch.tensor(ids)
        model.feed_data(data)
        model.optimize_parameters(i + 1)
        per_sample = (model.output.detach() - model.gt).abs().flatten(1).mean(1)
        l1.append({t: per_sample[torch.tensor(ids) == t].mean().item() for t in set(ids)})
    log = model.get_current_log()
    assert log['l1/sr'] == pytest.approx((l1[0][0] + l1[1][0]) / 2, rel=1e-6)
    assert log['l1/noise'] == pytest.approx(l1[0][1], rel=1e-6)
    assert log['l1/dark'] == pytest.approx(l1[1][2], rel=1e-6)


def test_a_task_id_beyond_the_tasks_list_is_refused_on_the_host(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root)
    data = batch()
    data['task_id'] = torch.tensor([0, 1, 2, 3, 0, 1])
    with pytest.raises(UserError) as err:
        model.feed_data(data)
    assert_names(err, 'task id 3', 'num_tasks 3')


@pytest.mark.parametrize('variant', ['per_task', 'cumulative'])
def test_tur_over_a_fixed_task_count_equals_the_tasks_present(variant):
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(9, 3, 8, 8, generator=g), torch.rand(9, 3, 8, 8, generator=g)
    u = torch.rand(9, 3, 8, 8, generator=g) + 0.1
    ids = torch.tensor([6, 3, 0, 6, 4, 3, 0, 4, 6])
    fixed = TURLoss(variant=variant, num_tasks=9)(pred, target, u, ids)
    dense = TURLoss(variant=variant)(pred, target, u, torch.tensor([3, 1, 0, 3, 2, 1, 0, 2, 3]))
    assert math.isclose(fixed.item(), dense.item(), rel_tol=1e-6)


def test_a_skipped_step_leaves_weights_and_optimizer_state_as_they_were(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, ema_decay=0.9)
    model.feed_data(batch())
    model.optimize_parameters(1)
    before = weights(model)
    state = {k: v.clone() for k, v in model.optimizer_g.state[next(iter(model.optimizer_g.state))].items()}
    data = batch(seed=1)
    data['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    model.optimize_parameters(2)
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
    after = model.optimizer_g.state[next(iter(model.optimizer_g.state))]
    assert all(torch.equal(state[k], after[k]) for k in state)  # moments and step count untouched
    assert model.skipped_steps == 1


def test_a_skipped_step_leaves_the_ema_copy_as_it_was(tmp_path, clean_root, paired_root):
    model = model_from(tmp_path, clean_root, paired_root, ema_decay=0.9)
    model.feed_data(batch())
    model.optimize_parameters(1)
    ema = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    data = batch(seed=1)
    data['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    model.optimize_parameters(2)
    assert all(torch.equal(ema[k], v) for k, v in model.net_g_ema.state_dict().items())
    model.feed_data(batch(seed=2))
    model.optimize_parameters(3)  # a finite step moves it again
    assert any(not torch.equal(ema[k], v) for k, v in model.net_g_ema.state_dict().items())


def test_gradient_clipping_leaves_the_loss_parameters_alone(tmp_path, clean_root, paired_root):
    # As before the step moved to train_step.py: grad_clip bounds the network's gradients; KendallLoss's log
    # variances (trained by the same optimizer) take their whole gradient (review finding).
    model = model_from(tmp_path, clean_root, paired_root, loss='L1Loss', pixel_opt={'type': 'KendallLoss'},
                       optim_g={'type': 'SGD', 'lr': 1.0}, grad_clip=1e-4)
    before = model.cri_pix.log_vars.detach().clone()
    model.feed_data(batch())
    model.optimize_parameters(1)
    grad = model.cri_pix.log_vars.grad
    assert grad.abs().max() > 1e-2  # far above the clip...
    torch.testing.assert_close(before - model.cri_pix.log_vars.detach(), grad)  # ...and applied whole
    net_grads = [p.grad for p in model.net_g.parameters() if p.grad is not None]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in net_grads])) <= 1e-4 * 1.001


def test_steps_kept_for_the_log_read_are_bounded(tmp_path, clean_root, paired_root, monkeypatch, log_lines):
    from basicsr_tur.models import train_step
    monkeypatch.setattr(train_step, 'PENDING_LIMIT', 3)
    model = model_from(tmp_path, clean_root, paired_root, max_nonfinite_steps=100)
    for it in range(1, 7):
        data = batch(seed=it)
        if it in (2, 6):
            data['lq'][0, 0, 0, 0] = float('nan')
        model.feed_data(data)
        model.optimize_parameters(it)
        assert len(model.train_step._pending.counted) <= 3
    model.get_current_log()
    assert model.skipped_steps == 2  # exact on the device, itemised or not
    assert any('the 3 steps before iter 4 are not itemised' in line for line in log_lines)
    assert [line.split(':')[0] for line in log_lines if 'step skipped' in line] == ['iter 6']
