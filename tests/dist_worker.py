"""Run by tests/test_distributed.py under torchrun: train, then save this rank's final weights (and its pixel loss's
state, when the loss has one) for comparison."""
import sys
from os import path as osp

import torch

from basicsr_tur.train import train_pipeline
from basicsr_tur.utils.dist import close_dist

if __name__ == '__main__':
    root, out = sys.argv[1], sys.argv[2]
    model = train_pipeline(root, sys.argv[3:])
    state = model.get_bare_model(model.net_g).state_dict()
    torch.save(state, osp.join(out, f"rank{model.opt['rank']}.pth"))
    if model.cri_pix.state_dict():
        torch.save(model.cri_pix.state_dict(), osp.join(out, f"rank{model.opt['rank']}_loss.pth"))
    close_dist()  # as run_cli does: a gloo group left open can abort the interpreter at exit
