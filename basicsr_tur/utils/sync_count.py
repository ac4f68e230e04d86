"""Count the host-device synchronisation points of a piece of code, on any device, the CPU included.

On a GPU, a training step that reads a device value on the host (`.item()`, `bool(t)`, `.tolist()`, `.cpu()`) or
runs an op whose output size depends on the data (`unique`, `bincount`, `nonzero`, boolean-mask indexing,
`masked_select`) makes the host wait for the device to catch up; such steps cannot overlap the host's work with the
device's, nor be captured as CUDA graphs. `torch.cuda.set_sync_debug_mode('warn')` finds them on a GPU only; this
counter finds the same points on the CPU, where tests run, by watching the aten ops that dispatch (a
`TorchDispatchMode`) and the tensor methods that read memory without dispatching (`tolist`, `numpy`, `cpu`).

    with SyncCounter(exclude=optimizer_step_counters(optimizer)) as syncs:
        model.optimize_parameters(1)
    assert syncs.total == 0, syncs.counts

Every tensor counts as a device tensor (on the CPU there is no other); reads of tensors that live on the host by
design, such as a non-capturable optimizer's step counters or the CPU parameter rows that
data/device_degradations.degrade_batch groups a batch by, are left out by passing them in `exclude`
(their scalar reads and their `tolist`/`numpy`/`cpu` alike).
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# aten ops that read a device value on the host, or whose output shape depends on the values of their input.
SCALAR_READS = frozenset({'_local_scalar_dense', 'equal'})
DATA_DEPENDENT = frozenset({'_unique', '_unique2', 'unique_dim', 'unique_consecutive', 'unique_dim_consecutive',
                            'bincount', 'nonzero', 'masked_select', 'argwhere'})
# indexing ops that become data-dependent when an index is a boolean mask
MASK_INDEXING = frozenset({'index', 'index_put', 'index_put_', '_index_put_impl_'})
# tensor methods that copy device memory to the host without an aten op on a CPU tensor
HOST_READS = ('tolist', 'numpy', 'cpu')


def _is_mask(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    if isinstance(value, (list, tuple)):
        return any(_is_mask(v) for v in value)
    return False


class SyncCounter(TorchDispatchMode):
    """Counts, by name, the sync points run inside its `with` block (see the module docstring).

    Args:
        exclude: tensors whose reads are host-side by design (e.g.
            `optimizer_step_counters(optimizer)`): their scalar reads and `tolist`/`numpy`/`cpu`
            calls are not counted.

    Attributes:
        counts: Counter of op or method name -> number of calls (`repeat_interleave` only without output_size).
        total: their sum.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._excluded = {t.data_ptr() for t in exclude if isinstance(t, torch.Tensor)}
        self._patches: contextlib.ExitStack | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split('::')[-1]
        if name in SCALAR_READS:
            if not (args and isinstance(args[0], torch.Tensor) and args[0].data_ptr() in self._excluded):
                self.counts[name] += 1
        elif name in DATA_DEPENDENT:
            self.counts[name] += 1
        elif name in MASK_INDEXING and _is_mask(args[1:2]):
            self.counts[f'{name}[bool mask]'] += 1
        elif name == 'repeat_interleave' and kwargs.get('output_size') is None and len(args) == 1:
            self.counts[name] += 1
        return func(*args, **kwargs)

    def __enter__(self) -> SyncCounter:
        self._patches = contextlib.ExitStack()
        for method in HOST_READS:
            self._patches.enter_context(_counting(self, method))
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if self._patches is not None:
            self._patches.close()
            self._patches = None


def _data_ptr(tensor: torch.Tensor) -> int | None:
    """The tensor's data pointer, None for one without storage (sparse, some subclasses)."""
    try:
        return tensor.data_ptr()
    except RuntimeError:
        return None


@contextlib.contextmanager
def _counting(counter: SyncCounter, method: str) -> Iterator[None]:
    """Replace torch.Tensor.<method> by a wrapper counting its calls on tensors not excluded, for
    the duration of the block."""
    original = getattr(torch.Tensor, method)

    def wrapper(self, *args, **kwargs):
        if not (counter._excluded and _data_ptr(self) in counter._excluded):
            counter.counts[f'Tensor.{method}'] += 1
        return original(self, *args, **kwargs)

    setattr(torch.Tensor, method, wrapper)
    try:
        yield
    finally:
        setattr(torch.Tensor, method, original)


def optimizer_step_counters(*optimizers: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The `step` tensors of the optimizers' states: host-side counters that a non-capturable optimizer reads each
    step (not a device sync; to pass as SyncCounter's `exclude`). Empty before the first step creates the state."""
    return [state['step'] for opt in optimizers for state in opt.state.values()
            if isinstance(state.get('step'), torch.Tensor)]
