"""Samplers: every task in every balanced batch, reproducible from (seed, epoch), ranks sharing global batches."""
import numpy as np
import pytest
from conftest import assert_names

from basicsr_tur.data.samplers import (
    ShardSampler,
    ShuffledSampler,
    TaskBalancedSampler,
    build_sampler,
    pack_index,
    unpack_index,
)
from basicsr_tur.utils.errors import DataError

ITEM_TASKS = [0] * 50 + [1] * 7 + [2] * 20 + [3] * 3  # unbalanced on purpose


def batches(sampler, batch):
    """The sampler's indices cut into its batches."""
    order = list(sampler)
    return [order[i:i + batch] for i in range(0, len(order), batch)]


@pytest.mark.parametrize('batch', [4, 6, 9])
def test_balanced_sampler_puts_every_task_in_every_batch(batch):
    sampler = TaskBalancedSampler(ITEM_TASKS, batch, seed=1)
    for b in batches(sampler, batch):
        assert {ITEM_TASKS[i] for i in b} == {0, 1, 2, 3}


def test_balanced_sampler_rotates_tasks_when_the_batch_is_smaller_than_the_task_count():
    sampler = TaskBalancedSampler(ITEM_TASKS, 2, seed=0)
    seen = [{ITEM_TASKS[i] for i in b} for b in batches(sampler, 2)[:2]]
    assert seen[0] | seen[1] == {0, 1, 2, 3}


@pytest.mark.parametrize('cls', ['shuffle', 'balanced'])
def test_samplers_are_reproducible_and_change_with_the_epoch(cls):
    def make():
        return ShuffledSampler(len(ITEM_TASKS), 4, seed=3) if cls == 'shuffle' else \
            TaskBalancedSampler(ITEM_TASKS, 4, seed=3)
    a, b = make(), make()
    assert list(a) == list(b)
    b.set_epoch(1)
    epochs, order = zip(*(unpack_index(i, len(ITEM_TASKS)) for i in b))
    assert set(epochs) == {1} and list(order) != list(a)  # another order, not only another epoch in the indices


@pytest.mark.parametrize('cls', ['shuffle', 'balanced'])
def test_ranks_share_the_global_batches_of_one_process(cls):
    def make(batch, replicas, rank):
        return ShuffledSampler(len(ITEM_TASKS), batch, replicas, rank, seed=5) if cls == 'shuffle' else \
            TaskBalancedSampler(ITEM_TASKS, batch, replicas, rank, seed=5)
    one = batches(make(8, 1, 0), 8)
    r0, r1 = batches(make(4, 2, 0), 4), batches(make(4, 2, 1), 4)
    assert len(r0) == len(r1) == len(one)
    if cls == 'shuffle':  # rank batches k together are the one-process batch k, and the ranks never overlap
        assert all(sorted(r0[k] + r1[k]) == sorted(one[k]) for k in range(len(one)))
        assert not set(np.concatenate(r0)) & set(np.concatenate(r1))
    else:  # each rank's batch is balanced by itself
        assert all({ITEM_TASKS[i] for i in b} == {0, 1, 2, 3} for b in r0 + r1)


def test_set_start_skips_whole_batches():
    sampler = ShuffledSampler(len(ITEM_TASKS), 4, seed=2)
    full = list(sampler)
    sampler.set_start(12)
    assert list(sampler) == full[12:] and len(sampler) == len(full) - 12


def test_set_start_counts_samples_so_a_new_batch_size_skips_what_was_used():
    # 3 batches of 4 were used; resumed with batches of 5, the epoch goes on with the 13th sample of the same order.
    by_four = list(ShuffledSampler(len(ITEM_TASKS), 4, seed=2))
    sampler = ShuffledSampler(len(ITEM_TASKS), 5, seed=2)
    sampler.set_start(12)
    rest = list(sampler)
    assert len(rest) == len(sampler) == 65  # (80 - 12) samples cut into whole batches of 5
    assert rest == by_four[12:12 + 65]


def test_too_few_samples_for_a_batch_is_named():
    with pytest.raises(DataError) as err:
        ShuffledSampler(10, 8, 2, 0)
    assert_names(err, '10 samples', '8 x 2')


def test_indices_carry_the_epoch_so_persistent_workers_see_it(clean_root):
    import torch
    from basicsr.data import build_dataset
    ds = build_dataset({'name': 's', 'type': 'SyntheticTaskDataset', 'phase': 'train', 'tasks': ['sr', 'noise'],
                        'seed': 1, 'dataroot_gt': clean_root, 'gt_size': 16})
    sampler = ShuffledSampler(len(ds), 2, seed=0)
    persistent = torch.utils.data.DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                                             persistent_workers=True)
    list(persistent)  # epoch 0 starts the workers
    sampler.set_epoch(1)
    got = torch.cat([b['lq'] for b in persistent])
    fresh = build_dataset(dict(ds.opt))
    order = [unpack_index(i, len(ds))[1] for i in sampler]
    expected = torch.cat([fresh[pack_index(1, i, len(ds))]['lq'][None] for i in order])
    assert torch.equal(got, expected)


def test_an_index_packs_its_epoch_and_epoch_0_is_the_plain_index():
    assert pack_index(0, 7, 10) == 7 and unpack_index(7, 10) == (0, 7)
    assert unpack_index(pack_index(3, 9, 10), 10) == (3, 9)
    with pytest.raises(IndexError) as err:
        unpack_index(-1, 10)
    assert_names(err, '-1')


class _Labelled(list):
    """A stand-in task-labelled dataset: its items are their task ids."""

    def item_tasks(self) -> list[int]:
        return list(self)


RUN = {'dist': False, 'num_gpu': 1, 'world_size': 1, 'rank': 0, 'manual_seed': 3}


def test_the_train_sampler_is_the_options_choice_seeded_by_the_run():
    shuffle = build_sampler(_Labelled(ITEM_TASKS), {'phase': 'train', 'batch_size_per_gpu': 4}, RUN)
    assert type(shuffle) is ShuffledSampler and list(shuffle) == list(ShuffledSampler(len(ITEM_TASKS), 4, seed=3))
    balanced = build_sampler(_Labelled(ITEM_TASKS), {'phase': 'train', 'batch_size_per_gpu': 4, 'sampler': 'balanced'},
                             dict(RUN, world_size=2, rank=1))
    assert type(balanced) is TaskBalancedSampler and (balanced.num_replicas, balanced.rank) == (2, 1)
    assert list(balanced) == list(TaskBalancedSampler(ITEM_TASKS, 4, 2, 1, seed=3))


@pytest.mark.parametrize('dist, batch', [(False, 8), (True, 4)])
def test_the_train_sampler_cuts_the_batch_of_basicsrs_loader(dist, batch):
    # Under DataParallel (one process, num_gpu GPUs) basicsr's loader takes batch_size_per_gpu x num_gpu samples.
    sampler = build_sampler(_Labelled(ITEM_TASKS), {'phase': 'train', 'batch_size_per_gpu': 4},
                            dict(RUN, dist=dist, num_gpu=2))
    assert sampler.batch_size == batch


def test_an_unknown_or_unusable_train_sampler_is_named():
    with pytest.raises(DataError) as err:
        build_sampler(_Labelled(ITEM_TASKS), {'phase': 'train', 'batch_size_per_gpu': 4, 'sampler': 'random'}, RUN)
    assert_names(err, 'datasets.train.sampler', "'shuffle'", "'balanced'", "'random'")
    with pytest.raises(DataError) as err:
        build_sampler(list(ITEM_TASKS), {'phase': 'train', 'batch_size_per_gpu': 4, 'sampler': 'balanced'}, RUN)
    assert_names(err, 'datasets.train.sampler', "'balanced'", 'list')


@pytest.mark.parametrize('images, ranks', [(9, 2), (9, 3), (2, 3)])
def test_shard_samplers_give_each_image_to_one_rank_in_order_without_padding(images, ranks):
    shares = [list(ShardSampler(images, ranks, r)) for r in range(ranks)]
    assert sorted(i for share in shares for i in share) == list(range(images))
    assert all(share == sorted(share) and len(share) == len(ShardSampler(images, ranks, r))
               for r, share in enumerate(shares))


@pytest.mark.parametrize('phase', ['val', 'test'])
def test_evaluation_sets_get_the_ranks_shard_sampler(phase):
    sampler = build_sampler(list(range(9)), {'phase': phase}, dict(RUN, world_size=2, rank=1))
    assert type(sampler) is ShardSampler and list(sampler) == [1, 3, 5, 7]
