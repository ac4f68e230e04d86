"""Dataset preparation: the paper's five settings built from the downloads (scripts/prepare_data.py), and the
preparation steps an options file may name (`prepare: demo`).

  settings.py   the settings: source datasets and their layouts, pairing rules, parts, tasks, meta-file names
  plan.py       checking the downloads and listing which files each part writes, before anything is written
  images.py     image jobs of the test sets (crop, resize, BSD68 noise) and the worker pool
  mioir.py      MiOIR synthesis: each GT degraded once per task, cut into sub-images for training
  writers.py    writing a split's files and meta files, and the LMDB copies of a setting
  build.py      prepare(): plan, write, summarise a setting; what the script prints
  demo_data.py  the embedded demo's data (step `demo`, scripts/make_demo_data.py)

`import basicsr_tur` imports this file only: it registers each step's name (utils/registry.PREPARE_REGISTRY), which
the options check, while the step's module (scikit-image, the degradation synthesis) is imported when it runs.
"""
from os import path as osp

from basicsr_tur.utils.registry import register_prepare_step


@register_prepare_step(creates=osp.join('datasets', 'demo'))
def demo(root: str) -> None:
    """Preparation step `demo`: build `<root>/datasets/demo`, the folder the demo options read (demo_data.py)."""
    from basicsr_tur.prepare.demo_data import build_demo_data  # imported when the step runs, not by every import
    build_demo_data(osp.join(root, 'datasets', 'demo'))
