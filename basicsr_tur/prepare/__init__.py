"""Dataset preparation: the paper's five settings built from the downloads (scripts/prepare_data.py).

  settings.py  the settings: source datasets and their layouts, pairing rules, parts, tasks, meta-file names
  plan.py      checking the downloads and listing which files each part writes, before anything is written
  images.py    image jobs of the test sets (crop16, resize16, BSD68 noise) and the worker pool running every job
  mioir.py     MiOIR synthesis: each GT degraded once per task, cut into sub-images for training
  writers.py   writing a split's files and meta files, and the LMDB copies of a setting
  build.py     prepare(): plan, write, summarise a setting; what the script prints
"""
