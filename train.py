"""Train an all-in-one restoration model: python train.py -opt options/train/<setting>/<Arch>_<loss>.yml"""
import sys
from os import path as osp

from basicsr_tur.train import train_pipeline
from basicsr_tur.utils.cli import run_cli

if __name__ == '__main__':
    sys.exit(run_cli(train_pipeline, osp.abspath(osp.dirname(__file__))))
