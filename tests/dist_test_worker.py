"""Run by tests/test_distributed.py under torchrun: test.py's pipeline, each rank then writing the dataset indices
its loader read (loaded<rank>.json) beside the results."""
import json
import os
import sys
from os import path as osp

from basicsr_tur.data.data_util import TaskDataset
from basicsr_tur.test import run_test
from basicsr_tur.utils.dist import close_dist

LOADED = []
_load = TaskDataset.__getitem__


def _recording(self, index):
    LOADED.append(int(index))
    return _load(self, index)


if __name__ == '__main__':
    TaskDataset.__getitem__ = _recording
    root, out = sys.argv[1], sys.argv[2]
    run_test(root, sys.argv[3:])
    with open(osp.join(out, f"loaded{os.environ['RANK']}.json"), 'w') as f:  # set by torchrun
        json.dump(LOADED, f)
    close_dist()  # as run_cli does: a gloo group left open can abort the interpreter at exit
