"""Task Uncertainty Regularization (TUR), AAAI 2025, in the two forms the authors trained with, and its task figures.

For a batch of B samples where sample i belongs to task t(i), with restored ŷ_i, target y_i and a strictly positive
uncertainty map u_i (all C×H×W), every task t present in the batch pools its uncertainty element-wise:

    σ_t = mean_{i: t(i)=t} u_i + ε                                   (a C×H×W map)
    w_i = mean over the elements of |ŷ_i − y_i| / σ_{t(i)}            (sample i's error, weighted by its task's σ)

`variant: per_task` (the default) is the formula the paper states, each task's error over its own uncertainty:

    L_t = mean_{i: t(i)=t} w_i  +  2 · log(mean(σ_t)),      loss = mean of L_t over the tasks present,

which is also what the authors' seven-task code computes (Aitical/TUR `basicsr/losses/uncertainty_loss.py`,
`uncertainty_loss_softplus`, called by `IRModel_uncertainty` for SRResNet and Uformer; ε = 0 there).

`variant: cumulative` is what the authors' three- and five-task code computes (`basicsr/losses/
airnet_uncertainty_loss.py`, `airnet_uncertainty_loss` and `airnet_uncertainty_loss_5_types`, called by their AirNet,
PromptIR and TransWeather models, ε = 1e-6). Its lists of weighted samples are never emptied between tasks, so with
the tasks present sorted by id, t_1 < t_2 < ... < t_K, the term of the k-th task averages the samples of *every task up
to k*, each still weighted by its own task's σ:

    L_k = mean_{i: t(i) ≤ t_k} w_i  +  2 · log(mean(σ_{t_k})),    loss = mean of L_k over k = 1..K.

A sample of the j-th task present thus enters K − j + 1 terms: tasks with lower ids weigh more, and the order of the
`tasks:` list matters. This departs from the paper's formula; it is offered because the published rows of the
three- and five-task settings (AirNet, PromptIR, TransWeather + TUR) were trained with it.

`pool_size: P` pools within groups of P consecutive samples of the batch and averages the groups' losses: the
groups the training sampler deals to P-sample ranks (data/samplers.py: a global batch is the ranks' batches one after
the other), so one process with a batch of W·P computes the gradient that W ranks of P compute under DDP (which
averages the ranks' gradients), and ranks compose with it. The authors pooled per GPU: MiOIR's mio7 recipes on 2 GPUs
(SRResNet 2 x 8, Uformer 2 x 4), PromptIR on 4 x 8. Without it σ is pooled over the whole batch a process sees.

Both are computed without a Python loop over samples or tasks and without a host-device synchronisation: per-task
sums are `index_add_` scatters over the batch dimension into the setting's fixed number of tasks (`num_tasks`, the
length of the options' `tasks:` list), absent tasks masked out of the mean, and the cumulative terms a `cumsum` over
the task ids (an absent task adds nothing to the running sums). The plain L1 baseline is
basicsr's `L1Loss`, one YAML change away (`pixel_opt: {type: L1Loss}`).
"""
from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from basicsr_tur.utils.errors import UserError

VARIANTS = ('per_task', 'cumulative')
# ε of each variant in the authors' code: none in uncertainty_loss_softplus, 1e-6 in airnet_uncertainty_loss.
DEFAULT_EPS = {'per_task': 0.0, 'cumulative': 1e-6}


def task_sums(values: torch.Tensor, task_ids: torch.Tensor, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task sums of per-sample values (B, ...) over a fixed task count: (sums (T, ...), counts (T,) float32).

    A scatter (`index_add_`) over T = num_tasks slots, so that the output shapes do not depend on which tasks a batch
    holds: no `unique`/`bincount`, no host-device synchronisation. An absent task's sum and count are 0.
    """
    counts = torch.zeros(num_tasks, dtype=torch.float32, device=values.device)
    counts.index_add_(0, task_ids, torch.ones_like(task_ids, dtype=torch.float32))
    return values.new_zeros((num_tasks, *values.shape[1:])).index_add_(0, task_ids, values), counts


def task_means(values: torch.Tensor, task_ids: torch.Tensor, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task means of per-sample values (B, ...): (means (T, ...), 0 for an absent task; present (T,) bool)."""
    sums, counts = task_sums(values, task_ids, num_tasks)
    return sums / counts.clamp(min=1).to(values.dtype).view(-1, *([1] * (values.dim() - 1))), counts > 0


def compact_stats(stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-task figures over all T tasks with their `present` mask, as the K tasks present: `task_ids` (K,)
    ascending and each figure (K,). Boolean indexing: a host-device sync (for tests and one-off reads, not steps)."""
    if not stats:
        return {}
    task_ids = stats['present'].nonzero().flatten()
    return {'task_ids': task_ids, **{k: v[task_ids] for k, v in stats.items() if k != 'present'}}


def check_task_ids(loss: str, task_ids: torch.Tensor, batch: int) -> None:
    """ValueError naming `loss` unless task_ids has shape (batch,), one id per sample."""
    if task_ids.dim() != 1 or task_ids.numel() != batch:
        raise ValueError(f'{loss}: task_ids must have shape ({batch},), got {tuple(task_ids.shape)}')


def check_task_range(loss: str, task_ids: torch.Tensor, num_tasks: int) -> None:
    """UserError naming `loss` and the id when a task id lies outside [0, num_tasks). Reads two values on the host
    (a sync on a GPU): TURModel checks the loader's ids on the host instead and turns this off (validate_task_ids)."""
    low, high = int(task_ids.min()), int(task_ids.max())
    if low < 0 or high >= num_tasks:
        raise UserError(f'{loss}: task id {low if low < 0 else high} is outside 0..{num_tasks - 1} '
                         f"(num_tasks {num_tasks}: the options' tasks list is shorter than the data's)")


def per_task_mean(values: torch.Tensor, task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of per-sample values (B, ...) within each task present: (task ids (K,), means (K, ...)). Data-dependent
    shapes (a sync on a GPU): the training step uses task_means over the fixed task count instead."""
    means, present = task_means(values, task_ids, int(task_ids.max()) + 1)
    tasks = present.nonzero().flatten()
    return tasks, means[tasks]


@LOSS_REGISTRY.register()
class TURLoss(nn.Module):
    """TUR loss: each task's L1 error divided by the task's pooled uncertainty, plus 2·log of its mean.

    Args:
        loss_weight: multiplies the whole loss (basicsr convention). Default: 1.0.
        variant: 'per_task' (the paper's formula and the authors' seven-task code) or 'cumulative' (the authors'
            three/five-task code, where task k's term averages the samples of every task up to k); see the module
            docstring. Default: 'per_task'.
        eps: added to the pooled uncertainty σ_t before it divides and enters the log. Default: None, the authors'
            value for the variant (0 for per_task, 1e-6 for cumulative).
        num_tasks: the setting's number of tasks T (ids in [0, T)); TURModel fills it from the `tasks:` list. Default:
            None, read from the batch as max id + 1 (a host-device sync per call: for direct calls only).
        pool_size: pool σ (and group tasks) within groups of this many consecutive samples, the loss the mean of the
            groups' (see the module docstring: the authors' per-GPU pooling on one process). The batch must be a
            multiple of it. Default: None, the whole batch.

    Raises:
        UserError: an unknown variant, a negative eps, num_tasks < 1, pool_size < 1, a batch that is not a multiple of
            pool_size, inputs whose shapes disagree, or (while
            `validate_task_ids` is true, the default) a task id outside [0, num_tasks).

    After each call, `task_stats` holds detached per-task figures over all T tasks, for logging without a second
    forward or a sync: `present` (T,) bool, `l1` (T,) the plain L1 of each task, `weighted` (T,) the weighted-error
    part of its term (for cumulative, the running mean over the tasks up to it), `sigma` (T,) the mean of σ_t, and
    `loss` (T,) the term L_t (0 for an absent task); with pool_size, `weighted`, `sigma` and `loss` are the means over
    the groups holding the task. `last_task_stats` gives the same for the K tasks present, with
    `task_ids` (K,) ascending (compact_stats: a sync).
    """

    needs_uncertainty = True
    validate_task_ids = True

    def __init__(self, loss_weight: float = 1.0, variant: str = 'per_task', eps: float | None = None,
                 num_tasks: int | None = None, pool_size: int | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise UserError(f"TURLoss: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        eps = DEFAULT_EPS[variant] if eps is None else float(eps)
        if eps < 0:
            raise UserError(f'TURLoss: eps must be >= 0, got {eps}')
        if num_tasks is not None and (isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1):
            raise UserError(f'TURLoss: num_tasks must be an integer >= 1, got {num_tasks!r}')
        if pool_size is not None and (isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1):
            raise UserError(f'TURLoss: pool_size must be an integer >= 1, got {pool_size!r}')
        self.loss_weight = loss_weight
        self.variant = variant
        self.eps = eps
        self.num_tasks = num_tasks
        self.pool_size = pool_size
        self.task_stats: dict[str, torch.Tensor] = {}

    @property
    def last_task_stats(self) -> dict[str, torch.Tensor]:
        return compact_stats(self.task_stats)

    def extra_repr(self) -> str:
        return (f'variant={self.variant}, eps={self.eps}, loss_weight={self.loss_weight}, num_tasks={self.num_tasks}, '
                f'pool_size={self.pool_size}')

    def forward(self, pred: torch.Tensor, target: torch.Tensor, uncertainty: torch.Tensor,
                task_ids: torch.Tensor) -> torch.Tensor:
        """Scalar TUR loss of pred/target/uncertainty (B, C, H, W) with task_ids (B,) a LongTensor."""
        if pred.shape != target.shape or pred.shape != uncertainty.shape:
            raise ValueError(f'TURLoss: pred {tuple(pred.shape)}, target {tuple(target.shape)} and uncertainty '
                             f'{tuple(uncertainty.shape)} must have the same shape')
        check_task_ids('TURLoss', task_ids, pred.shape[0])
        # The loss is defined in float32 whatever autocast chose for the network.
        pred, target, uncertainty = pred.float(), target.float(), uncertainty.float()
        task_ids = task_ids.to(pred.device, non_blocking=True)
        num_tasks = self.num_tasks or int(task_ids.max()) + 1
        if self.validate_task_ids:
            check_task_range('TURLoss', task_ids, num_tasks)

        batch = pred.shape[0]
        pool = self.pool_size or batch
        if batch % pool:
            raise UserError(f'TURLoss: a batch of {batch} is not a multiple of pool_size {pool}')
        groups = batch // pool
        # Slot g·T + t holds task t of group g (one group without pool_size): every figure below is per slot.
        slots = task_ids if groups == 1 else \
            torch.arange(batch, device=pred.device) // pool * num_tasks + task_ids

        # σ_t: element-wise mean of the uncertainty maps of task t's samples, (G·T, C, H, W); an absent task's σ is
        # set to 1 so that its (masked) division and log stay finite, in the forward and the backward.
        sigma_sum, counts = task_sums(uncertainty, slots, groups * num_tasks)
        present = counts > 0
        per_task_count = counts.clamp(min=1)
        sigma = sigma_sum / per_task_count.view(-1, 1, 1, 1)
        if self.eps:
            sigma = sigma + self.eps
        sigma = torch.where(present.view(-1, 1, 1, 1), sigma, torch.ones_like(sigma))
        error = (pred - target).abs()
        weighted_i = (error / sigma[slots]).flatten(1).mean(1)  # w_i, (B,)
        weighted_sum = torch.zeros_like(counts).index_add_(0, slots, weighted_i)
        if self.variant == 'per_task':
            weighted_t = weighted_sum / per_task_count
        else:
            # Running sums over ascending ids within each group are the authors' never-emptied lists (absent tasks
            # add nothing).
            weighted_t = (weighted_sum.view(groups, num_tasks).cumsum(1)
                          / counts.view(groups, num_tasks).cumsum(1).clamp(min=1)).flatten()
        sigma_mean_t = sigma.flatten(1).mean(1)
        loss_t = torch.where(present, weighted_t + 2 * torch.log(sigma_mean_t), torch.zeros_like(weighted_t))
        by_group = present.view(groups, num_tasks)
        loss = (loss_t.view(groups, num_tasks).sum(1) / by_group.sum(1)).mean() * self.loss_weight

        with torch.no_grad():
            l1_sum, task_counts = task_sums(error.flatten(1).mean(1), task_ids, num_tasks)
            holding = by_group.sum(0).clamp(min=1)  # groups holding each task

            def over_groups(values: torch.Tensor) -> torch.Tensor:
                return values.detach().view(groups, num_tasks).sum(0) / holding

            self.task_stats = {'present': by_group.any(0), 'l1': l1_sum / task_counts.clamp(min=1),
                               'weighted': over_groups(torch.where(present, weighted_t, torch.zeros_like(weighted_t))),
                               'sigma': over_groups(torch.where(present, sigma_mean_t,
                                                                torch.zeros_like(sigma_mean_t))),
                               'loss': over_groups(loss_t)}
        return loss
