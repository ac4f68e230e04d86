"""Import every `*_dataset.py` of this folder so that its classes register into basicsr's DATASET_REGISTRY, the file
suffix scan of basicsr's own data/__init__.py. Helpers (data_util.py, degradations.py, samplers.py) are imported by
what uses them.
"""
import importlib
from pathlib import Path

for _file in sorted(Path(__file__).parent.glob('*_dataset.py')):
    importlib.import_module(f'{__name__}.{_file.stem}')
