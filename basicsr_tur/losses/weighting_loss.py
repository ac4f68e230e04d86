"""Task-weighting baselines for all-in-one restoration: L1 per task, combined by learned, random, dynamic or
adaptive weights (KendallLoss, RLWLoss, DWALoss, FAMOLoss).

Every loss here takes (pred, target, task_ids) with pred/target (B, C, H, W) and task_ids (B,) a LongTensor of ids in
[0, num_tasks), computes each task's plain L1 over the samples of the batch that belong to it (L_t, a mean over its
samples and their elements, in float32 whatever autocast chose) and combines the tasks present. A task absent from
the batch has no term; what happens to its weight is said in each class. The per-task means are `index_add_`
scatters into the fixed num_tasks slots (tur_loss.task_means), absent tasks masked, with no Python loop over samples
or tasks and no host-device synchronisation: every loss here runs a training step without a sync (counted in
tests/test_sync_free_step.py). Counters that decide on the host (RLWLoss's draws, DWALoss's windows) are kept as
Python integers beside the buffers they are saved in, and RLWLoss's draw reaches the device by a non-blocking copy.

After each call `task_stats` holds detached per-task figures over all T tasks for logging, as TURLoss's do:
`present` (T,) bool, `l1` (T,) the L1 of each task (0 if absent), `weight` (T,) the weight its L1 received, and
`loss` (T,) its term (0 if absent); `last_task_stats` gives them for the K tasks present, with `task_ids` (K,).

`num_tasks` is the length of the options' `tasks:` list; TURModel fills it (and `seed` for RLWLoss, from
`manual_seed`) when pixel_opt does not set it.
"""
from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from basicsr_tur.losses.tur_loss import check_task_ids, check_task_range, compact_stats, task_means
from basicsr_tur.utils.dist import sum_over_ranks
from basicsr_tur.utils.errors import UserError


class TaskWeightedLoss(nn.Module):
    """Shared part: argument checks, per-task L1 of a task-mixed batch, the stats; subclasses give `combine`.

    Args:
        num_tasks: the number of tasks of the setting (task ids run from 0 to num_tasks - 1).
        loss_weight: multiplies the whole loss (basicsr convention). Default: 1.0.

    Raises:
        ValueError: num_tasks < 1, inputs whose shapes disagree, or (while `validate_task_ids` is true, the default)
            a task id outside [0, num_tasks).
    """

    needs_task_ids = True
    validate_task_ids = True

    def __init__(self, num_tasks: int, loss_weight: float = 1.0) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise UserError(f'{type(self).__name__}: num_tasks must be an integer >= 1, got {num_tasks!r}')
        self.num_tasks = num_tasks
        self.loss_weight = loss_weight
        self.task_stats: dict[str, torch.Tensor] = {}

    @property
    def last_task_stats(self) -> dict[str, torch.Tensor]:
        return compact_stats(self.task_stats)

    def extra_repr(self) -> str:
        return f'num_tasks={self.num_tasks}, loss_weight={self.loss_weight}'

    def forward(self, pred: torch.Tensor, target: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Scalar loss of pred/target (B, C, H, W) with task_ids (B,) in [0, num_tasks)."""
        name = type(self).__name__
        if pred.shape != target.shape:
            raise ValueError(f'{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same '
                             'shape')
        check_task_ids(name, task_ids, pred.shape[0])
        task_ids = task_ids.to(pred.device, non_blocking=True)
        if self.validate_task_ids:
            check_task_range(name, task_ids, self.num_tasks)
        per_sample = (pred.float() - target.float()).abs().flatten(1).mean(1)  # (B,)
        l1, present = task_means(per_sample, task_ids, self.num_tasks)
        weights, terms, loss = self.combine(present, l1)
        self.task_stats = {'present': present, 'l1': l1.detach(), 'weight': weights.detach(),
                           'loss': terms.detach()}
        return loss * self.loss_weight

    def combine(self, present: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From the tasks present (T,) bool and every task's L1 (T,), 0 where absent: weights (T,), per-task terms
        (T,), 0 where absent, and the scalar loss."""
        raise NotImplementedError

    def register_call_counter(self) -> None:
        """A `calls` buffer (the number of calls so far, saved with the training state) and its host copy, which
        the loss reads to decide (never the buffer: reading a device value is a sync); loading a state sets both."""
        self.register_buffer('calls', torch.zeros((), dtype=torch.long))
        self.host_calls = 0
        self.register_load_state_dict_post_hook(_read_host_calls)

    def count_call(self) -> int:
        """Count a call; return how many calls came before it."""
        before = self.host_calls
        self.host_calls += 1
        self.calls.fill_(self.host_calls)
        return before


def _read_host_calls(module: TaskWeightedLoss, incompatible_keys) -> None:
    """After load_state_dict: the host copy of the `calls` buffer (one read, at load time)."""
    module.host_calls = int(module.calls)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`; to a GPU by a non-blocking copy from pinned memory, which does not wait for it."""
    if device.type == 'cuda':
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@LOSS_REGISTRY.register()
class KendallLoss(TaskWeightedLoss):
    """Homoscedastic uncertainty weighting (Kendall, Gal, Cipolla, "Multi-task learning using uncertainty to weigh
    losses for scene geometry and semantics", CVPR 2018).

    One learned log-variance s_t = log σ_t² per task (`log_vars`, an nn.Parameter of shape (num_tasks,), zero at the
    start, so every weight starts at 1). Over the K tasks present in the batch:

        loss = (1/K) Σ_t [ exp(−s_t) · L_t + s_t ],     weight of task t: exp(−s_t).

    This is the common simplified form: the paper's regression form (its eq. 5/7), 1/(2σ_t²)·L_t + log σ_t, is
    ½·exp(−s_t)·L_t + ½·s_t, i.e. half of the term above, with the same minimiser s_t = log L_t; the paper itself
    trains on s_t rather than σ_t for stability (its sec. 3.2). An absent task has no term: its s_t gets no gradient
    that step and keeps its value. The parameters are trained by the model's optimizer (TURModel adds every
    parameter of the loss, without weight decay) and saved with the training state.
    """

    def __init__(self, num_tasks: int, loss_weight: float = 1.0) -> None:
        super().__init__(num_tasks, loss_weight)
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def combine(self, present: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.log_vars.float()
        weights = torch.exp(-s)
        terms = torch.where(present, weights * l1 + s, torch.zeros_like(s))
        return weights, terms, terms.sum() / present.sum()


@LOSS_REGISTRY.register()
class RLWLoss(TaskWeightedLoss):
    """Random loss weighting (Lin, Ye, Xu, Shi, Zhang, "Reasonable effectiveness of random weighting: a litmus test
    for multi-task learning", TMLR 2022).

    Each call draws λ ~ N(0, I) of shape (num_tasks,) and weighs the K tasks present by the softmax of their draws:

        w_t = exp(λ_t) / Σ_{k present} exp(λ_k),     loss = Σ_{t present} w_t · L_t.

    The weights sum to 1 over the tasks present (an absent task's draw is made and unused, so the draws do not depend
    on which tasks a batch holds). The draws come from a generator seeded with (seed, number of calls so far), never
    the global RNG: `calls` is a buffer saved with the training state, so a resumed run draws what an uninterrupted
    one would. Under gradient accumulation each micro-batch is one call.

    Args:
        seed: seeds the draws (TURModel passes the options' manual_seed when pixel_opt does not set it). Default: 0.
    """

    def __init__(self, num_tasks: int, loss_weight: float = 1.0, seed: int = 0) -> None:
        super().__init__(num_tasks, loss_weight)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f'RLWLoss: seed must be an integer, got {seed!r}')
        self.seed = seed
        self.register_call_counter()

    def draw(self) -> torch.Tensor:
        """The next standard-normal draw, (num_tasks,) on the CPU, from (seed, calls); counts the call."""
        # One generator per call, seeded from the pair, so that the sequence is a function of the call count alone.
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.count_call()) % (2 ** 63))
        return torch.randn(self.num_tasks, generator=generator)

    def combine(self, present: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        draws = to_device(self.draw(), l1.device)
        weights = torch.softmax(draws.masked_fill(~present, -torch.inf), 0)  # 0 for an absent task
        terms = weights * l1
        return weights, terms, terms.sum()


@LOSS_REGISTRY.register()
class DWALoss(TaskWeightedLoss):
    """Dynamic weight average (Liu, Johns, Davison, "End-to-end multi-task learning with attention", CVPR 2019, eq. 7).

    The paper averages each task's loss over an epoch; here over windows of `window` calls (iterations, or
    micro-batches under gradient accumulation), since all-in-one runs count iterations. With Lbar_t(n) task t's mean
    L1 over the n-th window in which it appeared:

        r_t = Lbar_t(n−1) / Lbar_t(n−2),     w_t = T · exp(r_t / τ) / Σ_{k=1..T} exp(r_k / τ),
        loss = (1/K) Σ_{t present} w_t · L_t,

    T = num_tasks. Until two windows have been completed every weight is 1; a task with fewer than two windows of
    history has r_t = 1. An absent task keeps its history (a window in which it never appears does not shift it).
    The window sums and the history are buffers saved with the training state, for an exact resume; in a distributed
    run each call's sums are added over the ranks, so every rank holds the same sums and weights, and the state rank 0
    saves resumes every rank.

    Args:
        window: calls per averaging window (>= 1). Default: 100.
        temperature: τ (> 0); the paper uses 2. Default: 2.0.
    """

    def __init__(self, num_tasks: int, loss_weight: float = 1.0, window: int = 100, temperature: float = 2.0) -> None:
        super().__init__(num_tasks, loss_weight)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise UserError(f'DWALoss: window must be an integer >= 1, got {window!r}')
        if not temperature > 0:
            raise UserError(f'DWALoss: temperature must be > 0, got {temperature!r}')
        self.window = window
        self.temperature = float(temperature)
        self.register_call_counter()
        self.register_buffer('window_sum', torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer('window_count', torch.zeros(num_tasks, dtype=torch.long))
        # history[0] = Lbar_t(n−1), history[1] = Lbar_t(n−2); seen = windows each task has completed (capped at 2).
        self.register_buffer('history', torch.ones(2, num_tasks, dtype=torch.float64))
        self.register_buffer('seen', torch.zeros(num_tasks, dtype=torch.long))

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, window={self.window}, temperature={self.temperature}'

    def all_weights(self) -> torch.Tensor:
        """The current weight of every task, (num_tasks,) float32."""
        if self.host_calls < 2 * self.window:
            return torch.ones(self.num_tasks, device=self.history.device)
        ratio = torch.where(self.seen >= 2, self.history[0] / self.history[1], torch.ones_like(self.history[0]))
        return (self.num_tasks * torch.softmax(ratio / self.temperature, 0)).float()

    def combine(self, present: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = self.all_weights().to(l1.device)
        terms = torch.where(present, weights * l1, torch.zeros_like(l1))
        with torch.no_grad():
            # This call's sums over all ranks (two tiny all_reduces): every rank holds the same window sums, so a
            # training state saved by rank 0 resumes every rank exactly.
            call_sum = torch.where(present, l1.detach(), torch.zeros_like(l1)).to(self.window_sum)
            self.window_sum += sum_over_ranks(call_sum)
            self.window_count += sum_over_ranks(present.to(self.window_count))
            if (self.count_call() + 1) % self.window == 0:
                appeared = self.window_count > 0
                mean = self.window_sum / self.window_count.clamp(min=1)
                shifted = torch.stack([mean, self.history[0]])
                self.history.copy_(torch.where(appeared, shifted, self.history))
                self.seen += appeared.long()
                self.seen.clamp_(max=2)
                self.window_sum.zero_()
                self.window_count.zero_()
        return weights, terms, terms.sum() / present.sum()


@LOSS_REGISTRY.register()
class FAMOLoss(TaskWeightedLoss):
    """Fast adaptive multitask optimization (Liu, Liu, Jin, Stone, Liu, "FAMO: Fast Adaptive Multitask Optimization",
    NeurIPS 2023, Algorithm 1), with the official implementation's defaults (Cranial-XIX/FAMO, `famo.py`).

    Logits ξ (num_tasks,), zero at the start. Over the K tasks present, z = softmax(ξ restricted to them) and

        c = Σ_t z_t / (L_t + ε)  (no gradient),     loss = Σ_t z_t · log(L_t + ε) / c,

    so that the network's gradient is Σ_t (z_t / c) ∇L_t / (L_t + ε): a convex combination of the tasks' relative
    gradients, the paper's scaling. `weight` in the stats is z_t.

    ξ is updated once per call, before the weights are formed, from the decrease of the log losses since the previous
    call: δ_t = log(L_t(prev) + ε) − log(L_t(now) + ε), ξ's gradient is the softmax's Jacobian applied to δ, and ξ
    takes one Adam step (lr `w_lr`, weight decay `gamma`, betas 0.9/0.999, eps 1e-8). The paper and the official code
    evaluate the "after" losses on the same batch with an extra forward after the optimizer step; here they are the
    next call's losses, on the next batch (no extra forward), which the paper names as the cheaper alternative. Only
    tasks present in both calls take part in an update (softmax, δ and the Adam step restricted to them; the Adam
    moments and step count are kept per task); an absent task keeps its ξ. Under gradient accumulation each
    micro-batch is one call. In a distributed run each task's log loss is averaged over the ranks that saw it before
    δ is taken, so every rank keeps the same ξ and previous losses (the weights z are formed over the tasks present on
    each rank). ξ, the Adam moments and the previous log losses are buffers saved with the training state.

    Args:
        w_lr: Adam learning rate of ξ. Default: 0.025 (official).
        gamma: weight decay of ξ. Default: 0.01 (official).
        eps: added to each L_t before the log. Default: 1e-8 (official).
    """

    def __init__(self, num_tasks: int, loss_weight: float = 1.0, w_lr: float = 0.025, gamma: float = 0.01,
                 eps: float = 1e-8) -> None:
        super().__init__(num_tasks, loss_weight)
        if not w_lr > 0 or not gamma >= 0 or not eps > 0:
            raise UserError(f'FAMOLoss: w_lr must be > 0, gamma >= 0 and eps > 0, got {w_lr}, {gamma}, {eps}')
        self.w_lr, self.gamma, self.eps = float(w_lr), float(gamma), float(eps)
        self.register_buffer('logits', torch.zeros(num_tasks))
        self.register_buffer('adam_m', torch.zeros(num_tasks))
        self.register_buffer('adam_v', torch.zeros(num_tasks))
        self.register_buffer('adam_steps', torch.zeros(num_tasks, dtype=torch.long))
        self.register_buffer('prev_log', torch.zeros(num_tasks))
        self.register_buffer('prev_present', torch.zeros(num_tasks, dtype=torch.bool))

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, w_lr={self.w_lr}, gamma={self.gamma}, eps={self.eps}'

    @torch.no_grad()
    def update_logits(self, present: torch.Tensor, log_l: torch.Tensor) -> None:
        """One Adam step on ξ from the log losses (T,) of the tasks present now (T,) and those of the previous call."""
        # Each task's log loss averaged over the ranks that saw it: every rank holds the same previous losses and ξ,
        # so the state rank 0 saves resumes every rank.
        ranks = sum_over_ranks(present.to(self.prev_log))
        current = sum_over_ranks(torch.where(present, log_l, torch.zeros_like(log_l))) / ranks.clamp(min=1)
        now = ranks > 0
        both = now & self.prev_present
        delta = torch.where(both, self.prev_log - current, torch.zeros_like(current))
        self.prev_log.copy_(current)
        self.prev_present.copy_(now)
        # No branch on `both.any()` (a sync): with no task in both calls every update below is masked out by `both`
        # (the softmax over no task is NaN there, and never selected).
        z = torch.softmax(self.logits.masked_fill(~both, -torch.inf), 0)  # 0 outside `both`
        grad = z * (delta - (z * delta).sum()) + self.gamma * self.logits  # Jacobian of softmax times δ, + decay
        self.adam_steps += both.long()
        self.adam_m.copy_(torch.where(both, 0.9 * self.adam_m + 0.1 * grad, self.adam_m))
        self.adam_v.copy_(torch.where(both, 0.999 * self.adam_v + 0.001 * grad * grad, self.adam_v))
        steps = self.adam_steps.clamp(min=1).float()
        m_hat = self.adam_m / (1 - 0.9 ** steps)
        v_hat = self.adam_v / (1 - 0.999 ** steps)
        self.logits.sub_(torch.where(both, self.w_lr * m_hat / (v_hat.sqrt() + 1e-8), torch.zeros_like(grad)))

    def combine(self, present: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_l = torch.log(l1 + self.eps)
        self.update_logits(present.to(self.logits.device), log_l.detach().to(self.logits.device))
        z = torch.softmax(self.logits.to(l1.device).masked_fill(~present, -torch.inf), 0)  # 0 for an absent task
        c = (z / (l1 + self.eps)).sum().detach()
        terms = z * log_l / c
        return z, terms, terms.sum()
