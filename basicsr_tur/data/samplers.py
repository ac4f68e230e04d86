"""Samplers of every phase, chosen from the dataset options by `build_sampler`, and the epoch they hand the datasets.

Training: `ShuffledSampler` is the plain shuffle; `TaskBalancedSampler` puts every task in every rank's batch when
the batch holds at least as many samples as there are tasks (TUR pools σ per task within a batch, so a batch without
a task gives that task no signal). Both are deterministic from (seed, epoch), resumable mid-epoch, and yield, for
rank r, the samples of the global batches r, r + W, r + 2W, ... so the ranks' batches together form the same global
batches as one process with W times the batch.

The epoch reaches the datasets in the index alone: a training sampler yields `pack_index(epoch, i, len(dataset))`
and the datasets (TaskDataset.__getitem__) take it apart with `unpack_index`. Persistent loader workers are separate
processes holding their own copy of the dataset, which no call made in the main process at the start of an epoch
reaches; the index is the one thing that does, and the per-sample generators are seeded by (seed, epoch, index).

Validation and test: `ShardSampler` gives rank r the images r, r + W, r + 2W, ... in order, each image to exactly one
rank, so every rank loads only the images it scores.
"""
from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import Sampler

from basicsr_tur.utils.errors import DataError


def pack_index(epoch: int, index: int, length: int) -> int:
    """The index a sampler hands a dataset of `length` samples for its sample `index` (in [0, length)) in `epoch`:
    `epoch * length + index`, so epoch 0 gives the plain index."""
    return epoch * length + index


def unpack_index(packed: int, length: int) -> tuple[int, int]:
    """(epoch, index in [0, length)) of an index from `pack_index`; a plain index is epoch 0. IndexError if negative."""
    if packed < 0:
        raise IndexError(f'sample index {packed} is negative; expected an index from 0 (epoch * {length} + i)')
    epoch, index = divmod(int(packed), length)
    return epoch, index


class _EpochSampler(Sampler[int]):
    """Shared parts: epoch, rank sharding, batch bookkeeping and the mid-epoch start used by resume."""

    def __init__(self, dataset_len: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        self.batch_size, self.num_replicas, self.rank, self.seed = batch_size, num_replicas, rank, seed
        self.dataset_len = dataset_len
        self.num_batches = dataset_len // (batch_size * num_replicas)  # per rank; the incomplete rest is dropped
        if self.num_batches == 0:
            raise DataError(f'{dataset_len} samples are fewer than one global batch of {batch_size} x '
                             f'{num_replicas} ranks')
        self.epoch = 0
        self.start_sample = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the order is a function of seed and epoch)."""
        self.epoch = epoch

    def set_start(self, samples: int) -> None:
        """Skip the first `samples` of the current epoch's global order, all ranks together (resuming mid-epoch).

        Counted in samples, not batches, so that a resume with another batch size skips what was used; the rest
        is cut into global batches from there (with an unchanged batch: exactly the batches that were left).
        """
        self.start_sample = samples

    def _generator(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([int(self.seed), int(self.epoch)]))

    def _global_batches(self) -> list[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        step = self.batch_size * self.num_replicas  # samples of one global batch (every rank's batch)
        stream = np.concatenate(self._global_batches()[:self.num_batches * self.num_replicas])[self.start_sample:]
        steps = len(stream) // step
        batches = stream[:steps * step].reshape(steps * self.num_replicas, self.batch_size)
        batches = batches[self.rank::self.num_replicas]
        for batch in batches:  # the epoch rides in the index (see the module's docstring)
            yield from (pack_index(self.epoch, int(i), self.dataset_len) for i in batch)

    def __len__(self) -> int:
        step = self.batch_size * self.num_replicas
        return max(self.num_batches * step - self.start_sample, 0) // step * self.batch_size


class ShuffledSampler(_EpochSampler):
    """A permutation of the dataset per epoch, cut into global batches and dealt to the ranks."""

    def __init__(self, dataset_len: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        super().__init__(dataset_len, batch_size, num_replicas, rank, seed)

    def _global_batches(self) -> list[np.ndarray]:
        order = self._generator().permutation(self.dataset_len)
        n = self.num_batches * self.num_replicas
        return list(order[:n * self.batch_size].reshape(n, self.batch_size))


class TaskBalancedSampler(_EpochSampler):
    """Each batch draws batch_size // T samples of every task (the remainder from tasks in rotation).

    Each task's samples are shuffled and consumed in turn (reshuffled when exhausted), so small tasks are
    oversampled rather than left out. With batch_size < T, consecutive batches rotate through the tasks.
    """

    def __init__(self, item_tasks: list[int], batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        super().__init__(len(item_tasks), batch_size, num_replicas, rank, seed)
        tasks = np.asarray(item_tasks)
        self.groups = [np.flatnonzero(tasks == t) for t in np.unique(tasks)]

    def _global_batches(self) -> list[np.ndarray]:
        rng = self._generator()
        streams = [rng.permutation(g) for g in self.groups]
        positions = [0] * len(self.groups)
        num_tasks = len(self.groups)

        def take(k: int) -> int:
            if positions[k] == len(streams[k]):
                streams[k], positions[k] = rng.permutation(self.groups[k]), 0
            positions[k] += 1
            return int(streams[k][positions[k] - 1])

        batches = []
        for b in range(self.num_batches * self.num_replicas):
            quota, extra = divmod(self.batch_size, num_tasks)
            counts = [quota + (1 if (k - b * extra) % num_tasks < extra else 0) for k in range(num_tasks)]
            batch = [take(k) for k in range(num_tasks) for _ in range(counts[k])]
            batches.append(np.asarray(rng.permutation(batch)))
        return batches


class ShardSampler(Sampler[int]):
    """Rank `rank`'s share of a validation or test set of `dataset_len` images: rank, rank + W, rank + 2W, ... in order.

    Each image goes to exactly one rank and none is repeated (torch's DistributedSampler pads the shares to equal
    lengths with repeated images, which gathered metrics would count twice), so the shares differ by up to one image.
    """

    def __init__(self, dataset_len: int, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise DataError(f'rank {rank} is not in [0, {num_replicas})')
        self.dataset_len, self.num_replicas, self.rank = dataset_len, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.dataset_len, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.dataset_len, self.num_replicas))


def build_sampler(dataset: Sized, dataset_opt: dict,
                  opt: dict) -> ShuffledSampler | TaskBalancedSampler | ShardSampler:
    """The sampler of a dataset of the options on this rank (opt: world_size, rank, manual_seed, dist, num_gpu).

    Validation and test sets (phase other than train): the rank's ShardSampler. Training: `datasets.train.sampler`,
    `shuffle` (default) or `balanced` (every task in every batch; the dataset must have `item_tasks()`), cutting
    batches of batch_size_per_gpu (times num_gpu under DataParallel), seeded by manual_seed, sharded over world_size.
    ValueError for an unknown sampler or a balanced one on a dataset without task labels.
    """
    if dataset_opt.get('phase') != 'train':
        return ShardSampler(len(dataset), opt['world_size'], opt['rank'])
    # basicsr's loader multiplies the batch by the GPU count under DataParallel; the sampler must cut the same batch.
    batch = dataset_opt['batch_size_per_gpu'] * (1 if opt['dist'] else max(opt['num_gpu'], 1))
    kind = dataset_opt.get('sampler', 'shuffle')
    args = (batch, opt['world_size'], opt['rank'], opt['manual_seed'])
    if kind == 'shuffle':
        return ShuffledSampler(len(dataset), *args)
    if kind == 'balanced':
        if not hasattr(dataset, 'item_tasks'):
            raise DataError(f"datasets.train.sampler: 'balanced' needs a task-labelled dataset, not "
                             f'{type(dataset).__name__}')
        return TaskBalancedSampler(dataset.item_tasks(), *args)
    raise DataError(f"datasets.train.sampler: expected 'shuffle' or 'balanced', got '{kind}'")
