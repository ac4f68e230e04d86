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

Both are computed without a Python loop over samples or tasks: per-task sums are `index_add_` reductions over the
batch dimension and the cumulative terms a `cumsum` over the (sorted) tasks present. The plain L1 baseline is
basicsr's `L1Loss`, one YAML change away (`pixel_opt: {type: L1Loss}`).
"""
from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

VARIANTS = ('per_task', 'cumulative')
# ε of each variant in the authors' code: none in uncertainty_loss_softplus, 1e-6 in airnet_uncertainty_loss.
DEFAULT_EPS = {'per_task': 0.0, 'cumulative': 1e-6}


def task_groups(task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group a batch by task: (task ids present, ascending (K,), each sample's group index (B,), group sizes (K,))."""
    tasks, inverse = torch.unique(task_ids, sorted=True, return_inverse=True)
    return tasks, inverse, torch.bincount(inverse, minlength=tasks.numel())


def group_sum(values: torch.Tensor, inverse: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Sum of per-sample values (B, ...) within each group: (K, ...)."""
    return values.new_zeros((num_groups, *values.shape[1:])).index_add_(0, inverse, values)


def group_mean(values: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values (B, ...) within each group: (K, ...)."""
    sums = group_sum(values, inverse, counts.numel())
    return sums / counts.to(values.dtype).view(-1, *([1] * (values.dim() - 1)))


def check_task_ids(loss: str, task_ids: torch.Tensor, batch: int) -> None:
    """ValueError naming `loss` unless task_ids has shape (batch,), one id per sample."""
    if task_ids.dim() != 1 or task_ids.numel() != batch:
        raise ValueError(f'{loss}: task_ids must have shape ({batch},), got {tuple(task_ids.shape)}')


def per_task_mean(values: torch.Tensor, task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of per-sample values (B, ...) within each task present: (task ids (K,), means (K, ...))."""
    tasks, inverse, counts = task_groups(task_ids)
    return tasks, group_mean(values, inverse, counts)


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

    Raises:
        ValueError: an unknown variant, a negative eps, or inputs whose shapes disagree.

    After each call, `last_task_stats` holds detached per-task figures for logging, without a second forward:
    `task_ids` (K,) ascending, `l1` (K,) the plain L1 of each task, `weighted` (K,) the weighted-error part of its
    term (for cumulative, the running mean over the tasks up to it), `sigma` (K,) the mean of σ_t, and `loss` (K,)
    the term L_t.
    """

    needs_uncertainty = True

    def __init__(self, loss_weight: float = 1.0, variant: str = 'per_task', eps: float | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"TURLoss: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        eps = DEFAULT_EPS[variant] if eps is None else float(eps)
        if eps < 0:
            raise ValueError(f'TURLoss: eps must be >= 0, got {eps}')
        self.loss_weight = loss_weight
        self.variant = variant
        self.eps = eps
        self.last_task_stats: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f'variant={self.variant}, eps={self.eps}, loss_weight={self.loss_weight}'

    def forward(self, pred: torch.Tensor, target: torch.Tensor, uncertainty: torch.Tensor,
                task_ids: torch.Tensor) -> torch.Tensor:
        """Scalar TUR loss of pred/target/uncertainty (B, C, H, W) with task_ids (B,) a LongTensor."""
        if pred.shape != target.shape or pred.shape != uncertainty.shape:
            raise ValueError(f'TURLoss: pred {tuple(pred.shape)}, target {tuple(target.shape)} and uncertainty '
                             f'{tuple(uncertainty.shape)} must have the same shape')
        check_task_ids('TURLoss', task_ids, pred.shape[0])
        # The loss is defined in float32 whatever autocast chose for the network.
        pred, target, uncertainty = pred.float(), target.float(), uncertainty.float()
        task_ids = task_ids.to(pred.device)

        tasks, inverse, counts = task_groups(task_ids)
        # σ_t: element-wise mean of the uncertainty maps of task t's samples, (K, C, H, W).
        sigma = group_mean(uncertainty, inverse, counts)
        if self.eps:
            sigma = sigma + self.eps
        error = (pred - target).abs()
        weighted_i = (error / sigma[inverse]).flatten(1).mean(1)  # w_i, (B,)
        if self.variant == 'per_task':
            weighted_t = group_mean(weighted_i, inverse, counts)
        else:
            # Tasks are sorted ascending, so the running sums over groups are the authors' never-emptied lists.
            weighted_t = group_sum(weighted_i, inverse, tasks.numel()).cumsum(0) / counts.cumsum(0).to(pred.dtype)
        sigma_mean_t = sigma.flatten(1).mean(1)
        loss_t = weighted_t + 2 * torch.log(sigma_mean_t)
        loss = loss_t.mean() * self.loss_weight

        with torch.no_grad():
            self.last_task_stats = {'task_ids': tasks, 'l1': group_mean(error.flatten(1).mean(1), inverse, counts),
                                    'weighted': weighted_t.detach(), 'sigma': sigma_mean_t.detach(),
                                    'loss': loss_t.detach()}
        return loss
