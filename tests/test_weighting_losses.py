"""Task-weighting losses (Kendall, RLW, DWA, FAMO): the weights their formulas give, absent tasks, exact resume."""
import math
from os import path as osp

import pytest
import torch
import yaml
from conftest import assert_names, make_options

from basicsr_tur.losses.weighting_loss import DWALoss, FAMOLoss, KendallLoss, RLWLoss
from basicsr_tur.train import train_pipeline as run_train
from basicsr_tur.utils.errors import UserError
from basicsr_tur.utils.option_checks import check_options
from basicsr_tur.utils.option_file import OptionError


def batch_with_task_l1(l1_by_task: dict[int, float], per_task: int = 2):
    """pred, target (B, 3, 4, 4) and task ids (B,) where every sample of task t has L1 exactly l1_by_task[t]."""
    ids = [t for t in l1_by_task for _ in range(per_task)]
    target = torch.zeros(len(ids), 3, 4, 4)
    pred = torch.stack([torch.full((3, 4, 4), l1_by_task[t]) for t in ids])
    return pred, target, torch.tensor(ids)


def test_kendall_loss_is_the_mean_over_tasks_of_exp_minus_s_times_l1_plus_s():
    loss_fn = KendallLoss(num_tasks=4)
    with torch.no_grad():
        loss_fn.log_vars.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    l1 = {3: 0.4, 0: 0.1, 1: 0.25}
    loss = loss_fn(*batch_with_task_l1(l1))
    expected = sum(math.exp(-s) * l1[t] + s for t, s in ((t, [0.5, -1.0, 0.0, 2.0][t]) for t in l1)) / len(l1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    stats = loss_fn.last_task_stats
    assert stats['task_ids'].tolist() == [0, 1, 3]
    assert stats['weight'].tolist() == pytest.approx([math.exp(-0.5), math.exp(1.0), math.exp(-2.0)], rel=1e-6)
    assert stats['l1'].tolist() == pytest.approx([0.1, 0.25, 0.4], rel=1e-6)


def test_kendall_loss_leaves_an_absent_task_without_gradient():
    loss_fn = KendallLoss(num_tasks=3)
    loss_fn(*batch_with_task_l1({0: 0.2, 2: 0.3})).backward()
    assert loss_fn.log_vars.grad[1].item() == 0
    # d/ds (exp(-s) L + s) / K at s = 0 is (1 - L) / K.
    assert loss_fn.log_vars.grad[[0, 2]].tolist() == pytest.approx([0.8 / 2, 0.7 / 2], rel=1e-6)


def test_weighting_losses_compute_in_float32_under_autocast_inputs():
    pred, target, ids = batch_with_task_l1({0: 0.2, 1: 0.3})
    loss = KendallLoss(num_tasks=2)(pred.bfloat16(), target.bfloat16(), ids)
    assert loss.dtype == torch.float32


def test_rlw_weights_are_the_softmax_of_a_standard_normal_draw_over_the_tasks_present():
    loss_fn, twin = RLWLoss(num_tasks=4, seed=7), RLWLoss(num_tasks=4, seed=7)
    l1 = {0: 0.1, 2: 0.3, 3: 0.2}
    for _ in range(3):
        draw = twin.draw()  # the twin's draws are the loss's: same seed, same number of calls
        loss = loss_fn(*batch_with_task_l1(l1))
        present = [0, 2, 3]
        exps = [math.exp(draw[t].item()) for t in present]
        weights = [e / sum(exps) for e in exps]
        assert loss_fn.last_task_stats['weight'].tolist() == pytest.approx(weights, rel=1e-5)
        assert loss.item() == pytest.approx(sum(w * l1[t] for w, t in zip(weights, present)), rel=1e-5)
    assert int(loss_fn.calls) == 3


def test_rlw_draws_change_every_call_and_do_not_touch_the_global_rng():
    loss_fn = RLWLoss(num_tasks=3, seed=0)
    batch = batch_with_task_l1({0: 0.1, 1: 0.2, 2: 0.3})
    torch.manual_seed(123)
    before = torch.get_rng_state()
    loss_fn(*batch)
    first = loss_fn.last_task_stats['weight']
    loss_fn(*batch)
    assert not torch.allclose(first, loss_fn.last_task_stats['weight'])
    assert torch.equal(torch.get_rng_state(), before)


def test_rlw_with_one_task_present_gives_it_weight_one():
    loss_fn = RLWLoss(num_tasks=3)
    loss = loss_fn(*batch_with_task_l1({1: 0.25}))
    assert loss_fn.last_task_stats['weight'].tolist() == [1.0]
    assert loss.item() == pytest.approx(0.25)


def dwa_reference(calls: list[dict[int, float]], num_tasks: int, window: int, tau: float) -> list[dict[int, float]]:
    """DWA weights of each call, by the formula, with plain loops (per-task window means, history of two)."""
    history: dict[int, list[float]] = {t: [] for t in range(num_tasks)}
    sums, counts, out = [0.0] * num_tasks, [0] * num_tasks, []
    for n, l1 in enumerate(calls):
        if n < 2 * window:
            weights = [1.0] * num_tasks
        else:
            r = [history[t][-1] / history[t][-2] if len(history[t]) >= 2 else 1.0 for t in range(num_tasks)]
            z = sum(math.exp(x / tau) for x in r)
            weights = [num_tasks * math.exp(x / tau) / z for x in r]
        out.append({t: weights[t] for t in l1})
        for t, v in l1.items():
            sums[t] += v
            counts[t] += 1
        if (n + 1) % window == 0:
            for t in range(num_tasks):
                if counts[t]:
                    history[t].append(sums[t] / counts[t])
            sums, counts = [0.0] * num_tasks, [0] * num_tasks
    return out


def test_dwa_weights_follow_the_ratio_of_the_last_two_window_means():
    calls = [{0: 0.5, 1: 0.4, 2: 0.3}, {0: 0.4, 1: 0.4, 2: 0.2}, {0: 0.3, 1: 0.35, 2: 0.25},
             {0: 0.2, 1: 0.3, 2: 0.25}, {0: 0.2, 1: 0.3, 2: 0.1}, {0: 0.1, 1: 0.3, 2: 0.1}, {0: 0.1, 1: 0.1, 2: 0.1}]
    loss_fn = DWALoss(num_tasks=3, window=2, temperature=2.0)
    for l1, want in zip(calls, dwa_reference(calls, 3, 2, 2.0)):
        loss = loss_fn(*batch_with_task_l1(l1))
        assert loss_fn.last_task_stats['weight'].tolist() == pytest.approx([want[t] for t in sorted(l1)], rel=1e-5)
        assert loss.item() == pytest.approx(sum(want[t] * l1[t] for t in l1) / len(l1), rel=1e-5)
    assert any(abs(w - 1) > 1e-3 for w in loss_fn.last_task_stats['weight'].tolist())  # the weights did move


def test_dwa_keeps_the_history_of_a_task_absent_for_a_whole_window():
    calls = [{0: 0.5, 1: 0.4}, {0: 0.4, 1: 0.2}, {0: 0.3}, {0: 0.2}, {0: 0.2, 1: 0.3}, {0: 0.2, 1: 0.1}]
    loss_fn = DWALoss(num_tasks=2, window=1)
    for l1, want in zip(calls, dwa_reference(calls, 2, 1, 2.0)):
        loss_fn(*batch_with_task_l1(l1))
        assert loss_fn.last_task_stats['weight'].tolist() == pytest.approx([want[t] for t in sorted(l1)], rel=1e-5)
    # Task 1 was absent from calls 2 and 3: its last two means are still those of calls 4 and 1, then 5 and 4.
    assert loss_fn.history[:, 1].tolist() == pytest.approx([0.1, 0.3])


def test_famo_follows_the_official_update_of_the_logits_and_its_loss():
    calls = [{0: 0.5, 1: 0.4, 2: 0.3}, {0: 0.4, 1: 0.39, 2: 0.2}, {0: 0.3, 1: 0.38, 2: 0.1}, {0: 0.2, 1: 0.37, 2: 0.1}]
    loss_fn = FAMOLoss(num_tasks=3)
    # The official FAMO (Cranial-XIX/FAMO famo.py): Adam with weight decay on w, fed the softmax's vector-Jacobian
    # product with the decrease of the log losses; here the "after" losses are the next call's.
    w = torch.zeros(3, requires_grad=True)
    adam = torch.optim.Adam([w], lr=0.025, weight_decay=0.01)
    prev = None
    for l1 in calls:
        now = torch.tensor([l1[t] for t in range(3)]).log()
        if prev is not None:
            w.grad = torch.autograd.grad(torch.softmax(w, 0), w, grad_outputs=prev - now)[0]
            adam.step()
        prev = now
        loss = loss_fn(*batch_with_task_l1(l1))
        z = torch.softmax(w.detach(), 0)
        values = torch.tensor([l1[t] for t in range(3)])
        c = (z / values).sum()
        assert loss_fn.logits.tolist() == pytest.approx(w.detach().tolist(), abs=1e-6)
        assert loss_fn.last_task_stats['weight'].tolist() == pytest.approx(z.tolist(), rel=1e-5)
        assert loss.item() == pytest.approx((z * values.log() / c).sum().item(), rel=1e-5)
    assert loss_fn.logits.abs().max() > 1e-3  # the weights did move


def test_famo_keeps_the_logit_of_an_absent_task():
    loss_fn = FAMOLoss(num_tasks=3)
    loss_fn(*batch_with_task_l1({0: 0.5, 1: 0.4, 2: 0.3}))
    loss_fn(*batch_with_task_l1({0: 0.3, 2: 0.1}))  # task 1 absent: only 0 and 2 are updated
    assert loss_fn.logits[1].item() == 0 and loss_fn.logits[0].item() != 0
    loss_fn(*batch_with_task_l1({0: 0.3, 1: 0.2}))  # task 1 was absent from the previous call: no δ for it
    assert loss_fn.logits[1].item() == 0 and int(loss_fn.adam_steps[1]) == 0
    assert loss_fn.last_task_stats['weight'].sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize('loss_cls', [KendallLoss, RLWLoss, DWALoss, FAMOLoss])
def test_a_task_id_beyond_num_tasks_is_one_line_naming_it(loss_cls):
    with pytest.raises(UserError) as err:
        loss_cls(num_tasks=2)(*batch_with_task_l1({0: 0.1, 2: 0.2}))
    assert_names(err, loss_cls.__name__, 'task id 2', 'num_tasks 2')


@pytest.mark.parametrize('pixel_opt', [{'type': 'KendallLoss'}, {'type': 'RLWLoss'}, {'type': 'DWALoss', 'window': 5},
                                       {'type': 'FAMOLoss', 'w_lr': 0.01}])
def test_options_accept_a_weighting_loss_taking_num_tasks_from_the_tasks_list(tmp_path, clean_root, paired_root,
                                                                              pixel_opt):
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    opt = yaml.safe_load(open(path))
    opt['train']['pixel_opt'] = dict(pixel_opt)
    check_options(opt, path, is_train=True)
    assert opt['train']['pixel_opt'] == pixel_opt  # nothing written into the user's options


@pytest.mark.parametrize('pixel_opt, message', [
    ({'type': 'DWALoss', 'windw': 5}, "'train.pixel_opt.windw'"),
    ({'type': 'RLWLoss', 'seed': 'abc'}, "'train.pixel_opt.seed'"),
    ({'type': 'DWALoss', 'temperature': 0}, 'temperature must be > 0'),
    ({'type': 'KendallLoss', 'num_tasks': 0}, 'num_tasks must be an integer >= 1'),
    ({'type': 'FAMOLoss', 'w_lr': -1}, 'w_lr must be > 0'),
], ids=['typo', 'type', 'temperature', 'num_tasks', 'w_lr'])
def test_options_refuse_a_bad_weighting_loss_argument_in_one_line(tmp_path, clean_root, paired_root, pixel_opt,
                                                                  message):
    path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    opt = yaml.safe_load(open(path))
    opt['train']['pixel_opt'] = pixel_opt
    with pytest.raises(OptionError) as err:
        check_options(opt, path, is_train=True)
    assert message in str(err.value) and str(err.value).count('\n') == 0


def run(root, opt_path, *force):
    run_train(str(root), ['-opt', opt_path, '--force_yml', 'logger:save_checkpoint_freq=3', 'val:val_freq=100',
                          *force])
    return osp.join(str(root), 'experiments', 'tiny')


@pytest.mark.parametrize('pixel_opt', ['{type: KendallLoss}', '{type: RLWLoss}', '{type: DWALoss, window: 2}',
                                       '{type: FAMOLoss}'])
def test_a_weighting_loss_trains_logs_its_weights_and_resumes_exactly(tmp_path, clean_root, paired_root, pixel_opt,
                                                                     log_lines):
    check_trains_logs_and_resumes(tmp_path, clean_root, paired_root, pixel_opt)
    assert any('weight/noise' in line and 'l1/noise' in line for line in log_lines)


@pytest.mark.parametrize('before, after', [('{type: L1Loss}', '{type: KendallLoss}'),
                                           ('{type: KendallLoss}', '{type: FAMOLoss}')])
def test_resuming_across_a_loss_with_learned_parameters_is_one_line_naming_both(tmp_path, clean_root, paired_root,
                                                                                before, after):
    opt_path = make_options(tmp_path, clean_root, paired_root, loss='L1Loss')
    run(tmp_path, opt_path, 'train:total_iter=3', f'train:pixel_opt={before}')
    with pytest.raises(UserError) as err:
        run(tmp_path, opt_path, 'train:total_iter=6', f'train:pixel_opt={after}', '--auto_resume')
    assert_names(err, '3.state', after[7:-1], 'KendallLoss' if 'Kendall' in before else
                 'a loss without learned parameters')


def check_trains_logs_and_resumes(tmp_path, clean_root, paired_root, pixel_opt):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    runs = {}
    for root in (a, b):
        opt_path = make_options(root, clean_root, paired_root, loss='L1Loss')
        runs[root] = opt_path
    exp_a = run(a, runs[a], 'train:total_iter=9', f'train:pixel_opt={pixel_opt}')
    run(b, runs[b], 'train:total_iter=3', f'train:pixel_opt={pixel_opt}')
    exp_b = run(b, runs[b], 'train:total_iter=9', f'train:pixel_opt={pixel_opt}', '--auto_resume')
    state_a = torch.load(osp.join(exp_a, 'training_states', '9.state'), weights_only=True)
    state_b = torch.load(osp.join(exp_b, 'training_states', '9.state'), weights_only=True)
    for key, value in state_a['loss_state']['state'].items():
        assert torch.equal(value, state_b['loss_state']['state'][key]), key
    weights_a = torch.load(osp.join(exp_a, 'models', 'net_g_9.pth'), weights_only=True)['params']
    weights_b = torch.load(osp.join(exp_b, 'models', 'net_g_9.pth'), weights_only=True)['params']
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    if 'Kendall' in pixel_opt:  # trained by the optimizer: it moved, and its Adam state is saved
        assert state_a['loss_state']['state']['log_vars'].abs().min() > 0
        assert len(state_a['optimizers'][0]['param_groups']) == 2
