"""Import every module of this folder so that its classes register into basicsr's registries."""
import importlib
from pathlib import Path

for _file in sorted(Path(__file__).parent.glob('*.py')):
    if _file.stem != '__init__':
        importlib.import_module(f'{__name__}.{_file.stem}')
