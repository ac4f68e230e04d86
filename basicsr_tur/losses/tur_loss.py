"""Task Uncertainty Regularization (TUR), AAAI 2025, and the per-task figures logged beside it.

For a batch of B samples where sample i belongs to task t(i), with restored ŷ_i, target y_i and a strictly
positive uncertainty map u_i (all C×H×W), for every task t present in the batch:

    σ_t = mean_{i: t(i)=t} u_i                                   (element-wise: a C×H×W map)
    L_t = mean_{i: t(i)=t, all elements} |ŷ_i − y_i| / σ_t  +  2 · log(mean(σ_t))

and the loss is the mean of L_t over the tasks present. This is the value of `uncertainty_loss_softplus` in the
authors' code (Aitical/TUR), computed here without a Python loop over samples or tasks: per-task sums are
`index_add_` reductions over the batch dimension, so the cost is a few element-wise passes whatever the number
of tasks. The plain L1 baseline is basicsr's `L1Loss`, one YAML change away (`pixel_opt: {type: L1Loss}`).
"""
from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


def task_groups(task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group a batch by task: (task ids present (K,), each sample's group index (B,), samples per group (K,))."""
    tasks, inverse = torch.unique(task_ids, sorted=True, return_inverse=True)
    return tasks, inverse, torch.bincount(inverse, minlength=tasks.numel())


def group_mean(values: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values (B, ...) within each group: (K, ...)."""
    sums = values.new_zeros((counts.numel(), *values.shape[1:])).index_add_(0, inverse, values)
    return sums / counts.to(values.dtype).view(-1, *([1] * (values.dim() - 1)))


def per_task_mean(values: torch.Tensor, task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of per-sample values (B, ...) within each task present: (task ids (K,), means (K, ...))."""
    tasks, inverse, counts = task_groups(task_ids)
    return tasks, group_mean(values, inverse, counts)


@LOSS_REGISTRY.register()
class TURLoss(nn.Module):
    """TUR loss: each task's L1 error divided by the task's pooled uncertainty, plus 2·log of its mean.

    Args:
        loss_weight: multiplies the whole loss (basicsr convention). Default: 1.0.

    After each call, `last_task_stats` holds detached per-task figures for logging, without a second forward:
    `task_ids` (K,), `l1` (K,) the plain L1 of each task, `weighted` (K,) its error divided by σ_t,
    `sigma` (K,) the mean of σ_t, and `loss` (K,) the per-task loss L_t.
    """

    needs_uncertainty = True

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.last_task_stats: dict[str, torch.Tensor] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor, uncertainty: torch.Tensor,
                task_ids: torch.Tensor) -> torch.Tensor:
        """Scalar TUR loss of pred/target/uncertainty (B, C, H, W) with task_ids (B,) a LongTensor."""
        if pred.shape != target.shape or pred.shape != uncertainty.shape:
            raise ValueError(f'TURLoss: pred {tuple(pred.shape)}, target {tuple(target.shape)} and uncertainty '
                             f'{tuple(uncertainty.shape)} must have the same shape')
        if task_ids.dim() != 1 or task_ids.numel() != pred.shape[0]:
            raise ValueError(f'TURLoss: task_ids must have shape ({pred.shape[0]},), got {tuple(task_ids.shape)}')
        # The loss is defined in float32 whatever autocast chose for the network.
        pred, target, uncertainty = pred.float(), target.float(), uncertainty.float()
        task_ids = task_ids.to(pred.device)

        tasks, inverse, counts = task_groups(task_ids)
        # σ_t: element-wise mean of the uncertainty maps of task t's samples, (K, C, H, W).
        sigma = group_mean(uncertainty, inverse, counts)
        error = (pred - target).abs()
        weighted_t = group_mean((error / sigma[inverse]).flatten(1).mean(1), inverse, counts)
        sigma_mean_t = sigma.flatten(1).mean(1)
        loss_t = weighted_t + 2 * torch.log(sigma_mean_t)
        loss = loss_t.mean() * self.loss_weight

        with torch.no_grad():
            self.last_task_stats = {'task_ids': tasks, 'l1': group_mean(error.flatten(1).mean(1), inverse, counts),
                                    'weighted': weighted_t.detach(), 'sigma': sigma_mean_t.detach(),
                                    'loss': loss_t.detach()}
        return loss
