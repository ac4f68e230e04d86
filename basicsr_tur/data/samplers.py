"""Training samplers: deterministic from (seed, epoch), sharded over ranks, resumable mid-epoch.

`ShuffledSampler` is the plain shuffle; `TaskBalancedSampler` puts every task in every rank's batch when the batch
holds at least as many samples as there are tasks (TUR pools σ per task within a batch, so a batch without a task
gives that task no signal). Both yield, for rank r, the samples of the global batches r, r + W, r + 2W, ...
so the ranks' batches together form the same global batches as one process with W times the batch. Indices
come as `epoch * len(dataset) + i`, which the task datasets decode, so persistent workers see the epoch too.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler[int]):
    """Shared parts: epoch, rank sharding, batch bookkeeping and the mid-epoch start used by resume."""

    def __init__(self, dataset_len: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        self.batch_size, self.num_replicas, self.rank, self.seed = batch_size, num_replicas, rank, seed
        self.dataset_len = dataset_len
        self.num_batches = dataset_len // (batch_size * num_replicas)  # per rank; the incomplete rest is dropped
        if self.num_batches == 0:
            raise ValueError(f'{dataset_len} samples are fewer than one global batch of {batch_size} x '
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
        # The epoch rides in the index (epoch * len + i) to reach persistent workers; datasets decode it.
        offset = self.epoch * self.dataset_len
        for batch in batches:
            yield from (offset + int(i) for i in batch)

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
