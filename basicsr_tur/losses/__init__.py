"""Import every `*_loss.py` of this folder so that its classes register into basicsr's LOSS_REGISTRY, the file
suffix scan of basicsr's own losses/__init__.py. A helper module would be imported by the loss files that use it.
"""
import importlib
from pathlib import Path

for _file in sorted(Path(__file__).parent.glob('*_loss.py')):
    importlib.import_module(f'{__name__}.{_file.stem}')
