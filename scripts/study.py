"""A seeded comparison of task-weighting methods (the study itself: basicsr_tur/study.py).

    python scripts/study.py --config options/study/demo.yml [--seeds 0 1 2] [--dry-run] [--root DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from basicsr_tur.study import main

if __name__ == '__main__':
    sys.exit(main())
