"""TURLoss: both authors' formulas (per_task, cumulative), computed without loops, and the per-task figures."""
import math
from os import path as osp

import pytest
import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from conftest import assert_names

from basicsr_tur.losses.tur_loss import TURLoss, per_task_mean
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.options import parse_options


def reference_tur(pred, target, uncertainty, task_ids):
    """The authors' computation (Aitical/TUR uncertainty_loss_softplus), written as a plain per-task loop."""
    losses = []
    for task in sorted(set(task_ids.tolist())):
        idx = [i for i in range(len(task_ids)) if task_ids[i] == task]
        sigma = torch.mean(torch.stack([uncertainty[i] for i in idx]), dim=0)
        scaled_pred = torch.stack([pred[i] * (1.0 / sigma) for i in idx])
        scaled_target = torch.stack([target[i] * (1.0 / sigma) for i in idx])
        losses.append(F.l1_loss(scaled_pred, scaled_target) + 2 * torch.log(torch.mean(sigma)))
    return sum(losses) / len(losses)


def reference_cumulative(pred, target, uncertainty, task_ids, eps=1e-6):
    """The authors' three/five-task computation (Aitical/TUR airnet_uncertainty_loss), as a plain per-sample loop.

    Samples are sorted into per-task lists; walking the tasks in ascending id, the weighted lists are appended to
    and never emptied, so each task's term is the L1 over all weighted samples so far plus 2 log of its mean σ.
    """
    per_task = {}
    for i in range(len(task_ids)):
        per_task.setdefault(int(task_ids[i]), []).append(i)
    weighted_pred, weighted_target, terms = [], [], []
    for task in sorted(per_task):
        sigma = torch.mean(torch.stack([uncertainty[i] for i in per_task[task]]), dim=0) + eps
        for i in per_task[task]:
            weighted_pred.append(pred[i] * (1.0 / sigma))
            weighted_target.append(target[i] * (1.0 / sigma))
        terms.append(F.l1_loss(torch.stack(weighted_pred), torch.stack(weighted_target)) + 2 * torch.log(sigma.mean()))
    return sum(terms) / len(terms)


def random_batch(batch=16, num_tasks=7, seed=0, shape=(3, 8, 8)):
    """Random pred/target/uncertainty (B, C, H, W) and task ids in [0, num_tasks)."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, *shape, generator=g)
    target = torch.rand(batch, *shape, generator=g)
    uncertainty = F.softplus(torch.randn(batch, *shape, generator=g))
    task_ids = torch.randint(0, num_tasks, (batch,), generator=g)
    return pred, target, uncertainty, task_ids


def test_value_matches_hand_computed_case():
    # Task 0: two samples of one pixel; task 1: one sample. C=H=W=1.
    pred = torch.tensor([0.5, 0.2, 0.9]).view(3, 1, 1, 1)
    target = torch.tensor([0.1, 0.4, 0.6]).view(3, 1, 1, 1)
    u = torch.tensor([1.0, 3.0, 0.5]).view(3, 1, 1, 1)
    ids = torch.tensor([0, 0, 1])
    # sigma_0 = 2: L_0 = (0.4 + 0.2) / 2 / 2 + 2 log 2 ; sigma_1 = 0.5: L_1 = 0.3 / 0.5 + 2 log 0.5
    expected = ((0.15 + 2 * math.log(2)) + (0.6 + 2 * math.log(0.5))) / 2
    assert TURLoss()(pred, target, u, ids).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('num_tasks', [1, 3, 7, 12])
def test_equals_per_task_loop(num_tasks):
    pred, target, u, ids = random_batch(batch=20, num_tasks=num_tasks, seed=num_tasks)
    ours = TURLoss()(pred, target, u, ids)
    ref = reference_tur(pred, target, u, ids)
    assert abs(ours.item() - ref.item()) / abs(ref.item()) < 1e-5


def test_invariant_to_sample_order():
    pred, target, u, ids = random_batch(seed=1)
    perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(3))
    loss = TURLoss()
    assert loss(pred, target, u, ids).item() == pytest.approx(loss(pred[perm], target[perm], u[perm], ids[perm]).item(),
                                                              rel=1e-6)


def test_absent_tasks_contribute_nothing():
    pred, target, u, _ = random_batch(batch=6, seed=2)
    # The same grouping labelled with sparse ids (tasks 1..4 absent) or dense ids gives the same loss.
    sparse = torch.tensor([0, 5, 0, 5, 5, 0])
    dense = torch.tensor([0, 1, 0, 1, 1, 0])
    loss = TURLoss()
    assert loss(pred, target, u, sparse).item() == pytest.approx(loss(pred, target, u, dense).item(), rel=1e-7)
    assert loss.last_task_stats['task_ids'].tolist() == [0, 1]


def test_gradients_reach_prediction_and_uncertainty():
    pred, target, u, ids = random_batch(seed=4)
    pred.requires_grad_(True)
    u.requires_grad_(True)
    TURLoss()(pred, target, u, ids).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert u.grad is not None and u.grad.abs().sum() > 0


def test_loss_weight_scales_the_loss():
    pred, target, u, ids = random_batch(seed=5)
    assert TURLoss(loss_weight=0.5)(pred, target, u, ids).item() == pytest.approx(
        0.5 * TURLoss()(pred, target, u, ids).item(), rel=1e-6)


def test_per_task_stats_match_direct_computation():
    pred, target, u, ids = random_batch(seed=6, num_tasks=3)
    loss = TURLoss()
    total = loss(pred, target, u, ids)
    stats = loss.last_task_stats
    for k, task in enumerate(stats['task_ids'].tolist()):
        mask = ids == task
        assert stats['l1'][k].item() == pytest.approx(F.l1_loss(pred[mask], target[mask]).item(), rel=1e-5)
        assert stats['sigma'][k].item() == pytest.approx(u[mask].mean().item(), rel=1e-5)
    assert stats['loss'].mean().item() == pytest.approx(total.item(), rel=1e-6)


def test_per_task_mean_groups_values():
    tasks, means = per_task_mean(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([2, 0, 2, 0]))
    assert tasks.tolist() == [0, 2]
    assert means.tolist() == [3.5, 2.0]


def test_built_from_registry():
    loss = build_loss({'type': 'TURLoss', 'loss_weight': 1.0})
    assert isinstance(loss, TURLoss)


def test_shape_mismatch_is_reported():
    pred, target, u, ids = random_batch(seed=7)
    with pytest.raises(ValueError) as err:  # the caller's tensors: an invariant of the model, not a user's input
        TURLoss()(pred, target, u[:, :1], ids)
    assert_names(err, 'TURLoss', 'uncertainty (16, 1, 8, 8)', 'target (16, 3, 8, 8)')
    with pytest.raises(ValueError) as err:
        TURLoss()(pred, target, u, ids[:3])
    assert_names(err, 'TURLoss', 'task_ids', '(16,)', '(3,)')


def test_float32_even_from_half_inputs():
    pred, target, u, ids = random_batch(seed=8)
    loss = TURLoss()(pred.bfloat16(), target.bfloat16(), u.bfloat16(), ids)
    assert loss.dtype == torch.float32


@pytest.mark.parametrize('num_tasks', [1, 3, 7, 12])
def test_cumulative_equals_the_authors_per_sample_loop(num_tasks):
    pred, target, u, ids = random_batch(batch=20, num_tasks=num_tasks, seed=10 + num_tasks)
    ours = TURLoss(variant='cumulative')(pred, target, u, ids)
    assert ours.item() == pytest.approx(reference_cumulative(pred, target, u, ids).item(), rel=1e-5)


def test_cumulative_with_absent_tasks_follows_ascending_ids():
    pred, target, u, _ = random_batch(batch=9, seed=11)
    # Ids 1, 2, 5 absent; the present ones (0, 3, 4, 6) come unsorted in the batch.
    ids = torch.tensor([6, 3, 0, 6, 4, 3, 0, 4, 6])
    loss = TURLoss(variant='cumulative')
    assert loss(pred, target, u, ids).item() == pytest.approx(reference_cumulative(pred, target, u, ids).item(),
                                                              rel=1e-5)
    assert loss.last_task_stats['task_ids'].tolist() == [0, 3, 4, 6]


def test_cumulative_weighs_lower_task_ids_more():
    # Two tasks, one sample each, σ = 1: the cumulative loss counts task 0's error twice, task 1's once.
    pred = torch.tensor([0.9, 0.1]).view(2, 1, 1, 1)
    target = torch.zeros(2, 1, 1, 1)
    u = torch.ones(2, 1, 1, 1)
    low_first, high_first = torch.tensor([0, 1]), torch.tensor([1, 0])
    loss = TURLoss(variant='cumulative', eps=0)
    assert loss(pred, target, u, low_first).item() == pytest.approx((0.9 + (0.9 + 0.1) / 2) / 2, rel=1e-6)
    assert loss(pred, target, u, high_first).item() == pytest.approx((0.1 + (0.9 + 0.1) / 2) / 2, rel=1e-6)
    assert TURLoss()(pred, target, u, low_first).item() == pytest.approx((0.9 + 0.1) / 2, rel=1e-6)


def test_variants_agree_on_a_single_task():
    pred, target, u, _ = random_batch(batch=5, seed=12)
    ids = torch.full((5,), 3)
    assert TURLoss(variant='cumulative', eps=0)(pred, target, u, ids).item() == pytest.approx(
        TURLoss()(pred, target, u, ids).item(), rel=1e-6)


def test_eps_defaults_to_the_authors_value_of_each_variant():
    assert TURLoss().eps == 0.0
    assert TURLoss(variant='cumulative').eps == 1e-6
    assert TURLoss(variant='per_task', eps=1e-6).eps == 1e-6
    # eps shifts σ: a near-zero uncertainty gives a finite loss with eps and matches the loop with the same eps.
    pred, target, u, ids = random_batch(batch=8, num_tasks=3, seed=13)
    u = u * 1e-7
    loss = TURLoss(variant='cumulative', eps=1e-3)(pred, target, u, ids)
    assert loss.item() == pytest.approx(reference_cumulative(pred, target, u, ids, eps=1e-3).item(), rel=1e-5)


def test_cumulative_stats_hold_the_running_weighted_term():
    pred, target, u, ids = random_batch(batch=12, num_tasks=3, seed=14)
    loss = TURLoss(variant='cumulative')
    total = loss(pred, target, u, ids)
    stats = loss.last_task_stats
    assert stats['loss'].mean().item() == pytest.approx(total.item(), rel=1e-6)
    assert torch.allclose(stats['loss'], stats['weighted'] + 2 * torch.log(stats['sigma']))
    for k, task in enumerate(stats['task_ids'].tolist()):
        mask = ids == task
        assert stats['l1'][k].item() == pytest.approx(F.l1_loss(pred[mask], target[mask]).item(), rel=1e-5)


@pytest.mark.parametrize('kwargs, names', [({'variant': 'cumulativ'}, ('variant', 'per_task', "'cumulativ'")),
                                            ({'eps': -1.0}, ('eps', '-1.0'))])
def test_bad_arguments_are_named(kwargs, names):
    with pytest.raises(UserError) as err:
        TURLoss(**kwargs)
    assert_names(err, 'TURLoss', *names)


def test_variant_is_built_from_options():
    loss = build_loss({'type': 'TURLoss', 'variant': 'cumulative', 'eps': 1e-6})
    assert loss.variant == 'cumulative' and loss.eps == 1e-6


# ---- pool_size: σ pooled per rank-sized group, as the authors' GPUs pooled it ----

def _grads(loss_fn, pred, target, unc, ids):
    pred, unc = pred.clone().requires_grad_(), unc.clone().requires_grad_()
    loss = loss_fn(pred, target, unc, ids)
    loss.backward()
    return loss.detach(), pred.grad, unc.grad


@pytest.mark.parametrize('variant', ['per_task', 'cumulative'])
def test_pool_size_gives_the_mean_of_the_groups_losses_and_gradients(variant):
    # What W ranks of P samples compute under DDP: each rank's loss on its own samples, gradients averaged.
    torch.manual_seed(0)
    pred, target = torch.rand(12, 3, 5, 5), torch.rand(12, 3, 5, 5)
    unc = torch.rand(12, 3, 5, 5) + 0.1
    ids = torch.tensor([0, 1, 1, 2, 0, 0, 2, 2, 2, 1, 3, 3])  # task 3 in the last group only, task 1 not in the third
    pooled = _grads(TURLoss(variant=variant, num_tasks=4, pool_size=4), pred, target, unc, ids)
    ranks = [_grads(TURLoss(variant=variant, num_tasks=4), pred[k:k + 4], target[k:k + 4], unc[k:k + 4],
                    ids[k:k + 4]) for k in (0, 4, 8)]
    torch.testing.assert_close(pooled[0], torch.stack([r[0] for r in ranks]).mean(), rtol=0, atol=1e-6)
    for i in (1, 2):  # the mean of the ranks' gradients is each rank's gradient / 3 on its own samples
        torch.testing.assert_close(pooled[i], torch.cat([r[i] for r in ranks]) / 3, rtol=1e-5, atol=1e-8)


def test_pool_size_of_the_whole_batch_is_the_unpooled_loss():
    torch.manual_seed(1)
    pred, target, unc = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4) + 0.1
    ids = torch.tensor([0, 1, 2, 0, 1, 1])
    whole, pooled = TURLoss(num_tasks=3), TURLoss(num_tasks=3, pool_size=6)
    assert torch.equal(whole(pred, target, unc, ids), pooled(pred, target, unc, ids))
    for key in whole.task_stats:
        torch.testing.assert_close(whole.task_stats[key], pooled.task_stats[key])


@pytest.mark.parametrize('pool_size, batch', [(0, 4), (True, 4), (3, 4)])
def test_pool_size_below_one_or_not_dividing_the_batch_is_refused(pool_size, batch):
    with pytest.raises(UserError) as err:
        loss = TURLoss(num_tasks=2, pool_size=pool_size)
        x = torch.rand(batch, 3, 4, 4)
        loss(x, x, x + 0.1, torch.zeros(batch, dtype=torch.long))
    assert_names(err, 'TURLoss', 'pool_size', pool_size)


def test_a_batch_that_is_not_a_multiple_of_pool_size_is_an_option_error(tmp_path):
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    with pytest.raises(OptionError) as err:
        parse_options(str(tmp_path), True, ['-opt', f'{repo}/options/train/mio7/SRResNet_TUR.yml', '--force_yml',
                                            'datasets:train:batch_size_per_gpu=6'])
    assert_names(err, 'SRResNet_TUR.yml', "'datasets.train.batch_size_per_gpu' 6", "'train.pixel_opt.pool_size' 8")
