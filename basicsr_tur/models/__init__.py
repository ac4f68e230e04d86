"""Import every `*_model.py` of this folder so that its classes register into basicsr's MODEL_REGISTRY, the file
suffix scan of basicsr's own models/__init__.py. A helper module would be imported by the model files that use it.
"""
import importlib
from pathlib import Path

for _file in sorted(Path(__file__).parent.glob('*_model.py')):
    importlib.import_module(f'{__name__}.{_file.stem}')
