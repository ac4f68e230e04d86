"""The package's layers point one way (STYLE.md, "Layers"): no module imports a layer above its own, even lazily.

`utils` imports nothing of ours; `archs`, `data`, `losses`, `metrics` import only `utils` (and their
own package); `models` imports those; `prepare` (dataset preparation) imports `data` and `utils`;
the pipelines (train, test, restore ...) import anything below them. Every `import` statement of
every module is read from its AST, wherever it stands (top of the file, inside a function, under
`if TYPE_CHECKING`), so a lazy import that hides a cycle is caught too.

Run as a script (`python tests/test_layers.py`) to print the layer picture: each edge between layers with the
number of modules importing along it.
"""
from __future__ import annotations

import ast
from collections import Counter
from os import path as osp
from pathlib import Path

import pytest

PACKAGE = 'basicsr_tur'
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# The layer of each sub-package and top-level module; a module not listed is a pipeline.
LAYERS = {'utils': 'utils', 'archs': 'archs', 'data': 'data', 'losses': 'losses',
          'metrics': 'metrics', 'models': 'models', 'prepare': 'prepare', '__init__': 'package'}
PIPELINE = 'pipelines'
# What each layer may import (besides itself). `package` is basicsr_tur/__init__.py (it registers every class and
# holds __version__): only the pipelines may import it, and it imports no pipeline.
ALLOWED: dict[str, set[str]] = {
    'utils': set(),
    'archs': {'utils'},
    'data': {'utils'},
    'losses': {'utils'},
    'metrics': {'utils'},
    'models': {'utils', 'archs', 'data', 'losses', 'metrics'},
    'prepare': {'utils', 'data'},
    PIPELINE: {'utils', 'archs', 'data', 'losses', 'metrics', 'models', 'prepare', 'package'},
    'package': {'utils', 'archs', 'data', 'losses', 'metrics', 'models', 'prepare'},
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name under the package ('basicsr_tur.utils.files' -> 'utils')."""
    parts = module.split('.')
    if parts == [PACKAGE]:
        return 'package'
    return LAYERS.get(parts[1], PIPELINE)


def module_name(file: Path, root: Path = ROOT) -> str:
    """'basicsr_tur.utils.files' for <root>/utils/files.py ('basicsr_tur.data' for data/__init__.py)."""
    parts = (root.name, *file.relative_to(root).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import of the package in `source`, at any depth of the AST.

    Relative imports are resolved against `module`; `from basicsr_tur.x import y` counts as importing
    `basicsr_tur.x.y` when y is a module, which is the more specific (and stricter) reading: it is kept as
    `basicsr_tur.x.y` and `layer_of` looks only at its first component below the package, so both readings agree.
    """
    found = []
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            found += [(f'{base}.{alias.name}' if base == PACKAGE else base, node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', None)) in
              ('import_module', '__import__') and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))  # importlib.import_module('basicsr_tur.x'), __import__
    return [(name, line) for name, line in found if name == PACKAGE or name.startswith(PACKAGE + '.')]


def import_edges(root: Path = ROOT) -> list[tuple[str, str, int, str]]:
    """(importing module, imported module, line, file) for every import of the package by one of its modules."""
    edges = []
    for file in sorted(root.rglob('*.py')):
        name = module_name(file, root)
        for target, line in imported_modules(file.read_text(encoding='utf-8'), name, file.name == '__init__.py'):
            edges.append((name, target, line, osp.relpath(file, root.parent)))
    return edges


def violations(edges: list[tuple[str, str, int, str]]) -> list[str]:
    """'file:line: module (layer) imports target (layer)' for every edge that goes against ALLOWED."""
    bad = []
    for source, target, line, file in edges:
        src, dst = layer_of(source), layer_of(target)
        if src != dst and dst not in ALLOWED[src]:
            bad.append(f'{file}:{line}: {source} ({src}) imports {target} ({dst})')
    return bad


def layer_picture(edges: list[tuple[str, str, int, str]]) -> str:
    """Edges between layers, one line each: `source -> target: N modules` (N importing modules along it)."""
    modules: dict[tuple[str, str], set[str]] = {}
    for source, target, _, _ in edges:
        src, dst = layer_of(source), layer_of(target)
        if src != dst:
            modules.setdefault((src, dst), set()).add(source)
    counts = Counter({edge: len(names) for edge, names in modules.items()})
    return '\n'.join(f'{src:>9} -> {dst:<9} {n} module(s){"" if dst in ALLOWED[src] else "   <- against the layers"}'
                     for (src, dst), n in sorted(counts.items()))


def test_no_module_imports_a_layer_above_its_own():
    bad = violations(import_edges())
    assert not bad, 'imports against the layers (STYLE.md, "Layers"):\n' + '\n'.join(bad)


@pytest.mark.parametrize('source, where', [
    ('from basicsr_tur.archs.uncertainty import HEAD_PREFIX\n', 'top of the file'),
    ('def f():\n    import basicsr_tur.models.tur_model\n', 'inside a function'),
    ('def f():\n    from basicsr_tur import archs\n', 'from the package'),
    ('def f():\n    import basicsr_tur\n', 'the whole package'),
    ('def f():\n    from ..data import data_util\n', 'relative'),
    ('import importlib\nimportlib.import_module("basicsr_tur.losses.tur_loss")\n', 'importlib'),
    ('def f():\n    return __import__("basicsr_tur.models.tur_model")\n', '__import__'),
])
def test_an_upward_import_from_utils_is_reported_wherever_it_stands(tmp_path, source, where):
    package = tmp_path / PACKAGE
    (package / 'utils').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'utils' / '__init__.py').write_text('')
    (package / 'utils' / 'bad.py').write_text(source)
    bad = violations(import_edges(package))
    assert len(bad) == 1 and bad[0].startswith('basicsr_tur/utils/bad.py:') and '(utils) imports' in bad[0], where


def test_imports_within_a_layer_and_downward_are_allowed(tmp_path):
    package = tmp_path / PACKAGE
    sources = {'utils': 'from basicsr_tur.utils import files\n',
               'archs': 'from basicsr_tur.utils.checkpoint import HEAD_PREFIX\nfrom .uncertainty import X\n',
               'models': 'from basicsr_tur.archs import x_arch\nfrom basicsr_tur.losses.tur_loss import L\n'}
    for sub, text in sources.items():
        (package / sub).mkdir(parents=True)
        (package / sub / 'm.py').write_text(text)
    (package / 'restore.py').write_text('from basicsr_tur.models.tur_model import TURModel\nimport basicsr_tur\n')
    assert violations(import_edges(package)) == []


def test_the_package_init_importing_a_pipeline_is_reported(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / '__init__.py').write_text('from basicsr_tur import archs, train\n')
    assert violations(import_edges(package)) == [
        'basicsr_tur/__init__.py:1: basicsr_tur (package) imports basicsr_tur.train (pipelines)']


def test_sideways_imports_between_archs_data_and_losses_are_reported(tmp_path):
    package = tmp_path / PACKAGE
    (package / 'losses').mkdir(parents=True)
    (package / 'losses' / 'l_loss.py').write_text('from basicsr_tur.data.degradations import degrade\n')
    assert violations(import_edges(package)) == [
        'basicsr_tur/losses/l_loss.py:1: basicsr_tur.losses.l_loss (losses) imports '
        'basicsr_tur.data.degradations (data)']


if __name__ == '__main__':
    print(layer_picture(import_edges()))
