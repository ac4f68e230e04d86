"""Import every `*_arch.py` of this folder so that its classes register into basicsr's ARCH_REGISTRY, the file
suffix scan of basicsr's own archs/__init__.py. Helpers (uncertainty.py) are imported by the arch files that use them.
"""
import importlib
from pathlib import Path

for _file in sorted(Path(__file__).parent.glob('*_arch.py')):
    importlib.import_module(f'{__name__}.{_file.stem}')
