"""Evaluate a model per task: python test.py -opt options/test/<setting>/<Arch>.yml"""
import sys
from os import path as osp

from basicsr_tur.test import test_pipeline
from basicsr_tur.utils.cli import run_cli

if __name__ == '__main__':
    sys.exit(run_cli(test_pipeline, osp.abspath(osp.dirname(__file__))))
