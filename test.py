"""Evaluate a model per task: python test.py -opt options/test/<setting>/<Arch>.yml

Relative paths in the options, and results/, are under the working folder (`--root DIR` to change).
"""
import os
import sys

from basicsr_tur.test import run_test
from basicsr_tur.utils.cli import run_cli

if __name__ == '__main__':
    sys.exit(run_cli(run_test, os.getcwd()))
