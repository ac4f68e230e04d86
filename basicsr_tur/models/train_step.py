"""One training iteration without a host-device synchronisation: autocast, loss scaling, accumulation, the
non-finite guard, the optimizer, EMA and the figures to log, which stay on the device until the logger reads them.

    step = TrainStep(net, optimizer, ...)
    step.run(forward, context, update=True)   # forward() -> (loss, figures); every iteration
    log = step.read_log()                     # every print_freq iterations: one device-to-host transfer

Nothing in `run` reads a device value on the host (tests/test_sync_free_step.py counts them on the CPU), so the host
queues the next step while the device computes this one:

- The guard takes one flag per step on the device: the loss and the gradients' norms (`torch._foreach_norm`, or the
  total norm that gradient clipping computes anyway) must be finite. A fused optimizer (`fused=True`: TURModel's
  default for Adam and AdamW; SGD and Adagrad on request) reads that flag as its `found_inf` and skips the update on
  the device, step count included. Another optimizer cannot skip on the device: its step reads the flag
  (one sync per step, the only one).
- "max_nonfinite steps in a row stop the run" is checked when the log is read: the run stops at the first read after
  the streak reached the limit, at most print_freq - 1 iterations late; those iterations change no weight (each is
  skipped as well), and the warning names every skipped iteration with its tasks and files, as before.
- EMA is a few `torch._foreach_*` kernels over all parameters and buffers (BatchNorm statistics follow the network,
  which basicsr's per-parameter EMA never did); a skipped step leaves the EMA copy untouched, by a device-side weight.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from basicsr.utils import get_root_logger

from basicsr_tur.utils.dist import sum_over_ranks
from basicsr_tur.utils.errors import RunError
from basicsr_tur.utils.precision import warn_slow_precision


class NonFiniteLossError(RunError):
    """Raised after too many consecutive steps with a non-finite loss or gradient."""


class TaskFigures(NamedTuple):
    """Per-task figures of one batch: `present` (T,) bool and {name: (T,) values}, read only where present."""

    present: torch.Tensor
    values: dict[str, torch.Tensor]


@dataclass
class StepContext:
    """What the host knows of a batch, kept to name the culprits of a skipped step when the log is read."""

    iteration: int
    tasks: Sequence[str] = ()
    files: Sequence[str] = ()


# Steps itemised in the warnings of one log read at most (train.py reads every print_freq iterations).
PENDING_LIMIT = 10_000


@dataclass
class _Pending:
    """The steps run since the last read: per step whether it counts as non-finite and its mean loss (device), and
    its context (host)."""

    counted: list[torch.Tensor] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    contexts: list[StepContext] = field(default_factory=list)
    dropped: int = 0  # the oldest steps left out once PENDING_LIMIT was reached without a read

    def add(self, counted: torch.Tensor, losses: torch.Tensor, context: StepContext) -> None:
        """Keep a step; past PENDING_LIMIT steps without a read, the oldest is dropped (memory stays bounded when a
        hand-driven loop never reads the log; the streak and the skip count stay exact on the device)."""
        self.counted.append(counted)
        self.losses.append(losses)
        self.contexts.append(context)
        if len(self.counted) > PENDING_LIMIT:
            del self.counted[0], self.losses[0], self.contexts[0]
            self.dropped += 1


class TrainStep:
    """Runs forward/backward/update of one (micro-)batch and keeps the figures to log on the device.

    Args:
        net: the network being trained (possibly wrapped in DDP or torch.compile).
        optimizer: its optimizer; fused (`defaults['fused']`) to skip a non-finite step without a sync.
        task_names: the setting's tasks, to name per-task figures (`l1/<task>`).
        amp_dtype: autocast dtype (torch.bfloat16, torch.float16) or None for float32.
        accumulate_steps: micro-batches per optimizer step (each loss divided by it).
        grad_clip: max total gradient norm, or None.
        max_nonfinite: consecutive non-finite steps that stop the run (NonFiniteLossError, at the next read_log).
        extra_params: trainable parameters outside `net` (a loss's own), averaged over ranks by hand.
        ema: (ema network, decay) or None.
        world_size: processes of a distributed run.
    """

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, task_names: Sequence[str], *,
                 amp_dtype: torch.dtype | None = None, accumulate_steps: int = 1, grad_clip: float | None = None,
                 max_nonfinite: int = 5, extra_params: Sequence[torch.nn.Parameter] = (),
                 ema: tuple[torch.nn.Module, float] | None = None, world_size: int = 1) -> None:
        self.net, self.optimizer, self.task_names = net, optimizer, list(task_names)
        self.amp_dtype, self.accumulate_steps, self.grad_clip = amp_dtype, accumulate_steps, grad_clip
        self.max_nonfinite, self.extra_params, self.world_size = max_nonfinite, list(extra_params), world_size
        self.device = next(net.parameters()).device
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype == torch.float16)
        warn_slow_precision(amp_dtype, self.device, 'train.mixed_precision: fp16')
        self.fused = bool(optimizer.defaults.get('fused')) and getattr(optimizer, '_step_supports_amp_scaling', False)
        self.net_params = [p for p in net.parameters() if p.requires_grad]
        self.ema_pairs, self.ema_decay = (ema_pairs(net, ema[0]), ema[1]) if ema is not None else (None, 0.0)
        self._micro: list[torch.Tensor] = []
        zero = torch.zeros((), dtype=torch.long, device=self.device)
        # On the device: the current non-finite streak, its maximum since the last read, and all skipped steps.
        self.streak, self.max_streak, self.skipped = zero.clone(), zero.clone(), zero.clone()
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, torch.Tensor | int] = {}
        self._pending = _Pending()
        self._host_streak = 0  # the streak at the last read

    def run(self, forward: Callable[[], tuple[torch.Tensor, dict]], context: StepContext, update: bool = True
            ) -> None:
        """Forward and backward one micro-batch; with `update`, the guarded optimizer step and EMA.

        forward() returns (loss to minimise, figures): 0-d tensors by name (`l_pix` ...) and, under `tasks`, a
        TaskFigures. Gradients add up over the micro-batches of an iteration; DDP syncs them on the last one only.
        """
        if not self._micro:
            self.optimizer.zero_grad(set_to_none=True)
        no_sync = getattr(self.net, 'no_sync', None) if not update else None
        with no_sync() if no_sync else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                loss, figures = forward()
            self.scaler.scale(loss / self.accumulate_steps).backward()
        self._micro.append(loss.detach().float())
        self._add_figures(figures)
        if update:
            self._update(context)

    def _update(self, context: StepContext) -> None:
        """Guard, clip, step, EMA: the end of an iteration, without reading the device."""
        if self.extra_params and self.world_size > 1:
            # The loss is not inside DistributedDataParallel: average its gradients over the ranks by hand.
            for param in self.extra_params:
                if param.grad is not None:
                    sum_over_ranks(param.grad).div_(self.world_size)
        losses, self._micro = torch.stack(self._micro), []
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip:  # the network's gradients only, as before (a loss's own parameters are not clipped)
            norm = torch.nn.utils.clip_grad_norm_(self.net_params, float(self.grad_clip), foreach=True)
        else:
            norm = total_norm(self.net_params)
        if self.extra_params:
            norm = norm + total_norm(self.extra_params)  # non-finite when either is
        bad_loss = ~torch.isfinite(losses).all()
        skip = bad_loss | ~torch.isfinite(norm)
        # Under fp16, overflowing gradients are the scaler's business (it lowers the scale); a non-finite loss is ours.
        counted = bad_loss if self.scaler.is_enabled() else skip
        if self.fused:
            self.optimizer.grad_scale, self.optimizer.found_inf = None, skip.float()
            self.optimizer.step()
        elif not skip.item():  # the one sync of an optimizer that cannot skip on the device
            self.optimizer.step()
        self.scaler.update()
        if self.ema_pairs is not None:
            update_ema(self.ema_pairs, self.ema_decay, skip)
        self.streak = torch.where(counted, self.streak + 1, torch.zeros_like(self.streak))
        self.max_streak = torch.maximum(self.max_streak, self.streak)
        self.skipped += counted.long()
        self._pending.add(counted, losses, context)

    def _add_figures(self, figures: dict) -> None:
        """Add a micro-batch's figures to the device-side sums (per-task ones where the task is present)."""
        for key, value in figures.items():
            if isinstance(value, TaskFigures):
                for name, values in value.values.items():
                    masked = torch.where(value.present, values.detach().double(), 0.0)
                    self._sums[name] = self._sums[name] + masked if name in self._sums else masked
                    count = value.present.long()
                    self._counts[name] = self._counts[name] + count if name in self._counts else count
            else:
                value = value.detach().double()
                self._sums[key] = self._sums[key] + value if key in self._sums else value
                self._counts[key] = self._counts.get(key, 0) + 1

    def read_log(self, raise_on_streak: bool = True) -> OrderedDict:
        """Mean of each figure since the last read (per-task figures averaged over the batches holding the task), in
        one device-to-host transfer; warns of each step skipped since the last read; then NonFiniteLossError when a
        non-finite streak reached max_nonfinite (unless raise_on_streak is false)."""
        pending, self._pending = self._pending, _Pending()
        keys = sorted(self._sums)
        # One transfer: every sum, the per-task counts, the streak, and the skip flag and loss of each pending step.
        parts = [self._sums[k].reshape(-1) for k in keys]
        parts += [self._counts[k].double() for k in keys if isinstance(self._counts[k], torch.Tensor)]
        parts += [torch.stack([self.streak, self.max_streak]).double()]
        if pending.counted:  # every step has the same number of micro-batches
            parts += [torch.stack(pending.counted).double(), torch.stack(pending.losses).double().flatten()]
        host = iter(torch.cat(parts).cpu().tolist())
        sums = {k: [next(host) for _ in range(self._sums[k].numel())] for k in keys}
        counts = {k: [next(host) for _ in range(c.numel())] if isinstance(c, torch.Tensor) else [c]
                  for k, c in zip(keys, map(self._counts.get, keys))}
        streak_before_read = self._host_streak
        streak, max_streak = int(next(host)), int(next(host))
        counted = [bool(next(host)) for _ in pending.counted]
        losses = [[next(host) for _ in step_losses] for step_losses in pending.losses]
        log = OrderedDict()
        for key in keys:
            if isinstance(self._counts[key], torch.Tensor):
                for task, value, count in zip(self.task_names_for(len(sums[key])), sums[key], counts[key]):
                    if count > 0:
                        log[f'{key}/{task}'] = value / count
            else:
                log[key] = sums[key][0] / counts[key][0]
        self._sums.clear()
        self._counts.clear()
        self._host_streak = streak
        self.max_streak = self.streak.clone()
        if pending.dropped:
            get_root_logger().warning(f'the {pending.dropped} steps before iter {pending.contexts[0].iteration} are '
                                      f'not itemised below (the log was not read for over {PENDING_LIMIT} steps); '
                                      f'{self.skipped_steps} non-finite steps skipped in all so far')
        last = self._warn_skipped(pending.contexts, counted, losses, 0 if pending.dropped else streak_before_read)
        if raise_on_streak and max_streak >= self.max_nonfinite:
            tasks, files = _describe(last) if last else ('?', '?')
            raise NonFiniteLossError(f'iter {last.iteration if last else "?"}: {max_streak} consecutive non-finite '
                                     f'steps (last batch tasks: {tasks}; files: {files}); lower the learning rate '
                                     'or check the data (train.max_nonfinite_steps sets the limit)')
        return OrderedDict(sorted(log.items()))

    def task_names_for(self, num: int) -> list[str]:
        """Names of task ids 0..num-1 (the options' names; the id itself beyond them)."""
        return [self.task_names[i] if i < len(self.task_names) else str(i) for i in range(num)]

    @staticmethod
    def _warn_skipped(contexts: list[StepContext], counted: list[bool], losses: list[list[float]], streak: int
                      ) -> StepContext | None:
        """One warning per skipped step, naming its iteration, loss, tasks, files and place in the streak (streak:
        the streak before the first of them); returns the last skipped step's context."""
        last = None
        for context, was_skipped, loss in zip(contexts, counted, losses):
            streak = streak + 1 if was_skipped else 0
            if was_skipped:
                last = context
                tasks, files = _describe(context)
                get_root_logger().warning(
                    f'iter {context.iteration}: non-finite loss ({loss}) or gradient; step skipped (tasks in batch: '
                    f'{tasks}; files: {files}; {streak} in a row)')
        return last

    @property
    def skipped_steps(self) -> int:
        """Non-finite steps skipped so far by this process (a read of the device)."""
        return int(self.skipped)

    def streak_value(self) -> int:
        """The current non-finite streak (a read of the device: for saving a training state)."""
        return int(self.streak)

    def set_streak(self, value: int) -> None:
        """Restore the streak of a saved run."""
        self.streak.fill_(int(value))
        self.max_streak.fill_(int(value))
        self._host_streak = int(value)


def _describe(context: StepContext) -> tuple[str, str]:
    """(the batch's tasks, sorted and joined; its files, in order without repeats) for a warning or an error."""
    tasks = ', '.join(sorted(set(context.tasks))) or '?'
    files = ', '.join(dict.fromkeys(context.files)) or 'not given by the dataset'
    return tasks, files


class EmaPairs(NamedTuple):
    """The EMA copy's tensors beside the network's, paired by name; buffers split once into floating ones (BatchNorm
    statistics, averaged like the parameters' skip rule) and the others (counters, copied)."""

    ema_params: list[torch.Tensor]
    params: list[torch.Tensor]
    ema_float_buffers: list[torch.Tensor]
    float_buffers: list[torch.Tensor]
    ema_other_buffers: list[torch.Tensor]
    other_buffers: list[torch.Tensor]


def ema_pairs(net: torch.nn.Module, ema: torch.nn.Module) -> EmaPairs:
    """The EMA network's tensors paired by name with the network's, unwrapped from torch.compile and DDP. Raises
    KeyError naming a tensor of the EMA network that the network lacks."""
    bare = getattr(net, '_orig_mod', net)
    bare = getattr(bare, 'module', bare)
    params, buffers = dict(bare.named_parameters()), dict(bare.named_buffers())
    ema_params, ema_buffers = dict(ema.named_parameters()), dict(ema.named_buffers())
    missing = [k for k in ema_params if k not in params] + [k for k in ema_buffers if k not in buffers]
    if missing:
        raise KeyError(f"EMA: the network has no tensor '{missing[0]}'")
    floating = [k for k, t in ema_buffers.items() if t.is_floating_point()]
    other = [k for k in ema_buffers if k not in floating]
    return EmaPairs([t.data for t in ema_params.values()], [params[k].data for k in ema_params],
                    [ema_buffers[k] for k in floating], [buffers[k] for k in floating],
                    [ema_buffers[k] for k in other], [buffers[k] for k in other])


def total_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients of params (0-d, on their device; 0 without any), by one foreach kernel."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device) if params else torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


@torch.no_grad()
def update_ema(pairs: EmaPairs, decay: float, skip: torch.Tensor | None = None) -> None:
    """ema ← decay · ema + (1 − decay) · net over every parameter, and the buffers copied, by foreach kernels (pairs
    from ema_pairs); decay 0 copies the network. With `skip` (a 0-d bool on the device), a skipped step leaves the
    EMA copy as it is, without reading the flag: the weight (1 − decay)·(not skip) is a device tensor, applied as
    ema + w · (net − ema) (what `_foreach_lerp_` computes, which takes no tensor weight without a sync). Integer
    buffers (counters) are always copied."""
    if pairs.ema_other_buffers:
        torch._foreach_copy_(pairs.ema_other_buffers, pairs.other_buffers)
    if decay == 0 or skip is None:
        if pairs.ema_params and decay == 0:
            torch._foreach_copy_(pairs.ema_params, pairs.params)
        elif pairs.ema_params:
            torch._foreach_lerp_(pairs.ema_params, pairs.params, 1.0 - decay)
        if pairs.ema_float_buffers:
            torch._foreach_copy_(pairs.ema_float_buffers, pairs.float_buffers)
        return
    keep = (~skip).float()
    for ema_tensors, tensors, weight in ((pairs.ema_params, pairs.params, keep * (1.0 - decay)),
                                         (pairs.ema_float_buffers, pairs.float_buffers, keep)):
        if ema_tensors:  # the buffers follow the network (BatchNorm statistics), except after a skipped step
            delta = torch._foreach_sub(tensors, ema_tensors)
            torch._foreach_mul_(delta, weight)
            torch._foreach_add_(ema_tensors, delta)
