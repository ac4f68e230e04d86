"""Several task datasets read as one: e.g. noise added on the fly to clean images beside fixed rain/haze pairs."""
from __future__ import annotations

import bisect

from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from basicsr_tur.data.data_util import TaskDataset
from basicsr_tur.data.samplers import pack_index, unpack_index
from basicsr_tur.utils.errors import DataError
from basicsr_tur.utils.option_checks import LIST, Kind

# Keys a part inherits from the mixed dataset unless it sets them itself.
_INHERITED = ('phase', 'tasks', 'gt_size', 'use_hflip', 'use_rot', 'key_crop', 'dataset_enlarge_ratio', 'io_backend',
              'check_images')
_SEED_STRIDE = 1_000_003  # parts draw from different generator streams even at equal local indices


@DATASET_REGISTRY.register()
class MixedTaskDataset(data.Dataset):
    """Concatenation of task datasets sharing the setting's task list; samples keep their parts' task ids.

    Options:
        parts: a list of dataset options (each with its own `type`, e.g. SyntheticTaskDataset for on-the-fly noise
            and PairedTaskDataset for fixed pairs); each inherits phase, tasks, gt_size, flips, key_crop,
            dataset_enlarge_ratio, io_backend and check_images from this dataset unless it sets them, and gets
            seed + k·1000003. Each part checks its files when built; in a validation or test set, outputs of two parts
            may not share a name.
    Length is the sum of the parts' lengths (each part applies its own dataset_enlarge_ratio, so the ratio of a
    part is how it is weighted in the mix, as the authors repeat Rain100L lines in their lists).
    """

    # `parts`, `seed`, and the keys of TaskDataset that it hands on to its parts (_INHERITED).
    OPTION_KEYS: dict[str, Kind] = {
        'parts': LIST.doc('the dataset options of the parts mixed into one set'),
        'seed': TaskDataset.OPTION_KEYS['seed'],
        **{key: kind for key, kind in TaskDataset.OPTION_KEYS.items() if key in _INHERITED},
    }

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        where = f"dataset '{opt.get('name', 'MixedTaskDataset')}'"
        parts = opt.get('parts')
        if not isinstance(parts, list) or not parts:
            raise DataError(f"{where}: 'parts' must be a non-empty list of dataset options")
        self.parts = []
        for k, part in enumerate(parts):
            part_opt = {key: opt[key] for key in _INHERITED if key in opt}
            part_opt.update(part)
            part_opt.setdefault('name', f"{opt.get('name', 'mixed')}[{k}]")
            part_opt['seed'] = int(opt.get('seed', 0)) + _SEED_STRIDE * (k + 1)
            if part_opt.get('tasks') != opt.get('tasks'):
                raise DataError(f"{where}: parts[{k}].tasks must be the setting's task list {opt.get('tasks')}")
            self.parts.append(DATASET_REGISTRY.get(part_opt['type'])(part_opt))
        if opt.get('phase') != 'train':  # only validation and test sets save outputs
            self._check_output_names(where)
        self.ends = []
        total = 0
        for part in self.parts:
            total += len(part)
            self.ends.append(total)

    def _check_output_names(self, where: str) -> None:
        """Refuse parts whose samples would save their outputs under one name (`<task>/<out_name>`)."""
        owner: dict[tuple[str, str], str] = {}
        for k, part in enumerate(self.parts):
            tasks = getattr(part, 'synth_tasks', None)
            for (task, path), name in getattr(part, 'out_names', {}).items():
                for t in tasks if tasks is not None else [task]:
                    first = owner.setdefault((t, name), f'parts[{k}] {path}')
                    if not first.startswith(f'parts[{k}] '):
                        raise DataError(f'{where}: {first} and parts[{k}] {path} would both be saved as '
                                         f'{t}/{name}; rename one of them')

    def item_tasks(self) -> list[int]:
        """Task id of every index, part after part."""
        return [t for part in self.parts for t in part.item_tasks()]

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, index: int) -> dict:
        """Sample `index`, or `pack_index(epoch, i, len(self))` from a training sampler: the part's sample of that
        epoch, handed on to the part packed the same way (see data/samplers.py)."""
        epoch, index = unpack_index(index, len(self))
        k = bisect.bisect_right(self.ends, index)
        part = self.parts[k]
        return part[pack_index(epoch, index - (self.ends[k - 1] if k else 0), len(part))]
