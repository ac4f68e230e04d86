"""Train an all-in-one restoration model: python train.py -opt options/train/<setting>/<Arch>_<loss>.yml

Relative paths in the options, and experiments/ and tb_logger/, are under the working folder (`--root DIR` to change).
"""
import os
import sys

from basicsr_tur.train import train_pipeline
from basicsr_tur.utils.cli import run_cli

if __name__ == '__main__':
    sys.exit(run_cli(train_pipeline, os.getcwd()))
